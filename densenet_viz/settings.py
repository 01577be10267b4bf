"""The sidebar's settings as a compact query string, both ways, and lesson links that hide controls.

Pure Python (no streamlit), so every rule about what a URL may say is testable on its own. A link like
`?preset=densenet121&k=12&show=k` opens DenseNet-121 with growth rate 12 and only the k control shown
(TensorFlow Playground's lesson links work the same way). Anything a URL gets wrong falls back to the
default for that setting and says why, in a warning the app shows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from .analysis import report
from .analysis.baselines import adapt_baseline, match_baseline, resnet_baselines
from .models.config import (
    APP_LIMITS,
    DEFAULT_EFFICIENT_IMPL,
    EFFICIENT_IMPLS,
    MAX_BLOCKS,
    PRESET_TITLES,
    PRESETS,
    STEMS,
    DenseNetConfig,
    ResNetConfig,
)
from .models.plan import layer_plan, min_input_size

CUSTOM = "custom"
DTYPES = tuple(report.DTYPES)  # the names of analysis.report.DTYPES, the one dtype table
AUTO_BASELINES = ("auto-params", "auto-depth")
MODEL_FIELDS = ("growth_rate", "block_config", "num_init_features", "bn_size", "compression", "stem", "num_classes")
MAX_VALUE_CHARS = 100  # a query value longer than this is not a setting but noise
MAX_BLOCKS_CHARS = 60  # "128, 128, 128, 128, 128, 128, 128, 128" is 38; room for spaces, no more
MAX_NAMED = 5  # a warning names this many unknown keys or controls, then counts the rest
DEFAULT_PRESET = "densenet121"

_INT = re.compile(r"[0-9]{1,7}")  # ASCII digits only: int() would also accept '٣' or '1_000'
_FLOAT = re.compile(r"[0-9]{1,3}(\.[0-9]{1,6})?")


@dataclass(frozen=True)
class Control:
    """One sidebar control: its settings name (also its widget key), its short query key and its range."""

    name: str
    key: str
    label: str
    low: float | None = None  # widget ranges: a URL outside them falls back to the default
    high: float | None = None
    choices: tuple[str, ...] = ()


CONTROLS: tuple[Control, ...] = (
    Control("preset", "preset", "Preset"),
    Control("growth_rate", "k", "Growth rate k", *APP_LIMITS["growth_rate"]),
    Control("block_config", "blocks", "Layers per dense block", *APP_LIMITS["block_config"]),
    Control("num_init_features", "k0", "Initial features k₀", *APP_LIMITS["num_init_features"]),
    Control("bn_size", "bn", "Bottleneck width (× k; 0 = no bottleneck)", *APP_LIMITS["bn_size"]),
    Control("compression", "theta", "Compression θ", *APP_LIMITS["compression"]),
    Control("stem", "stem", "Stem", choices=STEMS),
    Control("num_classes", "classes", "Classes", *APP_LIMITS["num_classes"]),
    Control("input_size", "size", "Input size (pixels)", *APP_LIMITS["input_size"]),
    Control("batch_size", "batch", "Batch size", *APP_LIMITS["batch_size"]),
    Control("dtype", "dtype", "Data type", choices=DTYPES),
    Control("device", "device", "Device"),
    Control("memory_efficient", "eff", "Memory-efficient training (recompute in backward)"),
    Control("efficient_impl", "impl", "Memory-efficient implementation", choices=EFFICIENT_IMPLS),
    Control("baseline", "baseline", "ResNet baseline"),
)
BY_NAME = {c.name: c for c in CONTROLS}
BY_KEY = {c.key: c for c in CONTROLS}
# The app's pages by script name (pages/<name>.py): what a lesson step may open. tests/test_layers.py holds it to
# the pages/ folder, so the lessons need no source checkout to know them.
PAGES = ("build", "connectivity", "growth", "memory", "tradeoffs", "accuracy", "features", "training", "lessons",
         "classroom")
LESSON_KEYS = ("show", "hide", "lock")  # show=only these; hide= / lock= everything but these
PROJECTOR_KEY = "projector"  # ?projector=1: the projector theme (ui.projector_switch)
# Query keys a page or the display owns (the Lessons page's step links, the projector theme, the Class page's code,
# teacher token and student id: keys.CLASS_URL_KEYS): settings leave them be.
PAGE_KEYS = ("lesson", "step", PROJECTOR_KEY, "class", "teacher", "me")


def densenet_presets() -> list[str]:
    """The DenseNet preset names, in PRESETS order."""
    return [n for n, c in PRESETS.items() if isinstance(c, DenseNetConfig)]


def default_size(stem: str) -> int:
    """The input size a stem's family is trained at (ImageNet 224, CIFAR 32)."""
    return 224 if stem == "imagenet" else 32


