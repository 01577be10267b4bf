"""The shared sidebar (URL settings, lesson links) and small display helpers for pages.

Contract for pages: call `get_state()` at the top; it returns the AppState the sidebar (drawn once by
app.py through `sidebar()`) put in st.session_state. The settings are one dict in session state, read from
the URL when a session starts; every run draws the widgets from it and writes the URL from it, and only a
widget's on_change changes it (docs/url-state.md). Cached computations are in app/caches.py, the state type
in app/state.py.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from _plotly_utils.utils import convert_to_base64

from .. import markup
from .. import settings as us
from ..analysis.report import DTYPES
from ..models.config import BN_SIZE, PRESET_TITLES, PRESETS
from ..models.devices import available_devices
from ..units import format_bytes, format_ratio, format_value
from ..viz import describe, graphs, style
from ..viz.charts import copy_json
from . import caches, keys
from .state import AppState

IMPL_TITLES = {
    "checkpoint": "Checkpoint (torchvision's)",
    "recompute_bn": "Recompute BN (leaner, faster)",
}


# ---- the sidebar -------------------------------------------------------------------------------------
# One settings dict per session (keys.SETTINGS), read from the URL when the session starts and written back to it
# on every run. Each run draws every control with that dict's value, and a control changes the dict only from its
# on_change callback, i.e. when the user moved it: a widget state that Streamlit dropped (a page switch in the
# middle of a run) comes back at the dict's value instead of the widget's minimum, and is never read back
# (docs/url-state.md).

_SETTING = {key: name for name, key in keys.CONTROL.items()}  # a control's widget key -> its settings name


def _shown(name: str, settings: dict[str, Any]) -> Any:
    """The value the control `name` shows for these settings."""
    value = settings[name]
    if name == "block_config":
        return us.format_blocks(value)
    return (value or BN_SIZE) if name == "bn_size" else value


def _changed(key: str) -> None:
    """on_change of a settings control: the user's value waits in keys.CHANGES until this run applies it."""
    ss = st.session_state
    ss[keys.CHANGES] = {**ss.get(keys.CHANGES, {}), key: ss[key]}


def _preset_chosen() -> None:
    """on_change of the preset menu, on_click of its reset button: the chosen preset's model, other changes dropped."""
    ss = st.session_state
    ss[keys.PRESET_CHOSEN] = ss[keys.CONTROL["preset"]]
    ss[keys.CHANGES] = {}
    ss[keys.SETTINGS] = us.with_preset(ss[keys.SETTINGS], ss[keys.PRESET_CHOSEN])


def _apply_changes(settings: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The settings with the user's pending changes, or as they were and the error that refuses the changes (which
    stay pending, shown in their controls, until they make a valid model or the control shows something else)."""
    ss = st.session_state
    pending = {k: v for k, v in ss.get(keys.CHANGES, {}).items() if k in ss and ss[k] == v}
    ss[keys.CHANGES] = pending
    changes = {_SETTING[k]: v for k, v in pending.items() if k != keys.BOTTLENECK}
    if keys.BOTTLENECK in pending:  # the toggle switches bn_size between 0 and a width
        width = changes.get("bn_size") or settings["bn_size"] or BN_SIZE
        changes["bn_size"] = width if pending[keys.BOTTLENECK] else 0
    if not changes:
        return settings, None
    try:
        settings = us.apply_changes(settings, changes)
    except ValueError as exc:
        return settings, f"Invalid settings: {markup.message(exc)}."
    ss[keys.CHANGES] = {}
    return settings, None


def _show_settings(settings: dict[str, Any]) -> None:
    """Put the settings into every control's widget state that shows something else (after a preset, a reset, or
    a value left from an earlier page), except the user's own pending values."""
    ss = st.session_state
    shown = {keys.CONTROL[n]: _shown(n, settings) for n in settings}
    shown[keys.BOTTLENECK] = settings["bn_size"] > 0
    shown[keys.CONTROL["preset"]] = ss[keys.PRESET_CHOSEN]
    if not settings["bn_size"]:
        del shown[keys.CONTROL["bn_size"]]  # hidden with the toggle off: keeps its width for the toggle
    pending = ss.get(keys.CHANGES, {})
    for key, value in shown.items():
        if key in ss and ss[key] != value and key not in pending:
            ss[key] = value


