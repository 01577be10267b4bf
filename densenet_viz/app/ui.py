"""The shared sidebar (URL settings, lesson links) and small display helpers for pages.

Contract for pages: call `get_state()` at the top; it returns the AppState the sidebar (drawn once by
app.py through `sidebar()`) put in st.session_state. Settings live in three places kept in step: the
widgets (keys = settings control names), a canonical dict in session state (which survives controls a
lesson link hides), and the URL query string (so a link reopens the same model). Cached computations are
in app/caches.py, the state type in app/state.py.
"""

from __future__ import annotations

import copy
import functools
import inspect
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from .. import markup
from ..analysis.report import DTYPES
from ..models.config import PRESET_TITLES, PRESETS
from ..models.devices import available_devices
from ..units import format_bytes, format_ratio, format_value
from ..viz import describe, graphs, style
from ..viz.charts import figure
from . import caches, keys
from . import settings as us
from .state import AppState

IMPL_TITLES = {
    "checkpoint": "Checkpoint (torchvision's)",
    "recompute_bn": "Recompute BN (leaner, faster)",
}


# ---- the sidebar -------------------------------------------------------------------------------------


def _widget_value(name: str, value: Any) -> Any:
    return us.format_blocks(value) if name == "block_config" else value


def _on_preset() -> None:
    """Fill the model controls from the chosen preset (and the input size its family uses)."""
    name = st.session_state["preset"]
    if name == us.CUSTOM:
        return
    old_stem = st.session_state.get("stem")
    for field, value in us.preset_settings(name).items():
        st.session_state[field] = _widget_value(field, value)
    st.session_state[keys.BOTTLENECK] = PRESETS[name].bn_size > 0
    if PRESETS[name].bn_size == 0:
        st.session_state["bn_size"] = 4
    if PRESETS[name].stem != old_stem:
        st.session_state["input_size"] = us.default_size(PRESETS[name].stem)


def _current_preset() -> str:
    """The preset the model controls match now ('custom' when none, or when a control is invalid)."""
    try:
        return us.matching_preset(_read_settings(st.session_state[keys.SETTINGS]))
    except ValueError:
        return us.CUSTOM


def _read_settings(canonical: dict[str, Any]) -> dict[str, Any]:
    """Settings from the widgets' session state, falling back to the canonical value (hidden controls)."""
    ss = st.session_state
    settings = {name: ss[name] if name in ss else canonical[name] for name in canonical}
    if "block_config" in ss:
        settings["block_config"] = us.parse_blocks(ss["block_config"])
    if keys.BOTTLENECK in ss and "bn_size" in ss:
        settings["bn_size"] = ss["bn_size"] if ss[keys.BOTTLENECK] else 0
    return settings


def _init_session() -> None:
    """Once per session: read the URL into the canonical settings and seed every widget from them."""
    ss = st.session_state
    if keys.SETTINGS not in ss:
        query = us.settings_from_query(st.query_params.to_dict(), available_devices())
        ss[keys.SETTINGS] = query.settings
        ss[keys.VISIBLE] = query.visible
        ss[keys.URL_WARNINGS] = query.warnings
        ss[keys.URL_SETTINGS] = dict(query.settings)
    canonical = ss[keys.SETTINGS]
    for name, value in canonical.items():
        if name not in ss:
            ss[name] = _widget_value(name, value if name != "bn_size" or value > 0 else 4)
    if keys.BOTTLENECK not in ss:
        ss[keys.BOTTLENECK] = canonical["bn_size"] > 0


def _bounds(name: str) -> tuple[Any, Any]:
    """A control's (low, high) range from settings.CONTROLS, the one place the URL parser also reads."""
    control = us.BY_NAME[name]
    return control.low, control.high


