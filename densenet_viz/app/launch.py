"""`python -m densenet_viz.app.launch [streamlit run options]`: `streamlit run app.py`, with the heavy imports
done, the worker pool starting, and Streamlit's old pages/ folder mode switched off before the first session
arrives.

Streamlit 1.67 treats a folder named pages/ as its old multipage mode until a run has called st.navigation;
on a fresh server, sessions that arrive before that run their page file without app.py (no sidebar), and
their imports race with app.py's own in other threads (seen as an import-lock deadlock error on a page).
Doing both here, once, in one thread, before the server listens, leaves neither window.
"""

from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app.py"


def main(argv: list[str] | None = None) -> None:
    """Import what every page needs, switch the old pages/ mode off, and run app.py with Streamlit's CLI."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli

    from . import caches, ui, work  # noqa: F401 - imported for their side effect: torch, pandas, plotly loaded now

    work.start_pools()  # while the server starts, not while the first page that needs a worker waits
    work.freeze_heap()  # now, in one thread: the first sessions would otherwise each collect the whole heap
    PagesManager.uses_pages_directory = False  # app.py routes with st.navigation; pages/ is not the old mode
    cli.main(["run", str(APP), *(sys.argv[1:] if argv is None else argv)], prog_name="streamlit")


if __name__ == "__main__":
    main()
