"""Visual constants in one place: a colour-blind-safe palette per layer kind, projector fonts, table helpers."""

from __future__ import annotations

from ..units import MIB

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
EFFICIENT_COLOR = OKABE_ITO["bluish_green"]  # training memory in the memory-efficient mode
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

def text_color_on(fill: str) -> str:
    """Black or white, whichever reads better on a node filled with `fill`."""
    return "#FFFFFF" if fill.upper() in _DARK_FILLS else "#000000"


def foreground(dark: bool) -> str:
    """Text and line colour that reads on the page background of the light or dark theme."""
    return "#FAFAFA" if dark else "#262730"


def muted(dark: bool) -> str:
    """A colour for de-emphasised lines (edges not highlighted) on either theme."""
    return "#6B6F7B" if dark else "#B8BCC6"


def mib_columns(table, columns: list[str]):
    """A copy of a DataFrame with each byte column `x_bytes` shown as `x (MiB)` instead (for display)."""
    out = table.copy()
    for col in columns:
        out[col] = out[col] / MIB
        out = out.rename(columns={col: col.removesuffix("_bytes").replace("_", " ") + " (MiB)"})
    return out
