"""densenet-viz: the Streamlit entry point: page config, the shared sidebar, and the list of pages."""

from pathlib import Path

import streamlit as st

HERE = Path(__file__).parent

# A local icon: material icons and emoji favicons are fetched from the internet, which a classroom may lack.
st.set_page_config(page_title="densenet-viz", page_icon=str(HERE / "assets" / "favicon.png"), layout="wide")

# (script, title, icon), in teaching order.
PAGES = [
    ("pages/build.py", "Build", ":material/construction:"),
    ("pages/connectivity.py", "Connectivity", ":material/hub:"),
    ("pages/growth.py", "Channel growth", ":material/stacked_line_chart:"),
    ("pages/memory.py", "Parameters & memory vs ResNet", ":material/memory:"),
    ("pages/tradeoffs.py", "Trade-offs", ":material/balance:"),
    ("pages/accuracy.py", "Accuracy vs cost", ":material/query_stats:"),
    ("pages/features.py", "Feature maps", ":material/grid_view:"),
    ("pages/training.py", "Train & feature reuse", ":material/model_training:"),
    ("pages/lessons.py", "Lessons", ":material/school:"),
    ("pages/classroom.py", "Class", ":material/groups:"),
]

# st.navigation before the heavy imports below: until a run of this script has called it, Streamlit 1.67
# treats the folder pages/ as its old multipage mode and runs a deep link's page without this script (no
# sidebar). On a fresh server the first run spends seconds importing torch; navigating first shrinks that
# window to milliseconds (ui.get_state reruns the rare session that still lands in it).
# The first page is the default, served at "/" (its own pathname, reserved but unused, moves to "/start"); a hidden
# alias lets "/build", what a link or a student types, open it too instead of Streamlit's "Page not found".
(first, first_title, first_icon), *others = PAGES
navigation = st.navigation(
    [st.Page(first, title=first_title, icon=first_icon, url_path="start", default=True)]
    + [st.Page(path, title=title, icon=icon) for path, title, icon in others]
    + [st.Page(first, title=first_title, url_path="build", visibility="hidden")]
)

from densenet_viz.app import ui, work  # noqa: E402  (after st.navigation: see above)

work.freeze_heap()  # once per process: keeps full garbage collections cheap (see work.freeze_heap)
work.start_pools()  # once per process (the launcher has usually done it before the server listened)
ui.sidebar()
ui.projector_switch()  # large type and thick lines for a projector: ?projector=1 or the sidebar's switch
lesson_slot = st.container()  # where a lesson link's controls go on a page that does not place them itself
navigation.run()
ui.lesson_controls(lesson_slot)
