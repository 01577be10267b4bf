"""The shared sidebar and small display helpers; the only module of densenet_viz that imports streamlit.

Contract for pages: call `get_state()` at the top; it returns the AppState the sidebar (drawn once by
app.py through `sidebar()`) put in st.session_state. Settings live in three places kept in step: the
widgets (keys = urlstate control names), a canonical dict in session state (which survives controls a
lesson link hides), and the URL query string (so a link reopens the same model).
"""

from __future__ import annotations

import gc
import inspect
import json
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st
import torch
from torch import nn

from ..analysis.budget import check_fits
from ..models.build import build_model
from ..models.config import PRESET_TITLES, PRESETS, DenseNetConfig, ResNetConfig, config_from_dict
from ..models.devices import available_devices
from ..viz import series
from ..viz.style import format_bytes, format_ratio, format_value
from . import settings as us
from . import work

# Session-state keys (widget keys are the control names of urlstate.CONTROLS).
STATE_KEY = "app_state"
SETTINGS_KEY = "settings"  # the canonical settings dict
VISIBLE_KEY = "visible_controls"  # controls a lesson link leaves visible
URL_WARNINGS_KEY = "url_warnings"  # what was wrong with the opening URL
URL_SETTINGS_KEY = "url_settings"  # the settings that URL opened (warnings show until they change)
BOTTLENECK_KEY = "bottleneck"  # the on/off toggle beside the bn_size slider
LESSON_PICK_KEY = "lesson_controls"  # the share box's multiselect
PRESET_RESET_KEY = "reset_to_preset"  # the button that undoes changes to the chosen preset
TRADE_KEY = "measured_trade"  # {config key: measured DataFrame}

IMPL_TITLES = {
    "checkpoint": "Checkpoint: recompute concat-BN-ReLU-Conv1×1 (torchvision)",
    "recompute_bn": "Recompute concat-BN-ReLU only (no conv twice)",
}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


@dataclass(frozen=True)
class AppState:
    """Everything the sidebar chose: the model config plus how to run it."""

    config: DenseNetConfig
    baseline: ResNetConfig
    input_size: int = 224
    batch_size: int = 1
    dtype: torch.dtype = torch.float32
    device: str = "cpu"
    preset: str = us.DEFAULT_PRESET  # the DenseNet preset these settings equal, or "custom"
    baseline_name: str = "resnet18"  # PRESETS name of the baseline

    @property
    def title(self) -> str:
        """How the page headers name the model."""
        return PRESET_TITLES.get(self.preset, f"Custom DenseNet (depth {self.config.depth})")

    @property
    def baseline_title(self) -> str:
        """How the page headers name the baseline."""
        return PRESET_TITLES.get(self.baseline_name, self.baseline_name)

    @property
    def dtype_name(self) -> str:
        """The dtype as the URL and the caches spell it."""
        return next(n for n, d in DTYPES.items() if d == self.dtype)


# ---- cached computations (keyed on JSON text: hashable, and the same for equal configs) -----------


def config_key(config: DenseNetConfig | ResNetConfig) -> str:
    """A canonical text key for caches."""
    return json.dumps(config.to_dict(), sort_keys=True)


@st.cache_data(max_entries=64, show_spinner=False)
def _baseline(config_json: str, choice: str) -> tuple[str, dict]:
    name, config = us.resolve_baseline(config_from_dict(json.loads(config_json)), choice)
    return name, config.to_dict()


@st.cache_data(max_entries=64, show_spinner=False)
def _analyze(config_json: str, input_size: int, batch_size: int, dtype_name: str):
    from ..analysis.closed_form import analyze

    config = config_from_dict(json.loads(config_json))
    return analyze(config, input_size=input_size, batch_size=batch_size, dtype=DTYPES[dtype_name])


def analysis(state: AppState, config: DenseNetConfig | ResNetConfig | None = None):
    """The analysis report of the state's model (or of `config` at the state's input, batch and dtype)."""
    config = state.config if config is None else config
    return _analyze(config_key(config), state.input_size, state.batch_size, state.dtype_name)


@st.cache_data(max_entries=16, show_spinner=False)
def _sweeps(config_json: str, input_size: int, batch_size: int, dtype_name: str) -> dict[str, pd.DataFrame]:
    config, dtype = config_from_dict(json.loads(config_json)), DTYPES[dtype_name]
    return {
        "growth": series.sweep_growth(config, input_size, batch_size, dtype),
        "depth": series.sweep_depth(config, input_size, batch_size, dtype),
        "resnets": series.resnet_family(config, input_size, batch_size, dtype),
    }


def sweeps(state: AppState) -> dict[str, pd.DataFrame]:
    """The growth-rate sweep, the depth sweep and the ResNet reference points (cached)."""
    return _sweeps(config_key(state.config), state.input_size, state.batch_size, state.dtype_name)