def _bounds(name: str) -> tuple[Any, Any]:
    """A control's (low, high) range from settings.CONTROLS, the one place the URL parser also reads."""
    control = us.BY_NAME[name]
    return control.low, control.high


def _draw_controls(sb: Any, visible: frozenset[str], headers: bool = True) -> None:
    """The widgets of the visible controls, in teaching order, in `sb`: st.sidebar, or a container in the page.

    Each starts from the session's settings and reports a change through its on_change (see above)."""
    ss = st.session_state
    settings, c, key = ss[keys.SETTINGS], us.BY_NAME, keys.CONTROL

    def opts(name: str) -> dict[str, Any]:
        return {"key": key[name], "on_change": _changed, "args": (key[name],)}

    def index(name: str, options: list[str]) -> int:
        return options.index(settings[name])

    if headers and visible & {"preset", *us.MODEL_FIELDS}:
        sb.header("Model")
    if "preset" in visible:
        options = [*us.densenet_presets(), us.CUSTOM]
        chosen = ss[keys.PRESET_CHOSEN]
        sb.selectbox(c["preset"].label, options, index=options.index(chosen), key=key["preset"],
                     format_func=lambda n: PRESET_TITLES.get(n, "Custom"), on_change=_preset_chosen)
        if chosen != us.CUSTOM and settings["preset"] != chosen:
            sb.caption(f"Changed from {PRESET_TITLES[chosen]}: a custom model.")
            sb.button(f"Reset to {PRESET_TITLES[chosen]}", key=keys.PRESET_RESET, on_click=_preset_chosen)
    if "growth_rate" in visible:
        sb.slider(c["growth_rate"].label, *_bounds("growth_rate"), value=settings["growth_rate"],
                  help="Channels every dense layer adds.", **opts("growth_rate"))
    if "block_config" in visible:
        sb.text_input(c["block_config"].label, value=_shown("block_config", settings), max_chars=us.MAX_BLOCKS_CHARS,
                      help="One number per dense block, e.g. 6, 12, 24, 16"
                      f" (1 to {us.MAX_BLOCKS} blocks, {_bounds('block_config')[0]} to "
                      f"{_bounds('block_config')[1]} layers each).", **opts("block_config"))
    if "num_init_features" in visible:
        sb.number_input(c["num_init_features"].label, *_bounds("num_init_features"),
                        value=settings["num_init_features"], step=1, help="Channels the stem hands to the first block.",
                        **opts("num_init_features"))
    if "bn_size" in visible:
        bottleneck = settings["bn_size"] > 0
        sb.toggle("Bottleneck (1×1 conv before the 3×3, '-B')", value=bottleneck, key=keys.BOTTLENECK,
                  on_change=_changed, args=(keys.BOTTLENECK,))
        if bottleneck:  # 0 is the toggle's
            sb.slider("Bottleneck width (× k)", 1, _bounds("bn_size")[1], value=settings["bn_size"], **opts("bn_size"))
    if "compression" in visible:
        sb.slider(c["compression"].label, *_bounds("compression"), value=settings["compression"], step=0.05,
                  help="A transition keeps floor(θ·c) of its c channels ('-C'; θ = 1: no compression).",
                  **opts("compression"))
    if "stem" in visible:
        sb.radio(c["stem"].label, us.STEMS, index=index("stem", list(us.STEMS)), horizontal=True,
                 format_func={"imagenet": "ImageNet (7×7/2 + pool)", "cifar": "CIFAR (3×3)"}.get, **opts("stem"))
    if "num_classes" in visible:
        sb.number_input(c["num_classes"].label, *_bounds("num_classes"), value=settings["num_classes"], step=1,
                        **opts("num_classes"))
    if headers and visible & {"input_size", "batch_size", "dtype", "device", "memory_efficient", "efficient_impl"}:
        sb.header("Input and device")
    if "input_size" in visible:
        sb.number_input(c["input_size"].label, *_bounds("input_size"), value=settings["input_size"], step=8,
                        **opts("input_size"))
    if "batch_size" in visible:
        sb.number_input(c["batch_size"].label, *_bounds("batch_size"), value=settings["batch_size"], step=1,
                        **opts("batch_size"))
    if "dtype" in visible:
        sb.selectbox(c["dtype"].label, us.DTYPES, index=index("dtype", list(us.DTYPES)), **opts("dtype"))
    if "device" in visible:
        devices = available_devices()
        sb.selectbox(c["device"].label, devices, index=index("device", list(devices)), **opts("device"))
    if "memory_efficient" in visible:
        sb.toggle(c["memory_efficient"].label, value=settings["memory_efficient"],
                  help="Keep less for backward and recompute it there instead: no dense layer stores its "
                       "concatenated input. What each implementation keeps: see its help below.",
                  **opts("memory_efficient"))
    if "efficient_impl" in visible and settings["memory_efficient"]:
        impls = list(us.EFFICIENT_IMPLS)
        sb.selectbox(c["efficient_impl"].label, impls, index=index("efficient_impl", impls),
                     format_func=IMPL_TITLES.get,
                     help="Recompute BN keeps each layer's 1×1 output and re-runs concat-BN-ReLU in backward, no "
                          "convolution twice. Checkpoint keeps the 1×1 output and its BN-ReLU and re-runs "
                          "concat-BN-ReLU-Conv1×1. Under autocast, Recompute BN checkpoints instead.",
                     **opts("efficient_impl"))
    if "baseline" in visible:
        if headers:
            sb.header("Baseline")
        options = us.baseline_choices(settings["stem"])
        sb.selectbox(c["baseline"].label, options, index=options.index(settings["baseline"]),
                     format_func=us.baseline_title, **opts("baseline"))