def _draw_controls(sb: Any, visible: frozenset[str], headers: bool = True) -> None:
    """The widgets of the visible controls, in teaching order, in `sb`: st.sidebar, or a container in the page."""
    c = us.BY_NAME
    if headers and visible & {"preset", *us.MODEL_FIELDS}:
        sb.header("Model")
    if "preset" in visible:
        options = [*us.densenet_presets(), us.CUSTOM]
        # Only the user writes this menu: a callback of another widget writing it races with the browser's
        # stale copy of its value, which would fire _on_preset and undo fast slider moves.
        sb.selectbox(c["preset"].label, options, format_func=lambda n: PRESET_TITLES.get(n, "Custom"), key="preset",
                     on_change=_on_preset)
        chosen = st.session_state["preset"]
        if chosen != us.CUSTOM and _current_preset() != chosen:
            sb.caption(f"Changed from {PRESET_TITLES[chosen]}: a custom model.")
            sb.button(f"Reset to {PRESET_TITLES[chosen]}", key=keys.PRESET_RESET, on_click=_on_preset)
    if "growth_rate" in visible:
        sb.slider(c["growth_rate"].label, *_bounds("growth_rate"), key="growth_rate",
                  help="Channels every dense layer adds.")
    if "block_config" in visible:
        sb.text_input(c["block_config"].label, key="block_config", max_chars=us.MAX_BLOCKS_CHARS,
                      help="One number per dense block, e.g. 6, 12, 24, 16"
                      f" (1 to {us.MAX_BLOCKS} blocks, {_bounds('block_config')[0]} to "
                      f"{_bounds('block_config')[1]} layers each).")
    if "num_init_features" in visible:
        sb.number_input(c["num_init_features"].label, *_bounds("num_init_features"), step=1, key="num_init_features",
                        help="Channels the stem hands to the first block.")
    if "bn_size" in visible:
        sb.toggle("Bottleneck (1×1 conv before the 3×3, '-B')", key=keys.BOTTLENECK)
        if st.session_state[keys.BOTTLENECK]:
            sb.slider("Bottleneck width (× k)", 1, _bounds("bn_size")[1], key="bn_size")  # 0 is the toggle's
    if "compression" in visible:
        sb.slider(c["compression"].label, *_bounds("compression"), step=0.05, key="compression",
                  help="A transition keeps floor(θ·c) of its c channels ('-C'; θ = 1: no compression).")
    if "stem" in visible:
        sb.radio(c["stem"].label, us.STEMS, key="stem", horizontal=True,
                 format_func={"imagenet": "ImageNet (7×7/2 + pool)", "cifar": "CIFAR (3×3)"}.get)
    if "num_classes" in visible:
        sb.number_input(c["num_classes"].label, *_bounds("num_classes"), step=1, key="num_classes")
    if headers and visible & {"input_size", "batch_size", "dtype", "device", "memory_efficient", "efficient_impl"}:
        sb.header("Input and device")
    if "input_size" in visible:
        sb.number_input(c["input_size"].label, *_bounds("input_size"), step=8, key="input_size")
    if "batch_size" in visible:
        sb.number_input(c["batch_size"].label, *_bounds("batch_size"), step=1, key="batch_size")
    if "dtype" in visible:
        sb.selectbox(c["dtype"].label, us.DTYPES, key="dtype")
    if "device" in visible:
        sb.selectbox(c["device"].label, available_devices(), key="device")
    if "memory_efficient" in visible:
        sb.toggle(c["memory_efficient"].label, key="memory_efficient",
                  help="Keep less for backward and recompute it there instead: no dense layer stores its "
                       "concatenated input. What each implementation keeps: see its help below.")
    if "efficient_impl" in visible and st.session_state.get("memory_efficient"):
        sb.selectbox(c["efficient_impl"].label, us.EFFICIENT_IMPLS, key="efficient_impl", format_func=IMPL_TITLES.get,
                     help="Recompute BN keeps each layer's 1×1 output and re-runs concat-BN-ReLU in backward, no "
                          "convolution twice. Checkpoint keeps the 1×1 output and its BN-ReLU and re-runs "
                          "concat-BN-ReLU-Conv1×1. Under autocast, Recompute BN checkpoints instead.")
    if "baseline" in visible:
        if headers:
            sb.header("Baseline")
        options = us.baseline_choices(st.session_state.get("stem", "imagenet"))
        if st.session_state.get("baseline") not in options:
            st.session_state["baseline"] = "auto-params"
        sb.selectbox(c["baseline"].label, options, format_func=us.baseline_title, key="baseline")