def preset_settings(name: str) -> dict[str, Any]:
    """The model settings of a DenseNet preset."""
    config = PRESETS[name]
    return {f: getattr(config, f) for f in MODEL_FIELDS}


def default_settings() -> dict[str, Any]:
    """What the app opens with: DenseNet-121 at 224x224, batch 1, float32 on the CPU."""
    return {
        "preset": DEFAULT_PRESET,
        **preset_settings(DEFAULT_PRESET),
        "input_size": 224,
        "batch_size": 1,
        "dtype": "float32",
        "device": "cpu",
        "memory_efficient": False,
        "efficient_impl": DEFAULT_EFFICIENT_IMPL,
        "baseline": "auto-params",
    }


def matching_preset(settings: Mapping[str, Any]) -> str:
    """The DenseNet preset whose model settings equal these, or 'custom'."""
    for name in densenet_presets():
        if all(settings.get(f) == v for f, v in preset_settings(name).items()):
            return name
    return CUSTOM


def config_from_settings(settings: Mapping[str, Any]) -> DenseNetConfig:
    """The DenseNetConfig the settings describe (raises ValueError with the allowed range)."""
    extra = {f.name: settings[f.name] for f in fields(DenseNetConfig) if f.name in settings and f.name != "drop_rate"}
    return DenseNetConfig(**{**extra, "memory_efficient": bool(settings.get("memory_efficient", False))})


def check_ranges(settings: Mapping[str, Any]) -> None:
    """Raise ValueError naming the control and its range if a numeric setting is outside the sidebar's range
    (a widget value is checked too: a crafted client can send any number)."""
    for control in CONTROLS:
        value = settings.get(control.name)
        if control.low is None or value is None:
            continue
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not control.low <= v <= control.high:
                raise ValueError(f"{control.label} must be in [{control.low:g}, {control.high:g}]; got {v!r}")


def check_input_size(config: DenseNetConfig | ResNetConfig, input_size: int) -> None:
    """Raise ValueError (saying the smallest size allowed) if the input vanishes inside the network."""
    layer_plan(config, input_size)


def baseline_choices(stem: str) -> list[str]:
    """The baseline options for a stem: auto-matched by parameters or depth, or a named ResNet."""
    return [*AUTO_BASELINES, *resnet_baselines(stem)]


def baseline_title(choice: str) -> str:
    """A menu label for a baseline choice."""
    return {"auto-params": "Auto: closest in parameters", "auto-depth": "Auto: closest in depth"}.get(
        choice, PRESET_TITLES.get(choice, choice)
    )


def resolve_baseline(config: DenseNetConfig, choice: str) -> tuple[str, ResNetConfig]:
    """The ResNet a baseline choice names for this DenseNet (same stem, classes and input channels)."""
    if choice in AUTO_BASELINES:
        return match_baseline(config, by=choice.removeprefix("auto-"))
    if choice not in resnet_baselines(config.stem):
        raise ValueError(f"baseline must be one of {', '.join(baseline_choices(config.stem))}; got {choice!r}")
    return choice, adapt_baseline(PRESETS[choice], config)