def open_box(where: Any, label: str, key: str) -> Any | None:
    """An expander whose content is drawn only while it is open (opening or closing it reruns the page): the box
    to draw into, or None while it is closed."""
    box = where.expander(label, key=key, on_change="rerun")
    return box if box.open else None


def _share_box(settings: dict[str, Any], visible: frozenset[str]) -> None:
    """The link to this model, and a lesson link that shows only the controls a teacher picks."""
    # Its content is drawn only while it is open (opening reruns the page): a link and a 15-option menu on every
    # rerun of every page cost a twentieth of a rerun, for the teacher who opens it now and then.
    box = open_box(st.sidebar, "Share this model / make a lesson link", keys.SHARE_BOX)
    if box is None:
        return
    with box:
        base = (getattr(st.context, "url", None) or "").split("?")[0]
        st.caption("This link reopens the same model and settings:")
        st.code(f"{base}?{us.query_string(us.settings_to_query(settings, visible))}", language="text", wrap_lines=True)
        names = [c.name for c in us.CONTROLS]
        picked = st.multiselect("Lesson link: controls students may change", names, default=[],
                                format_func=lambda n: us.BY_NAME[n].label, key=keys.LESSON_PICK)
        if picked:
            st.code(f"{base}?{us.query_string(us.settings_to_query(settings, picked))}", language="text",
                    wrap_lines=True)


def is_lesson() -> bool:
    """Whether this session came from a lesson link (some controls hidden), so its controls go in the page."""
    visible = st.session_state.get(keys.VISIBLE)
    return visible is not None and len(visible) < len(us.CONTROLS)


def lesson_controls(where: Any = None) -> None:
    """On a lesson link, the controls it leaves visible, drawn here (right above the figure they drive).

    Pages call it just above their main figure; app.py calls it again after the page, with a container at the
    top of the page, for a page that did not. Only the first call of a run draws (one widget per key).
    """
    ss = st.session_state
    if not is_lesson() or not ss[keys.VISIBLE] or ss.get(keys.LESSON_DRAWN) == ss.get(keys.SIDEBAR_RUNS):
        return
    ss[keys.LESSON_DRAWN] = ss.get(keys.SIDEBAR_RUNS)
    box = (st if where is None else where).container(border=True, key=keys.LESSON_BOX)
    box.caption("**This lesson's controls**: move them and watch the figure below follow.")
    _draw_controls(box, ss[keys.VISIBLE], headers=False)