@st.cache_data(max_entries=16, show_spinner=False)
def _block_memory_growth(config_json: str, input_size: int, batch_size: int, dtype_name: str) -> pd.DataFrame:
    config = config_from_dict(json.loads(config_json))
    return series.block_memory_growth(config, input_size, batch_size, DTYPES[dtype_name])


def block_memory_growth(state: AppState) -> pd.DataFrame:
    """Plain vs memory-efficient training memory of the model's first block as its layers grow (cached)."""
    return _block_memory_growth(config_key(state.config), state.input_size, state.batch_size, state.dtype_name)


@st.cache_data(max_entries=32, show_spinner=False)
def _largest_batches(config_json: str, input_size: int, budget_gib: float, dtype_name: str) -> pd.DataFrame:
    config = config_from_dict(json.loads(config_json))
    return series.largest_batches(config, input_size, budget_gib, DTYPES[dtype_name])


def largest_batches(state: AppState, budget_gib: float) -> pd.DataFrame:
    """The largest batch per mode that fits in budget_gib GiB (cached)."""
    return _largest_batches(config_key(state.config), state.input_size, float(budget_gib), state.dtype_name)


def comparison(state: AppState) -> pd.DataFrame:
    """The DenseNet and its baseline side by side (series.comparison_table of both cached reports)."""
    return series.comparison_table(analysis(state), analysis(state, state.baseline))


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


def measured_trade(state: AppState, run: bool) -> pd.DataFrame | None:
    """The measured plain-vs-efficient trade for this state: measured on the worker pool if asked.

    Kept in session state per config, input, batch and device, so it survives reruns but is measured
    only on request (it trains real models), and refused up front when over the compute budget.
    """
    key = (config_key(state.config), state.input_size, state.batch_size, state.device)
    results = dict(st.session_state.get(TRADE_KEY, {}))
    if run:
        from ..analysis.cost import trade_seconds
        from ..lab import tasks

        seconds = trade_seconds(state.config, state.input_size, state.batch_size, work.calibration())
        work.refuse_over_budget(seconds, f"Measuring the trade for {state.title} at batch {state.batch_size}",
                                "Choose a smaller batch size or input size, or fewer layers.")
        try:
            measured = work.run_job(("trade", *key), tasks.measure_trade,
                                    (state.config, state.input_size, state.batch_size, state.device),
                                    "Measuring the trade", deadline=work.deadline_s(seconds))
            if measured is not None:
                results = {key: measured}  # one measurement per session: the latest
        except torch.OutOfMemoryError as exc:
            report_out_of_memory(exc, f"measuring {state.title} on {state.device}")
        except (ValueError, MemoryError) as exc:
            st.error(f"Not measured: {exc}")
        st.session_state[TRADE_KEY] = results
    return results.get(key)


@dataclass(frozen=True)
class BuiltModel:
    """A model shared by every session (never mutate it; None when a worker built it), with how long its
    build took."""

    model: nn.Module | None
    seconds: float
    device: str
    class_name: str


@st.cache_resource(max_entries=2, ttl=3600, show_spinner=False)
def _build(config_json: str, device: str, dtype_name: str) -> BuiltModel:
    start = time.perf_counter()
    model = build_model(config_from_dict(json.loads(config_json)), device=device).to(DTYPES[dtype_name]).eval()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return BuiltModel(model, seconds, str(next(model.parameters()).device), type(model).__name__)


def refuse_if_too_big(state: AppState, batch_size: int | None = None, dtype_name: str | None = None) -> None:
    """Stop the page with st.error, before anything is allocated, when the model's weights and one forward
    pass (at the state's batch and dtype unless given) cannot fit in the device's free memory."""
    batch = state.batch_size if batch_size is None else batch_size
    report = _analyze(config_key(state.config), state.input_size, batch, dtype_name or state.dtype_name)
    needed = report.memory.weight_bytes + report.memory.inference_bytes
    try:
        check_fits(needed, state.device, what=f"{state.title} (weights + one forward pass at batch {batch})")
    except MemoryError as exc:
        st.error(f"Not built: {exc}")
        st.stop()


def built_model(state: AppState) -> BuiltModel:
    """The real model on the chosen device: refused with st.error if it cannot fit there or its build is over the
    compute budget; built here (cached) when quick, else timed on the worker pool (the page shows the timing)."""
    from ..analysis.cost import build_seconds
    from ..lab import tasks

    refuse_if_too_big(state)
    seconds = build_seconds(state.config, work.calibration())
    work.refuse_over_budget(seconds, f"Building {state.title} ({state.config.depth} layers)",
                            "Choose fewer layers per block, a smaller growth rate or fewer initial features.")
    try:
        if seconds < work.INLINE_S:
            return _build(config_key(state.config), state.device, state.dtype_name)
        timed = work.run_job(("build", config_key(state.config), state.device, state.dtype_name), tasks.build_seconds,
                             (state.config, state.device, state.dtype), "Building the model",
                             deadline=work.deadline_s(seconds))
        if timed is None:
            st.stop()
        return BuiltModel(None, *timed, class_name=type(state.config).__name__.removesuffix("Config"))
    except torch.OutOfMemoryError as exc:  # the estimate fitted, but the device's memory ran out anyway
        report_out_of_memory(exc, f"building {state.title} on {state.device}")
        st.stop()