def apply_changes(settings: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The settings with a user's changes (control values; layers per block as typed), checked as one model.

    Raises ValueError naming the control and its range. A baseline of the other stem becomes auto-matching.
    """
    new = {**settings, **changes}
    if "block_config" in changes:
        new["block_config"] = parse_blocks(changes["block_config"])
    check_ranges(new)
    config = config_from_settings(new)
    check_input_size(config, new["input_size"])
    if new["baseline"] not in baseline_choices(config.stem):
        new["baseline"] = "auto-params"
    new["preset"] = matching_preset(new)
    return new


def with_preset(settings: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The settings with a preset's model, and its family's input size when the stem changes ('custom': as they are)."""
    if name == CUSTOM:
        return dict(settings)
    new = {**settings, **preset_settings(name), "preset": name}
    if new["stem"] != settings["stem"]:
        new["input_size"] = default_size(new["stem"])
    if new["baseline"] not in baseline_choices(new["stem"]):
        new["baseline"] = "auto-params"
    return new


# ---- parsing one value --------------------------------------------------------------------------


def _int_in(control: Control) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not _INT.fullmatch(text):
            raise ValueError("must be a whole number")
        value = int(text)
        if not control.low <= value <= control.high:
            raise ValueError(f"must be in [{control.low:g}, {control.high:g}]")
        return value

    return parse


def _parse_float(control: Control) -> Callable[[str], float]:
    def parse(text: str) -> float:
        if not _FLOAT.fullmatch(text):
            raise ValueError("must be a decimal number like 0.5")
        value = float(text)
        if not math.isfinite(value) or not control.low <= value <= control.high:
            raise ValueError(f"must be in [{control.low:g}, {control.high:g}]")
        return value

    return parse


def _parse_blocks(text: str) -> tuple[int, ...]:
    parts = re.split(r"[-,]", text)
    high = int(BY_NAME["block_config"].high)
    if not 1 <= len(parts) <= MAX_BLOCKS or not all(_INT.fullmatch(p) for p in parts):
        raise ValueError(f"must be 1 to {MAX_BLOCKS} whole numbers joined by '-', like 6-12-24-16")
    values = tuple(int(p) for p in parts)
    if not all(1 <= v <= high for v in values):
        raise ValueError(f"each block must have 1 to {high} layers")
    return values


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be 0 or 1")


def _parse_choice(choices: Sequence[str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return parse


def parse_blocks(text: str) -> tuple[int, ...]:
    """Layers per block from '6-12-24-16' or '6, 12, 24, 16' (raises ValueError saying the format)."""
    text = str(text)
    if len(text) > MAX_BLOCKS_CHARS:  # before any splitting: the box's limit, also for a crafted widget value
        raise ValueError(f"layers per block must be at most {MAX_BLOCKS_CHARS} characters, like 6, 12, 24, 16; "
                         f"got {len(text):,}")
    cleaned = re.sub(r"\s+", "", text).replace(",", "-").strip("-")
    try:
        return _parse_blocks(cleaned)
    except ValueError as exc:
        raise ValueError(f"layers per block {exc}; got {text!r}") from None


def format_blocks(blocks: Iterable[int]) -> str:
    """Layers per block for the sidebar's text box: (6, 12, 24, 16) -> '6, 12, 24, 16'."""
    return ", ".join(str(b) for b in blocks)


def _parsers(devices: Sequence[str]) -> dict[str, Callable[[str], Any]]:
    return {
        "preset": _parse_choice([*densenet_presets(), CUSTOM]),
        "growth_rate": _int_in(BY_NAME["growth_rate"]),
        "block_config": _parse_blocks,
        "num_init_features": _int_in(BY_NAME["num_init_features"]),
        "bn_size": _int_in(BY_NAME["bn_size"]),
        "compression": _parse_float(BY_NAME["compression"]),
        "stem": _parse_choice(STEMS),
        "num_classes": _int_in(BY_NAME["num_classes"]),
        "input_size": _int_in(BY_NAME["input_size"]),
        "batch_size": _int_in(BY_NAME["batch_size"]),
        "dtype": _parse_choice(DTYPES),
        "device": _parse_choice(devices),
        "memory_efficient": _parse_bool,
        "efficient_impl": _parse_choice(EFFICIENT_IMPLS),
        "baseline": _parse_choice([*AUTO_BASELINES, *resnet_baselines("imagenet"), *resnet_baselines("cifar")]),
    }


def _format(name: str, value: Any) -> str:
    if name == "block_config":
        return "-".join(str(v) for v in value)
    if name == "memory_efficient":
        return "1" if value else "0"
    if name == "compression":
        return f"{value:g}"
    return str(value)


# ---- the whole query ------------------------------------------------------------------------------


@dataclass
class QueryState:
    """What a query string asked for: the settings, the controls left visible, and what was wrong."""

    settings: dict[str, Any]
    visible: frozenset[str] = field(default_factory=lambda: frozenset(BY_NAME))
    warnings: list[str] = field(default_factory=list)


def _listed(items: Sequence[str]) -> str:
    """A few items quoted (each cut at 40 characters), then how many more: what a warning says of unknown names."""
    shown = ", ".join(repr(item[:40]) for item in items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED:,} more" if len(items) > MAX_NAMED else "")


def _single(value: Any) -> str:
    """The last of repeated values (as st.query_params reads them), as a stripped string."""
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else ""
    return str(value).strip()


def _names(text: str) -> tuple[set[str], list[str]]:
    """Control names from a comma list of names or short keys, and the unknown ones."""
    known, unknown = set(), []
    for item in filter(None, (t.strip() for t in text.split(","))):
        if item == "none":  # show=none: a link that only presents, with every control fixed
            continue
        control = BY_NAME.get(item) or BY_KEY.get(item)
        if control is None:
            unknown.append(item)
        else:
            known.add(control.name)
    return known, unknown


def visible_from_query(params: Mapping[str, Any]) -> tuple[frozenset[str], list[str]]:
    """The controls a lesson link leaves visible (all by default) and warnings about unknown names."""
    visible, warnings = set(BY_NAME), []
    for lesson_key in LESSON_KEYS:
        if lesson_key not in params:
            continue
        text = _single(params[lesson_key])[: MAX_VALUE_CHARS * 4]
        names, unknown = _names(text)
        if unknown:
            allowed = ", ".join(c.key for c in CONTROLS)
            warnings.append(f"'{lesson_key}' names unknown controls ({_listed(unknown)}); known: {allowed}")
        visible = visible & names if lesson_key == "show" else visible - names
    return frozenset(visible), warnings


def settings_from_query(params: Mapping[str, Any], devices: Sequence[str] = ("cpu",)) -> QueryState:
    """Settings from query parameters: defaults, then the preset, then each explicit key; never raises."""
    settings, warnings = default_settings(), []
    parsers = _parsers(devices)
    raw, unknown = {}, []
    for key, value in params.items():
        if key in LESSON_KEYS or key in PAGE_KEYS:
            continue
        control = BY_KEY.get(key)
        if control is None:
            unknown.append(str(key))
            continue
        raw[control.name] = _single(value)
    if unknown:
        warnings.append(f"unknown URL setting{'s' * (len(unknown) > 1)} {_listed(unknown)} ignored")

    def parse(name: str) -> Any:
        text = raw[name]
        if len(text) > MAX_VALUE_CHARS:
            raise ValueError(f"is too long ({len(text)} characters)")
        return parsers[name](text)

    parsed = {}
    for name in raw:
        try:
            parsed[name] = parse(name)
        except ValueError as exc:
            shown = raw[name][:40] + ("…" if len(raw[name]) > 40 else "")
            warnings.append(f"URL setting {BY_NAME[name].key}={shown!r} {exc}; using the default")

    preset = parsed.get("preset")
    if preset and preset != CUSTOM:
        settings.update(preset_settings(preset))
        settings["input_size"] = default_size(PRESETS[preset].stem)
    settings.update({n: v for n, v in parsed.items() if n != "preset"})
    if "input_size" not in parsed and "stem" in parsed and not preset:
        settings["input_size"] = default_size(settings["stem"])

    # Each value was in range; the combination must still make a network (e.g. theta vs channels).
    try:
        config = config_from_settings(settings)
    except ValueError as exc:
        warnings.append(f"the URL's model is not valid ({exc}); using the default model")
        settings.update({n: v for n, v in default_settings().items() if n in (*MODEL_FIELDS, "input_size")})
        config = config_from_settings(settings)
    try:
        check_input_size(config, settings["input_size"])
    except ValueError as exc:
        warnings.append(f"{exc}; using {default_size(config.stem)}")
        settings["input_size"] = max(default_size(config.stem), min_input_size(config))
    if settings["baseline"] not in baseline_choices(config.stem):
        warnings.append(f"baseline {settings['baseline']!r} has another stem than the model; matching by parameters")
        settings["baseline"] = "auto-params"
    if settings["device"] not in devices:
        settings["device"] = devices[0]
    settings["preset"] = matching_preset(settings)
    visible, lesson_warnings = visible_from_query(params)
    return QueryState(settings, visible, warnings + lesson_warnings)


def _closest_preset(settings: Mapping[str, Any], max_changes: int = 3) -> str:
    """The preset that differs from these settings in the fewest model fields (at most max_changes)."""
    changes = {
        name: sum(settings.get(f) != v for f, v in preset_settings(name).items()) for name in densenet_presets()
    }
    best = min(changes, key=changes.get)
    return best if changes[best] <= max_changes else CUSTOM


def settings_to_query(
    settings: Mapping[str, Any], visible: Iterable[str] | None = None
) -> dict[str, str]:
    """A short query that reopens these settings: the closest preset and what differs from it.

    `visible` (control names) adds the lesson key: `show=` when some controls are hidden.
    """
    query: dict[str, str] = {}
    base = _closest_preset(settings)
    defaults = default_settings()
    if base != CUSTOM:
        query["preset"] = base
        defaults.update(preset_settings(base), input_size=default_size(PRESETS[base].stem))
    else:
        query["preset"] = CUSTOM
        defaults = {n: v for n, v in defaults.items() if n not in MODEL_FIELDS}
    for control in CONTROLS:
        name = control.name
        if name == "preset" or name not in settings:
            continue
        if name not in defaults or settings[name] != defaults[name]:
            query[control.key] = _format(name, settings[name])
    if visible is not None:
        shown = [c.key for c in CONTROLS if c.name in set(visible)]
        if len(shown) < len(CONTROLS):
            query["show"] = ",".join(shown) if shown else "none"
    return query


def query_string(query: Mapping[str, str]) -> str:
    """A query dict as the text after '?' (keys and values here need no escaping but commas)."""
    from urllib.parse import urlencode

    return urlencode(query, safe=",-")