def _share_box(settings: dict[str, Any], visible: frozenset[str]) -> None:
    """The link to this model, and a lesson link that shows only the controls a teacher picks."""
    with st.sidebar.expander("Share this model / make a lesson link"):
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
    box = (st if where is None else where).container(border=True, key="lesson_box")
    box.caption("**This lesson's controls**: move them and watch the figure below follow.")
    _draw_controls(box, ss[keys.VISIBLE], headers=False)


def stop_with_error(message: str) -> None:
    """Show an error in the page and end this run without a traceback."""
    st.error(message)
    st.stop()


def sidebar() -> AppState:
    """Draw the shared controls, validate them, sync the URL, and store the AppState in session state."""
    _init_session()
    ss = st.session_state
    visible = ss[keys.VISIBLE]
    ss[keys.SIDEBAR_RUNS] = ss.get(keys.SIDEBAR_RUNS, 0) + 1
    if is_lesson():
        # The widgets are drawn later in this run, in the page (lesson_controls); their values are already in
        # session state (the browser sends them before the run starts), so the state below is current.
        fixed = [c.label for c in us.CONTROLS if c.name not in visible]
        if visible:
            st.sidebar.caption("This lesson's controls are in the page, above the figure they change.")
        st.sidebar.caption(f"Fixed by this lesson link: {', '.join(fixed)}.")
    else:
        _draw_controls(st.sidebar, visible)
    try:
        settings = _read_settings(ss[keys.SETTINGS])
        settings["preset"] = us.matching_preset(settings)  # the menu may still show the preset it started from
        us.check_ranges(settings)
        config = us.config_from_settings(settings)
        us.check_input_size(config, settings["input_size"])
    except ValueError as exc:
        stop_with_error(f"Invalid settings: {markup.message(exc)}.")
    ss[keys.SETTINGS] = settings
    # What the opening link got wrong stays on screen until the first change of a setting.
    if ss.get(keys.URL_WARNINGS) and settings == ss.get(keys.URL_SETTINGS):
        problems = "\n".join(f"- {markup.message(w)}" for w in ss[keys.URL_WARNINGS])
        st.warning(f"The link had problems, so defaults were used:\n{problems}")
    else:
        ss[keys.URL_WARNINGS] = []
    shown = visible if len(visible) < len(us.CONTROLS) else None
    query = us.settings_to_query(settings, shown)
    query.update({k: v for k, v in st.query_params.to_dict().items() if k in us.PAGE_KEYS})
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)
    _share_box(settings, visible)
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
        config = PRESETS["densenet121"]
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
    with where.expander(label):
        st.dataframe(alt.table, hide_index=True, key=f"{key}_numbers")


def plot(fig, key: str, where: Any = None) -> None:
    """A plotly figure at full width, following Streamlit's light or dark theme (and the projector theme), with
    its text alternative (describe.figure) under it; `where` is a column or container (the page by default)."""
    alt = describe.figure(fig)  # from the figure as built (to_dict writes its arrays in plotly's binary form)
    if is_projector():
        spec = style.projector_spec(fig.to_dict(), dark=is_dark())
    else:  # the traces as they are; a copy of the layout but its template (a cached figure may be shared)
        layout = {k: v if k == "template" else copy.deepcopy(v) for k, v in fig.layout.to_plotly_json().items()}
        spec = {"data": [t.to_plotly_json() for t in fig.data], "layout": style.readable_text(layout, is_dark())}
    fig = figure(spec["data"], spec["layout"])
    (st if where is None else where).plotly_chart(fig, key=key, theme="streamlit", config={"displaylogo": False})
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
    with st.expander(label):
        for obj in objects:
            st.code(_source(obj), language="python")