def free_memory() -> None:
    """After an out-of-memory error: drop the cached models and return the allocator's cached blocks."""
    _build.clear()
    gc.collect()
    torch.cuda.empty_cache()  # a no-op unless CUDA has been initialised


def report_out_of_memory(exc: BaseException, what: str) -> None:
    """Free what can be freed and say on the page what ran out (the caller decides whether to stop)."""
    free_memory()
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    st.error(
        f"Out of memory while {what}: {first_line}. The cached models and the device's cached memory were "
        "freed; choose a smaller batch size, input size or model, or turn on the memory-efficient mode."
    )


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
    st.session_state[BOTTLENECK_KEY] = PRESETS[name].bn_size > 0
    if PRESETS[name].bn_size == 0:
        st.session_state["bn_size"] = 4
    if PRESETS[name].stem != old_stem:
        st.session_state["input_size"] = us.default_size(PRESETS[name].stem)


def _current_preset() -> str:
    """The preset the model controls match now ('custom' when none, or when a control is invalid)."""
    try:
        return us.matching_preset(_read_settings(st.session_state[SETTINGS_KEY]))
    except ValueError:
        return us.CUSTOM


def _read_settings(canonical: dict[str, Any]) -> dict[str, Any]:
    """Settings from the widgets' session state, falling back to the canonical value (hidden controls)."""
    ss = st.session_state
    settings = {name: ss[name] if name in ss else canonical[name] for name in canonical}
    if "block_config" in ss:
        settings["block_config"] = us.parse_blocks(ss["block_config"])
    if BOTTLENECK_KEY in ss and "bn_size" in ss:
        settings["bn_size"] = ss["bn_size"] if ss[BOTTLENECK_KEY] else 0
    return settings


def _init_session() -> None:
    """Once per session: read the URL into the canonical settings and seed every widget from them."""
    ss = st.session_state
    if SETTINGS_KEY not in ss:
        query = us.settings_from_query(st.query_params.to_dict(), available_devices())
        ss[SETTINGS_KEY] = query.settings
        ss[VISIBLE_KEY] = query.visible
        ss[URL_WARNINGS_KEY] = query.warnings
        ss[URL_SETTINGS_KEY] = dict(query.settings)
    canonical = ss[SETTINGS_KEY]
    for name, value in canonical.items():
        if name not in ss:
            ss[name] = _widget_value(name, value if name != "bn_size" or value > 0 else 4)
    if BOTTLENECK_KEY not in ss:
        ss[BOTTLENECK_KEY] = canonical["bn_size"] > 0


def _draw_controls(visible: frozenset[str]) -> None:
    """The widgets of the visible controls, in teaching order."""
    sb, c = st.sidebar, us.BY_NAME
    if visible & {"preset", *us.MODEL_FIELDS}:
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
            sb.button(f"Reset to {PRESET_TITLES[chosen]}", key=PRESET_RESET_KEY, on_click=_on_preset)
    if "growth_rate" in visible:
        sb.slider(c["growth_rate"].label, 1, 128, key="growth_rate", help="Channels every dense layer adds.")
    if "block_config" in visible:
        sb.text_input(c["block_config"].label, key="block_config", help="One number per dense block, e.g. 6, 12, 24, 16"
                      f" (1 to {us.MAX_BLOCKS} blocks, 1 to 128 layers each).")
    if "num_init_features" in visible:
        sb.number_input(c["num_init_features"].label, 1, 512, step=1, key="num_init_features",
                        help="Channels the stem hands to the first block.")
    if "bn_size" in visible:
        sb.toggle("Bottleneck (1×1 conv before the 3×3, '-B')", key=BOTTLENECK_KEY)
        if st.session_state[BOTTLENECK_KEY]:
            sb.slider("Bottleneck width (× k)", 1, 8, key="bn_size")
    if "compression" in visible:
        sb.slider(c["compression"].label, 0.05, 1.0, step=0.05, key="compression",
                  help="A transition keeps floor(θ·c) of its c channels ('-C'; θ = 1: no compression).")
    if "stem" in visible:
        sb.radio(c["stem"].label, us.STEMS, key="stem", horizontal=True,
                 format_func={"imagenet": "ImageNet (7×7/2 + pool)", "cifar": "CIFAR (3×3)"}.get)
    if "num_classes" in visible:
        sb.number_input(c["num_classes"].label, 1, 10_000, step=1, key="num_classes")
    if visible & {"input_size", "batch_size", "dtype", "device", "memory_efficient", "efficient_impl"}:
        sb.header("Input and device")
    if "input_size" in visible:
        sb.number_input(c["input_size"].label, 8, 1024, step=8, key="input_size")
    if "batch_size" in visible:
        sb.number_input(c["batch_size"].label, 1, 1024, step=1, key="batch_size")
    if "dtype" in visible:
        sb.selectbox(c["dtype"].label, us.DTYPES, key="dtype")
    if "device" in visible:
        sb.selectbox(c["device"].label, available_devices(), key="device")
    if "memory_efficient" in visible:
        sb.toggle(c["memory_efficient"].label, key="memory_efficient",
                  help="Recompute concat-BN-ReLU-Conv1x1 in backward instead of storing it.")
    if "efficient_impl" in visible and st.session_state.get("memory_efficient"):
        sb.selectbox(c["efficient_impl"].label, us.EFFICIENT_IMPLS, key="efficient_impl", format_func=IMPL_TITLES.get)
    if "baseline" in visible:
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
                                format_func=lambda n: us.BY_NAME[n].label, key=LESSON_PICK_KEY)
        if picked:
            st.code(f"{base}?{us.query_string(us.settings_to_query(settings, picked))}", language="text",
                    wrap_lines=True)


