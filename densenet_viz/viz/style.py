"""Visual constants in one place: a colour-blind-safe palette per layer kind, projector fonts, table helpers."""

from __future__ import annotations

from typing import Any

from ..units import MIB

# Okabe & Ito (2008), "Color Universal Design": colours told apart under every common colour-vision deficiency.
# Named so the choice per layer kind reads as a sentence. The grey is darker than the usual #999999: simulated
# deuteranopia (Machado et al. 2009) turns reddish purple and #999999 into colours 6.4 CIEDE2000 apart, which
# a student cannot tell apart in a legend; #666666 is 15 or more from every other colour under every simulated
# deficiency, and takes white text (5.7:1). tests/test_colorblind.py checks every pair a chart tells apart.
OKABE_ITO = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "grey": "#666666",
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
_DARK_FILLS = {OKABE_ITO["blue"], OKABE_ITO["vermillion"], OKABE_ITO["bluish_green"], OKABE_ITO["reddish_purple"],
               OKABE_ITO["grey"]}

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

# Sizes (px) for a projector at the back of a classroom: titles, axes, ticks, legends and notes 16 or more; only
# labels that sit many to a figure (a grid's tile titles, point labels, a diagram's arrow labels) are 14, and the
# projector theme (projector_spec) scales every size by half again.
FONT_FAMILY = "Source Sans Pro, Helvetica, Arial, sans-serif"
TITLE_SIZE = 24
AXIS_TITLE_SIZE = 18
TICK_SIZE = 16
LEGEND_SIZE = 16
ANNOTATION_SIZE = 18
LABEL_SIZE = 14
GRAPH_FONT_SIZE = "16"

MACS_NOTE = "MACs = multiply-accumulates; FLOPs = 2 × MACs"

# The projector theme, for the teacher's screen at the front of a room: every font 1.5× (nothing under 24 px),
# lines and markers twice as thick, the axes drawn, figures taller to hold the larger type. `projector_spec`
# applies it to any figure's dict, so every chart gets it the same way; the page's own type grows with it
# (PROJECTOR_CSS, one rule for the root font size that Streamlit's rem sizes follow).
PROJECTOR_FONT_SCALE = 1.5
PROJECTOR_MIN_FONT = 24
PROJECTOR_LINE_WIDTH = 5  # at least, for every line a trace draws
PROJECTOR_HEIGHT_SCALE = 1.35
PROJECTOR_GRAPH = {"title": "30", "node": "26", "edge": "22", "penwidth": "2.5"}  # graphviz sizes (pt)
PROJECTOR_ROOT_PX = 24  # Streamlit's default root size is 16 px
PROJECTOR_CSS = (
    f"html {{ font-size: {PROJECTOR_ROOT_PX}px; }}"
    # Captions and help text are the text colour at 60 % opacity (4.9:1, AA); at the front of a room full strength.
    ' [data-testid="stCaptionContainer"], [data-testid="stWidgetLabel"] p { color: inherit; opacity: 1; }'
)

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
    return out.rename(columns={col: col.removesuffix("_bytes").replace("_", " ") + " (MiB)" for col in columns})


def _scale_fonts(node: Any) -> None:
    """Every font size in a figure's dict (titles, ticks, legends, annotations, trace text) × the projector scale."""
    if isinstance(node, list):
        for item in node:
            _scale_fonts(item)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in ("font", "tickfont", "textfont", "insidetextfont", "outsidetextfont") and isinstance(value, dict):
            value["size"] = max(PROJECTOR_MIN_FONT, round(value.get("size", TICK_SIZE) * PROJECTOR_FONT_SCALE))
        _scale_fonts(value)


def readable_text(layout: dict, dark: bool = False) -> dict:
    """A figure's layout with every text in the page's full text colour, changed in place: Streamlit's chart theme
    draws axis titles, ticks, annotations and legends in #808495, 3.8:1 on white (WCAG 1.4.3 asks 4.5:1)."""
    fg = foreground(dark)
    layout.setdefault("font", {})["color"] = fg
    for part in ("title", "legend"):
        if isinstance(layout.get(part), dict):
            layout[part].setdefault("font", {})["color"] = fg
    for key in [k for k in layout if k.startswith(("xaxis", "yaxis"))]:
        axis = layout[key]
        axis.setdefault("tickfont", {})["color"] = fg
        title = axis.setdefault("title", {})
        if isinstance(title, dict):
            title.setdefault("font", {})["color"] = fg
    for note in layout.get("annotations", []):  # panel titles and labels (a coloured swatch keeps its own colour)
        note.setdefault("font", {})["color"] = fg
    return layout


def projector_spec(spec: dict, dark: bool = False) -> dict:
    """A figure's dict ({"data": ..., "layout": ...}, e.g. fig.to_dict()) in the projector theme, changed in place:
    larger type in the full text colour, thicker lines, drawn axes, a taller figure."""
    layout = spec.setdefault("layout", {})
    layout.setdefault("font", {"size": TICK_SIZE})
    _scale_fonts(spec)
    readable_text(layout, dark)
    fg = foreground(dark)
    for trace in spec.get("data", []):
        if "line" in trace or trace.get("type", "scatter") == "scatter":
            line = trace.setdefault("line", {})
            line["width"] = max(PROJECTOR_LINE_WIDTH, 2 * line.get("width", 2))
        marker = trace.get("marker")
        if isinstance(marker, dict):
            if isinstance(marker.get("size"), (int, float)):
                marker["size"] = round(marker["size"] * 1.5)
            if isinstance(marker.get("line"), dict):
                marker["line"]["width"] = 2 * marker["line"].get("width", 1)
    for shape in layout.get("shapes", []):
        shape.setdefault("line", {})["width"] = max(3, 2 * shape["line"].get("width", 2))
    for key in [k for k in layout if k.startswith(("xaxis", "yaxis"))]:
        layout[key].update(showline=True, linewidth=3, linecolor=fg, gridwidth=2, gridcolor=muted(dark),
                           ticks="outside", tickwidth=2, tickcolor=fg)
    if "height" in layout:
        layout["height"] = round(layout["height"] * PROJECTOR_HEIGHT_SCALE)
    margin = layout.get("margin")
    if isinstance(margin, dict) and "t" in margin:
        margin["t"] = round(margin["t"] * PROJECTOR_FONT_SCALE)  # the title's room grows with its type
    if isinstance(margin, dict) and "b" in margin:
        margin["b"] = round(margin["b"] * PROJECTOR_FONT_SCALE)  # so does the legend's below the plot
    return spec
