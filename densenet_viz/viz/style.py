"""Visual constants in one place: a colour-blind-safe palette per layer kind, projector fonts, formatters."""

from __future__ import annotations

import math

# Okabe & Ito (2008), "Color Universal Design": eight colours told apart under every common
# colour-vision deficiency. Named so the choice per layer kind reads as a sentence.
OKABE_ITO = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "grey": "#999999",
}

# One colour per kind of unit, shared by the diagrams, the charts and the tables' legends.
KIND_COLORS = {
    "input": OKABE_ITO["grey"],
    "stem": OKABE_ITO["reddish_purple"],
    "dense_layer": OKABE_ITO["sky_blue"],
    "concat": OKABE_ITO["orange"],
    "transition": OKABE_ITO["vermillion"],
    "norm": OKABE_ITO["yellow"],
    "pool": OKABE_ITO["yellow"],
    "conv": OKABE_ITO["sky_blue"],
    "add": OKABE_ITO["orange"],
    "residual_block": OKABE_ITO["bluish_green"],
    "classifier": OKABE_ITO["blue"],
    "block": OKABE_ITO["sky_blue"],
}

# Text on a filled node must stay readable whatever the page background: dark fills get white text.
_DARK_FILLS = {OKABE_ITO["blue"], OKABE_ITO["vermillion"], OKABE_ITO["bluish_green"], OKABE_ITO["reddish_purple"]}

# Line colours for series in the order a chart needs them (DenseNet first, ResNet second, ...).
SERIES_COLORS = [
    OKABE_ITO["blue"],
    OKABE_ITO["orange"],
    OKABE_ITO["bluish_green"],
    OKABE_ITO["vermillion"],
    OKABE_ITO["reddish_purple"],
    OKABE_ITO["sky_blue"],
    OKABE_ITO["yellow"],
    OKABE_ITO["grey"],
]
DENSENET_COLOR = OKABE_ITO["blue"]
RESNET_COLOR = OKABE_ITO["orange"]
PLAIN_COLOR = OKABE_ITO["vermillion"]  # training memory without checkpointing
EFFICIENT_COLOR = OKABE_ITO["bluish_green"]  # training memory with the checkpointed bottleneck
HIGHLIGHT_COLOR = OKABE_ITO["vermillion"]

# Sizes for a projector at the back of a classroom (px): nothing a student must read below 16.
FONT_FAMILY = "Source Sans Pro, Helvetica, Arial, sans-serif"
TITLE_SIZE = 24
AXIS_TITLE_SIZE = 18
TICK_SIZE = 16
LEGEND_SIZE = 16
ANNOTATION_SIZE = 18
GRAPH_FONT_SIZE = "16"

MACS_NOTE = "MACs = multiply-accumulates; FLOPs = 2 × MACs"

_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_COUNT_UNITS = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def text_color_on(fill: str) -> str:
    """Black or white, whichever reads better on a node filled with `fill`."""
    return "#FFFFFF" if fill.upper() in _DARK_FILLS else "#000000"


def foreground(dark: bool) -> str:
    """Text and line colour that reads on the page background of the light or dark theme."""
    return "#FAFAFA" if dark else "#262730"


def muted(dark: bool) -> str:
    """A colour for de-emphasised lines (edges not highlighted) on either theme."""
    return "#6B6F7B" if dark else "#B8BCC6"


def format_bytes(n: int | float) -> str:
    """Bytes in binary units with the unit written: 131030528 -> '125.0 MiB'."""
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return "–"
    value, unit = float(n), _BINARY_UNITS[0]
    for unit in _BINARY_UNITS:
        if abs(value) < 1024 or unit == _BINARY_UNITS[-1]:
            break
        value /= 1024
    return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"


def format_count(n: int | float, digits: int = 2) -> str:
    """A large count in short form: 7978856 -> '7.98 M'; small counts stay whole: 512 -> '512'."""
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return "–"
    for scale, suffix in _COUNT_UNITS:
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f} {suffix}"
    return f"{int(n)}"


def format_macs(n: int) -> str:
    """MACs with the unit written, e.g. '2.83 G MACs'."""
    return f"{format_count(n)} MACs"


def format_flops(macs: int) -> str:
    """FLOPs of a MACs count (one MAC is two FLOPs), e.g. '5.67 G FLOPs'."""
    return f"{format_count(2 * macs)} FLOPs"


def format_value(value: int | float, unit: str) -> str:
    """A number as a table cell for its unit: 'bytes' -> MiB/GiB, 'MACs' -> G MACs, 'count' -> 7.98 M."""
    if unit == "bytes":
        return format_bytes(value)
    if unit == "MACs":
        return format_macs(value)
    return format_count(value)


def format_ratio(ratio: float | None) -> str:
    """A ratio as '0.31×' (or a dash when undefined)."""
    return "–" if ratio is None or not math.isfinite(ratio) else f"{ratio:.2f}×"


def mib_columns(table, columns: list[str]):
    """A copy of a DataFrame with each byte column `x_bytes` shown as `x (MiB)` instead (for display)."""
    out = table.copy()
    for col in columns:
        out[col] = out[col] / 2**20
        out = out.rename(columns={col: col.removesuffix("_bytes").replace("_", " ") + " (MiB)"})
    return out