def stop_with_error(message: str) -> None:
    """Show an error in the page and end this run without a traceback."""
    st.error(message)
    st.stop()


def sidebar() -> AppState:
    """Draw the shared controls, validate them, sync the URL, and store the AppState in session state."""
    _init_session()
    ss = st.session_state
    visible = ss[VISIBLE_KEY]
    _draw_controls(visible)
    if len(visible) < len(us.CONTROLS):
        fixed = [c.label for c in us.CONTROLS if c.name not in visible]
        st.sidebar.caption(f"Fixed by this lesson link: {', '.join(fixed)}.")
    try:
        settings = _read_settings(ss[SETTINGS_KEY])
        settings["preset"] = us.matching_preset(settings)  # the menu may still show the preset it started from
        config = us.config_from_settings(settings)
        us.check_input_size(config, settings["input_size"])
    except ValueError as exc:
        stop_with_error(f"Invalid settings: {exc}.")
    ss[SETTINGS_KEY] = settings
    # What the opening link got wrong stays on screen until the first change of a setting.
    if ss.get(URL_WARNINGS_KEY) and settings == ss.get(URL_SETTINGS_KEY):
        problems = "\n".join(f"- {w}" for w in ss[URL_WARNINGS_KEY])
        st.warning(f"The link had problems, so defaults were used:\n{problems}")
    else:
        ss[URL_WARNINGS_KEY] = []
    shown = visible if len(visible) < len(us.CONTROLS) else None
    query = us.settings_to_query(settings, shown)
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)
    _share_box(settings, visible)
    name, baseline = _baseline(config_key(config), settings["baseline"])
    state = AppState(
        config=config,
        baseline=config_from_dict(baseline),
        input_size=settings["input_size"],
        batch_size=settings["batch_size"],
        dtype=DTYPES[settings["dtype"]],
        device=settings["device"],
        preset=settings["preset"],
        baseline_name=name,
    )
    ss[STATE_KEY] = state
    return state


def _run_through_app() -> None:
    """Make sure app.py (page config, sidebar, navigation) runs before the page that called get_state.

    Streamlit 1.67 treats a folder named pages/ as its old multipage mode until some run calls
    st.navigation: on a fresh server, the first deep link (/connectivity) runs that page alone, with no
    sidebar and the old page list. Switching the flag off and rerunning sends the same request through
    app.py instead. (AppTest resets the flag on every run, so its page switches need the same.)
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without the old mode
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def get_state() -> AppState:
    """The AppState of this session (defaults until the sidebar has run)."""
    _run_through_app()
    if STATE_KEY not in st.session_state:
        config = PRESETS["densenet121"]
        name, baseline = us.resolve_baseline(config, "auto-params")
        st.session_state[STATE_KEY] = AppState(config=config, baseline=baseline, baseline_name=name)
    return st.session_state[STATE_KEY]


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


def plot(fig, key: str) -> None:
    """A plotly figure at full width, following Streamlit's light or dark theme."""
    st.plotly_chart(fig, key=key, theme="streamlit", config={"displaylogo": False})


def show_code(*objects: Any, label: str = "Show the code behind this") -> None:
    """An expander with the real source of the classes or functions a figure comes from."""
    with st.expander(label):
        for obj in objects:
            st.code(inspect.getsource(obj), language="python")