def stop_with_error(message: str) -> None:
    """Show an error in the page and end this run without a traceback."""
    st.error(message)
    st.stop()


def _start_session() -> None:
    """Once per session: the settings from the URL (and what the URL got wrong)."""
    ss = st.session_state
    if keys.SETTINGS not in ss:
        query = us.settings_from_query(st.query_params.to_dict(), available_devices())
        ss[keys.SETTINGS] = query.settings
        ss[keys.PRESET_CHOSEN] = query.settings["preset"]
        ss[keys.VISIBLE] = query.visible
        ss[keys.URL_WARNINGS] = query.warnings
        ss[keys.URL_SETTINGS] = dict(query.settings)


def sidebar() -> AppState:
    """Draw the shared controls, apply what the user changed, write the URL, and store the AppState in session state."""
    _start_session()
    ss = st.session_state
    visible = ss[keys.VISIBLE]
    ss[keys.SIDEBAR_RUNS] = ss.get(keys.SIDEBAR_RUNS, 0) + 1
    settings, error = _apply_changes(ss[keys.SETTINGS])
    ss[keys.SETTINGS] = settings
    _show_settings(settings)
    if is_lesson():
        # The widgets are drawn later in this run, in the page (lesson_controls).
        fixed = [c.label for c in us.CONTROLS if c.name not in visible]
        if visible:
            st.sidebar.caption("This lesson's controls are in the page, above the figure they change.")
        st.sidebar.caption(f"Fixed by this lesson link: {', '.join(fixed)}.")
    else:
        _draw_controls(st.sidebar, visible)
    shown = visible if len(visible) < len(us.CONTROLS) else None
    query = us.settings_to_query(settings, shown)
    query.update({k: v for k, v in st.query_params.to_dict().items() if k in us.PAGE_KEYS})
    # Every run, unconditionally: st.query_params holds the URL the browser sent with this run's request, which
    # can be older than what an interrupted run wrote since; comparing with it left stale values in the address bar.
    st.query_params.from_dict(query)
    if error:
        lesson_controls()  # a lesson's controls still show the refused value, above the error
        stop_with_error(error)
    # What the opening link got wrong stays on screen until the first change of a setting.
    if ss.get(keys.URL_WARNINGS) and settings == ss.get(keys.URL_SETTINGS):
        problems = "\n".join(f"- {markup.message(w)}" for w in ss[keys.URL_WARNINGS])
        st.warning(f"The link had problems, so defaults were used:\n{problems}")
    else:
        ss[keys.URL_WARNINGS] = []
    _share_box(settings, visible)
    config = us.config_from_settings(settings)
    name, baseline = caches.baseline(config, settings["baseline"])
    state = AppState(
        config=config,
        baseline=baseline,
        input_size=settings["input_size"],
        batch_size=settings["batch_size"],
        dtype=DTYPES[settings["dtype"]],
        device=settings["device"],
        preset=settings["preset"],
        baseline_name=name,
    )
    ss[keys.STATE] = state
    return state


def _run_through_app() -> None:
    """Make sure app.py (page config, sidebar, navigation) runs before the page that called get_state.

    Streamlit 1.67 treats a folder named pages/ as its old multipage mode until some run calls
    st.navigation: on a fresh server, a deep link (/connectivity) that arrives before the first run of
    app.py has navigated runs that page alone, with no sidebar, under a page list that Streamlit built
    from the folder with app.py as its main page. That list, not the process-wide flag (another session
    may have cleared it meanwhile), tells this run apart; switching the flag off and rerunning sends the
    same request through app.py. (AppTest resets the flag on every run, so its page switches need it too.)
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
        from streamlit.runtime.scriptrunner import get_script_run_ctx
    except ImportError:  # a Streamlit without the old mode
        return
    ctx = get_script_run_ctx()
    pages = ctx.pages_manager.get_pages() if ctx is not None else {}
    if any(Path(str(info.get("script_path", ""))).name == "app.py" for info in pages.values()):
        PagesManager.uses_pages_directory = False
        st.rerun()


def get_state() -> AppState:
    """The AppState of this session (defaults until the sidebar has run)."""
    _run_through_app()
    if keys.STATE not in st.session_state:
        config = PRESETS[us.DEFAULT_PRESET]
        name, baseline = us.resolve_baseline(config, "auto-params")
        st.session_state[keys.STATE] = AppState(config=config, baseline=baseline, baseline_name=name)
    return st.session_state[keys.STATE]


def comparison_display(table: pd.DataFrame, state: AppState) -> pd.DataFrame:
    """The comparison table as text cells with units, columns named after the two models."""
    return pd.DataFrame(
        {
            "quantity": table["quantity"],
            state.title: [format_value(v, u) for v, u in zip(table["densenet"], table["unit"], strict=True)],
            state.baseline_title: [format_value(v, u) for v, u in zip(table["resnet"], table["unit"], strict=True)],
            "DenseNet ÷ ResNet": [format_ratio(r) for r in table["ratio"]],
        }
    )


def trade_display(measured: pd.DataFrame) -> pd.DataFrame:
    """The measured trade as table cells with units (peak memory only where the device reports it)."""
    table = pd.DataFrame(
        {
            "mode": measured["mode"],
            "median step (s)": measured["median_step_s"].round(3),
            "saved activations": [format_bytes(b) for b in measured["activation_bytes"]],
            "time ÷ plain": [format_ratio(r) for r in measured["time_ratio"]],
            "memory ÷ plain": [format_ratio(r) for r in measured["memory_ratio"]],
        }
    )
    if measured["peak_bytes"].notna().any():
        table["peak (device)"] = [format_bytes(b) if pd.notna(b) else "–" for b in measured["peak_bytes"]]
    return table



# ---- display helpers for pages -------------------------------------------------------------------------


def is_dark() -> bool:
    """Whether the browser shows the dark theme (light when it has not said yet)."""
    theme = getattr(st.context, "theme", None)
    return getattr(theme, "type", None) == "dark"


def header(title: str, state: AppState, intro: str = "") -> None:
    """The page title, the model it is about, and a one-paragraph introduction."""
    st.title(title)
    st.caption(
        f"**{state.title}** (depth {state.config.depth}, k = {state.config.growth_rate}) vs "
        f"**{state.baseline_title}** · input {state.input_size}×{state.input_size} · batch {state.batch_size} · "
        f"{state.dtype_name} · {state.device}"
    )
    if intro:
        st.markdown(intro)


def is_projector() -> bool:
    """Whether this session shows the projector theme (the sidebar's switch, or ?projector=1 in the link)."""
    return bool(st.session_state.get(keys.PROJECTOR))


def projector_switch() -> None:
    """The sidebar's projector switch: seeded from the link's projector=1, kept in the URL, and when on, the
    page's type grows with the figures' (style.PROJECTOR_CSS)."""
    ss = st.session_state
    if keys.PROJECTOR not in ss:
        ss[keys.PROJECTOR] = st.query_params.get(us.PROJECTOR_KEY) == "1"
    st.sidebar.toggle("Projector: large type, thick lines", key=keys.PROJECTOR,
                      help=f"For the screen at the front of a room. A link with ?{us.PROJECTOR_KEY}=1 opens with it "
                           "on.")
    if is_projector() != (st.query_params.get(us.PROJECTOR_KEY) == "1"):
        if is_projector():
            st.query_params[us.PROJECTOR_KEY] = "1"
        else:
            del st.query_params[us.PROJECTOR_KEY]
    if is_projector():
        st.html(f"<style>{style.PROJECTOR_CSS}</style>")


def text_alternative(alt: describe.TextAlternative, key: str, where: Any = None,
                     label: str = "The numbers in this chart, as a table") -> None:
    """A figure's text alternative under it: the summary (what a screen reader reads), and its table to open."""
    where = st if where is None else where
    where.caption(markup.plain(alt.summary, limit=3000))
    # The table is drawn only while its expander is open (opening it reruns the page): built and sent for every
    # chart on every rerun, the tables cost a fifth of a page's server time, for the few who open one.
    box = open_box(where, label, keys.numbers_box(key))
    if box is not None:
        box.dataframe(alt.table, hide_index=True, key=keys.numbers_table(key))


class _Final(go.Figure):
    """A figure whose plain dict is final (themed, arrays in plotly's binary form). st.plotly_chart asks its
    argument for to_dict(), which a go.Figure answers with a deep copy, and a dict it validates property by
    property: each cost more than the rest of the chart's way to the page."""

    def __init__(self, spec: dict) -> None:  # no go.Figure.__init__: nothing but to_dict() is ever asked of it
        object.__setattr__(self, "_spec", spec)

    def to_dict(self) -> dict:
        """The final dict, as it is (Streamlit only serialises it)."""
        return self._spec


def _themed(fig: go.Figure, dark: bool, projector: bool) -> tuple[_Final, describe.TextAlternative]:
    """The figure in a theme, ready for st.plotly_chart, and its text alternative: made once per figure and theme
    (kept on the figure, which caches.chart shares between sessions and never changes)."""
    made = fig.__dict__.setdefault("_themed", {})
    if (dark, projector) in made:
        return made[dark, projector]
    # One copy of the figure as plain JSON serves the description and the themed figure. The layout's template
    # (plotly's default, half the layout) is shared, not copied, unless the projector theme scales its fonts.
    data, props = [t.to_plotly_json() for t in fig.data], fig.layout._props
    layout = {k: copy_json(v) for k, v in props.items() if k != "template"}
    alt = describe.figure(fig, (data, layout))
    convert_to_base64(data)  # numpy arrays as plotly's compact typed arrays, as go.Figure.to_dict() gives them
    convert_to_base64(layout)
    if projector:  # the projector theme scales every font, the template's too: on a copy
        layout.update({k: copy_json(v) for k, v in props.items() if k == "template"})
        style.projector_spec({"data": data, "layout": layout}, dark=dark)
    else:
        style.readable_text(layout, dark)
        layout.update({k: v for k, v in props.items() if k == "template"})
    made[dark, projector] = _Final({"data": data, "layout": layout}), alt
    return made[dark, projector]


def plot(figure: go.Figure | Callable[..., go.Figure], *args: Any, key: str, where: Any = None, **kwargs: Any) -> None:
    """A plotly figure at full width, following Streamlit's light or dark theme (and the projector theme), with its
    text alternative (describe.figure) under it; `where` is a column or container (the page by default).

    `figure` is a go.Figure, or a viz function that builds one from args and kwargs: then the figure is built once per
    server for arguments equal in value (caches.chart). Either is themed once per theme."""
    fig = figure if isinstance(figure, go.Figure) else caches.chart(figure, *args, **kwargs)
    final, alt = _themed(fig, is_dark(), is_projector())
    (st if where is None else where).plotly_chart(final, key=key, theme="streamlit", config={"displaylogo": False})
    text_alternative(alt, key, where)


def graph(trace: graphs.Trace, key: str, highlight: str | None = None, where: Any = None,
          width: str = "stretch") -> None:
    """A graphviz diagram of `trace` in the page's light or dark theme (and the projector theme), with its text
    alternative (describe.graph: every arrow as a table row) under it."""
    dot = graphs.draw(trace, highlight=highlight, dark=is_dark(), projector=is_projector())
    (st if where is None else where).graphviz_chart(dot, width=width)
    text_alternative(describe.graph(trace), key, where, label="Every box and arrow of this diagram, as a table")


@functools.lru_cache(maxsize=64)
def _source(obj: Any) -> str:
    return inspect.getsource(obj)  # reads and tokenises the file: ~15 ms, on every rerun of a page without this


def show_code(*objects: Any, label: str = "Show the code behind this") -> None:
    """An expander with the real source of the classes or functions a figure comes from."""
    # Drawn only while it is open (opening reruns the page): a browser highlights the ~300 lines on every page
    # load (0.6 of the 2.4 CPU-s a Build page load costs Chromium), for the few who open it.
    box = open_box(st, label, keys.code_box(objects[0].__qualname__))
    if box is not None:
        for obj in objects:
            box.code(_source(obj), language="python")
