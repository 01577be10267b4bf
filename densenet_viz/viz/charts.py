"""Plotly figures of the analysis: they draw DataFrames from series.py / analysis.py and compute nothing.

Colours come from style.py (Okabe-Ito, colour-blind safe); fonts are sized for a projector; no figure
sets a background or template, so Streamlit's own theme makes them follow the light or dark theme.

Every figure is built as plain dicts (traces with their "type", one layout) and made a go.Figure once, by
`figure`, without plotly's per-property validation: validating costs 20-30 ms per chart on every rerun of a page,
a third of the server's CPU when a class moves sliders. The tests validate every chart's dict instead. Numeric
columns go in as numpy arrays (plotly sends those to the browser as compact typed arrays, exactly as when it
validated them), text as lists.
"""

from __future__ import annotations

import functools
import textwrap
from typing import Any, NamedTuple

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..units import MIB
from .style import (
    ANNOTATION_SIZE,
    AXIS_TITLE_SIZE,
    DENSENET_COLOR,
    EFFICIENT_COLOR,
    FONT_FAMILY,
    HIGHLIGHT_COLOR,
    LABEL_SIZE,
    LEGEND_SIZE,
    OKABE_ITO,
    PLAIN_COLOR,
    RESNET_COLOR,
    SERIES_COLORS,
    TICK_SIZE,
    TITLE_SIZE,
)

CURRENT_COLOR = OKABE_ITO["reddish_purple"]  # the sidebar's model in a sweep: unlike any line colour
STAR = {"size": 18, "symbol": "star", "color": CURRENT_COLOR, "line": {"width": 1.5, "color": "#555555"}}
KIND_NAMES = {"dense_layer": "dense layer", "transition": "transition", "norm": "final BN (to the classifier)"}
# Plotly never wraps text: lines this long in TITLE_SIZE / AXIS_TITLE_SIZE fit a 390 px phone screen.
TITLE_CHARS = 32
AXIS_CHARS = 32
TOOLBAR_PX = 32  # the strip at the top of a chart that Streamlit's toolbar covers (always shown on a phone)


class Grid(NamedTuple):
    """A subplot grid from make_subplots: its layout (axis domains and anchors, subplot titles) and its cells."""

    layout: dict[str, Any]  # shared by every figure on this grid: never changed, copied by layout_copy()
    ref: list  # plotly's grid reference: the figure keeps add_trace(row=, col=) and add_hline(row=, col=)
    text: str  # what fig.print_grid() shows

    def layout_copy(self) -> dict[str, Any]:
        """A copy of the grid's layout that a chart may fill in."""
        return copy_json(self.layout)

    def cell(self, row: int, col: int) -> dict[str, str]:
        """The axes a trace in this cell names: {"xaxis": "x2", "yaxis": "y2"} (1-based row and col)."""
        return dict(self.ref[row - 1][col - 1][0].trace_kwargs)

    def axes(self, row: int, col: int) -> tuple[str, str]:
        """The layout keys of the cell's axes: ("xaxis2", "yaxis2")."""
        return self.ref[row - 1][col - 1][0].layout_keys


def copy_json(value: Any) -> Any:
    """A deep copy of JSON-like dicts and lists (several times faster than copy.deepcopy; arrays are shared)."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):  # a figure's layout keeps shapes and annotations set whole as tuples
        return [copy_json(v) for v in value]
    return value


def subplot_grid(**make_subplots_kwargs: Any) -> Grid:
    """The layout make_subplots computes for these arguments, without the template go.Figure adds itself.

    make_subplots costs milliseconds (it builds and validates a whole figure): cache the grids of a chart
    with functools.lru_cache, one per distinct geometry.
    """
    fig = make_subplots(**make_subplots_kwargs)
    layout = fig.to_dict()["layout"]
    layout.pop("template", None)
    return Grid(layout, fig._grid_ref, fig._grid_str)


def figure(data: list[dict], layout: dict, grid: Grid | None = None) -> go.Figure:
    """A Figure from finished trace and layout dicts, without plotly's per-property validation (~1 ms instead of
    20-30 ms per chart); the tests validate every chart's dict with go.Figure(fig.to_dict())."""
    spec: dict[str, Any] = {"data": data, "layout": layout}
    if grid is not None:  # go.Figure takes a grid from a figure dict's _grid_ref / _grid_str
        spec["_grid_ref"], spec["_grid_str"] = grid.ref, grid.text
    # go.Figure still fills in the default template without validation: the figures serialise exactly as the
    # validated ones did, template included, which is what Streamlit's theme="streamlit" handling reads.
    return go.Figure(spec, _validate=False)


def axis_keys(layout: dict) -> list[str]:
    """The layout's axis keys (xaxis, xaxis2, ..., yaxis, ...): what fig.update_xaxes / update_yaxes reach."""
    return [k for k in layout if k.startswith(("xaxis", "yaxis"))]


def wrap_text(text: str, width: int) -> str:
    """Text for plotly broken at spaces into lines of at most `width` characters, joined by <br>."""
    lines = []
    for part in text.split("<br>"):
        lines += textwrap.wrap(part, width, break_long_words=False, break_on_hyphens=False) or [""]
    return "<br>".join(lines)


def wrapped_title(text: str, size: int = TITLE_SIZE) -> dict:
    """A figure title wrapped to fit a phone, at the top left, below the strip the chart's toolbar covers."""
    wrapped = wrap_text(text, TITLE_CHARS)
    # Plotly lifts a title of several lines ~22 px above where one line with the same padding sits (measured
    # in Chromium): pad it more so that both start just below the toolbar.
    pad = TOOLBAR_PX + (22 if "<br>" in wrapped else 5)
    return {"text": wrapped, "font": {"size": size}, "x": 0, "xanchor": "left", "xref": "container",
            "yref": "container", "y": 1, "yanchor": "top", "pad": {"t": pad, "l": 12}}


def title_margin(title: dict, below: int = 0) -> int:
    """The top margin that holds a wrapped_title, a gap, and `below` pixels of labels above the plot."""
    lines = title["text"].count("<br>") + 1
    return TOOLBAR_PX + round(lines * title["font"]["size"] * 1.3) + 24 + below


def chart_layout(
    title: str, x_title: str | None = None, y_title: str | None = None, legend_below: bool = False,
    top_labels: int = 0, layout: dict | None = None, **extra: Any,
) -> dict:
    """Projector-sized title, axis titles and ticks that also fit a phone: titles wrapped, margins pushed by
    what they hold (automargin), the legend in a row of its own at the bottom, where it covers no data.

    Fills in `layout` (its axes, shapes, annotations: a single xaxis and yaxis if it has none) and returns it.
    """
    layout = {} if layout is None else layout
    legend_rows = 2 if legend_below else 1  # a phone wraps a horizontal legend onto more rows
    heading = wrapped_title(title)
    layout.update(
        title=heading,
        font={"family": FONT_FAMILY, "size": TICK_SIZE},
        legend={"font": {"size": LEGEND_SIZE}, "orientation": "h", "xref": "container", "x": 0, "xanchor": "left",
                "yref": "container",
                "y": 0, "yanchor": "bottom"},
        margin={"t": title_margin(heading, top_labels), "l": 10, "r": 10, "b": 70 + 26 * legend_rows},
        hoverlabel={"font": {"size": TICK_SIZE}},
        **extra,
    )
    for prefix in ("xaxis", "yaxis"):
        if not any(k.startswith(prefix) for k in layout):
            layout[prefix] = {}
    axis_titles = {"x": wrap_text(x_title, AXIS_CHARS) if x_title else None,
                   "y": wrap_text(y_title, AXIS_CHARS) if y_title else None}
    for key in axis_keys(layout):
        axis = layout[key]
        axis["title"] = {**axis.get("title", {}), "font": {"size": AXIS_TITLE_SIZE}}
        if axis_titles[key[0]]:
            axis["title"]["text"] = axis_titles[key[0]]
        axis.update(tickfont={"size": TICK_SIZE}, automargin=True)
    return layout


def _hover(series: pd.DataFrame) -> list[str]:
    return [
        f"{p}<br>{KIND_NAMES.get(kind, kind)}: {c} channels in, {s}×{s}"
        for p, kind, c, s in zip(series["path"], series["kind"], series["channels"], series["size"], strict=False)
    ]


def _vline(x: float, xref: str = "x", yref: str = "y domain", **line: Any) -> dict:
    """The shape fig.add_vline(x) adds: a line across the whole height of the axes."""
    return {"type": "line", "x0": x, "x1": x, "xref": xref, "y0": 0, "y1": 1, "yref": yref, "line": line}


def _hline(y: float, xref: str = "x domain", yref: str = "y", **line: Any) -> dict:
    """The shape fig.add_hline(y) adds: a line across the whole width of the axes."""
    return {"type": "line", "x0": 0, "x1": 1, "xref": xref, "y0": y, "y1": y, "yref": yref, "line": line}


def channel_growth_chart(series: pd.DataFrame, current_k: int, compression: float) -> go.Figure:
    """The saw-tooth: channels entering every layer; +k per dense layer, x theta at each transition.

    One line per growth rate in `series` (channel_series); the current k is drawn thickest and annotated.
    """
    data = []
    rates = sorted(series["growth_rate"].unique(), key=lambda k: (k != current_k, k))
    for i, k in enumerate(rates):
        s = series[series["growth_rate"] == k]
        current = k == current_k
        data.append({
            "type": "scatter",
            "x": s["step"].to_numpy(),
            "y": s["channels"].to_numpy(),
            "name": f"k = {k}" + (" (current)" if current else ""),
            "mode": "lines+markers",
            "line": {"color": SERIES_COLORS[i % len(SERIES_COLORS)], "width": 4 if current else 2},
            "marker": {"size": 7 if current else 4},
            "hovertext": _hover(s),
            "hoverinfo": "text+name",
        })
    s = series[series["growth_rate"] == current_k]
    # The formula is on the page above the chart: here each transition gets a dotted line and a short label
    # above the plot, where it covers no data at any width.
    steps = s.loc[s["kind"] == "transition", "step"].tolist()
    layout = {
        "shapes": [_vline(x, dash="dot", color=OKABE_ITO["grey"], width=1) for x in steps],
        "annotations": [
            {"x": x, "xref": "x", "y": 1, "yref": "paper", "yanchor": "bottom", "text": "×θ", "showarrow": False,
             "font": {"size": ANNOTATION_SIZE}, "hovertext": f"transition: c → ⌊θ·c⌋ with θ = {compression:g}"}
            for x in steps
        ],
    }
    return figure(data, chart_layout(
        "Channels entering each layer: +k per layer, ×θ at transitions",
        "position along the network",
        "channels entering (count)",
        height=540,
        top_labels=ANNOTATION_SIZE + 8,
        layout=layout,
    ))


def spatial_size_chart(series: pd.DataFrame) -> go.Figure:
    """Side of the feature map each unit reads: constant in a block, halved by every transition."""
    s = series[series["growth_rate"] == series["growth_rate"].iloc[0]]
    trace = {
        "type": "scatter",
        "x": s["step"].to_numpy(),
        "y": s["size"].to_numpy(),
        "mode": "lines+markers",
        "line": {"shape": "hv", "color": DENSENET_COLOR, "width": 3},
        "name": "feature-map side",
        "hovertext": _hover(s),
        "hoverinfo": "text",
    }
    return figure([trace], chart_layout(
        "Spatial size: halved at each transition",
        "position along the network",
        "map side (pixels)",
        height=400,
    ))


def resnet_channel_chart(series: pd.DataFrame, title: str) -> go.Figure:
    """Channels every residual block of the baseline carries (its output): flat in a stage, doubled between."""
    trace = {
        "type": "scatter",
        "x": series["step"].to_numpy(),
        "y": series["out_channels"].to_numpy(),
        "mode": "lines+markers",
        "line": {"shape": "hv", "color": RESNET_COLOR, "width": 4},
        "name": title,
        "hovertext": [
            f"{p}: {c} channels out, {s}×{s}"
            for p, c, s in zip(series["path"], series["out_channels"], series["size"], strict=False)
        ],
        "hoverinfo": "text",
    }
    return figure([trace], chart_layout(
        f"{title}: channels per residual block",
        "residual block (in order)",
        "channels (count)",
        height=400,
    ))


def connectivity_heatmap(matrix: pd.DataFrame, highlight: int | None = None, title: str = "") -> go.Figure:
    """Who reads whom as a matrix (for blocks too large to draw as a graph); 1 = the row reads the column."""
    trace = {
        "type": "heatmap",
        "z": matrix.to_numpy(),
        "x": list(matrix.columns),
        "y": list(matrix.index),
        "colorscale": [[0, "rgba(0,0,0,0)"], [1, DENSENET_COLOR]],
        "showscale": False,
        "xgap": 1,
        "ygap": 1,
        "hovertemplate": "%{y} reads %{x}: %{z}<extra></extra>",
    }
    layout: dict[str, Any] = {"yaxis": {"autorange": "reversed"}, "xaxis": {"side": "bottom"}}
    if len(matrix) <= 32:  # one tick per row and column while their labels fit
        layout["yaxis"]["dtick"] = layout["xaxis"]["dtick"] = 1
    if highlight is not None:
        row = highlight - 1
        layout["shapes"] = [{
            "type": "rect", "x0": -0.5, "x1": len(matrix.columns) - 0.5, "y0": row - 0.5, "y1": row + 0.5,
            "line": {"color": HIGHLIGHT_COLOR, "width": 3},
        }]
    return figure([trace], chart_layout(
        title or "Connectivity matrix: row H_l reads x_0 … x_(l−1)",
        "map read (x_0 = block input, x_i = output of H_i)",
        "layer reading",
        height=min(1400, max(480, 26 * len(matrix) + 220)),
        layout=layout,
    ))


COMPARISON_PANELS = (
    ("Parameters (M)", ["params"], 1e6),
    ("MACs/image (G)", ["macs_per_sample"], 1e9),
    ("Memory (MiB)", ["weight_bytes", "inference_bytes", "train_plain_bytes", "train_efficient_bytes"], MIB),
)


@functools.lru_cache(maxsize=1)
def _comparison_grid() -> Grid:
    # Two small panels side by side, the memory panel (four bar pairs) below at full width: readable on a phone.
    return subplot_grid(
        rows=2, cols=2, specs=[[{}, {}], [{"colspan": 2}, None]], subplot_titles=[p[0] for p in COMPARISON_PANELS],
        horizontal_spacing=0.2, vertical_spacing=0.2,
    )


def comparison_bars(table: pd.DataFrame, dense_name: str, resnet_name: str) -> go.Figure:
    """DenseNet vs ResNet bars: parameters (millions), MACs per image (G) and memory (MiB), one panel each."""
    names = {
        "params": "parameters",
        "macs_per_sample": "MACs",
        "weight_bytes": "weights",
        "inference_bytes": "inference",
        "train_plain_bytes": "train, plain",
        "train_efficient_bytes": "train, efficient",
    }
    grid = _comparison_grid()
    rows = {key: {"densenet": d, "resnet": r} for key, d, r in zip(table["key"], table["densenet"], table["resnet"],
                                                                    strict=True)}  # pandas' .loc per cell cost more
    data = []
    for col, (_, keys, scale) in enumerate(COMPARISON_PANELS, start=1):
        for who, name, color in (("densenet", dense_name, DENSENET_COLOR), ("resnet", resnet_name, RESNET_COLOR)):
            data.append({
                "type": "bar",
                "x": [names[k] for k in keys],
                "y": [float(rows[k][who] / scale) for k in keys],
                "name": name,
                "marker": {"color": color},
                "showlegend": col == 1,
                "legendgroup": who,
                "hovertemplate": f"{name}<br>%{{x}}: %{{y:.3g}}<extra></extra>",
                **grid.cell(1 if col < 3 else 2, col if col < 3 else 1),
            })
    layout = grid.layout_copy()
    for note in layout["annotations"]:  # the panel titles
        note["font"]["size"] = AXIS_TITLE_SIZE
    return figure(data, chart_layout(f"{dense_name} vs {resnet_name}", height=680, barmode="group",
                                     legend_below=True, top_labels=AXIS_TITLE_SIZE + 10,  # the panel titles
                                     layout=layout), grid)


def block_memory_chart(blocks: pd.DataFrame) -> go.Figure:
    """Training activation memory per stage (stem, dense blocks, transitions, head), plain vs efficient (MiB)."""
    b = blocks[blocks["block"].astype(str) != "total"]
    labels = [str(v) for v in b["block"]]
    data = [
        {"type": "bar", "x": labels, "y": (b["train_plain_bytes"] / MIB).to_numpy(), "name": "training, plain",
         "marker": {"color": PLAIN_COLOR}},
        {"type": "bar", "x": labels, "y": (b["train_efficient_bytes"] / MIB).to_numpy(),
         "name": "training, memory-efficient", "marker": {"color": EFFICIENT_COLOR}},
    ]
    return figure(data, chart_layout(
        "Training memory per stage", "stage of the network", "activation memory (MiB)", barmode="group", height=480,
    ))


def memory_growth_chart(growth: pd.DataFrame, title: str = "") -> go.Figure:
    """Activation memory of one dense block against its layer count: plain is quadratic, efficient linear."""
    layers = growth["layers"].to_numpy()
    data = [
        {"type": "scatter", "x": layers, "y": (growth["plain_bytes"] / MIB).to_numpy(), "name": "plain: grows like L²",
         "mode": "lines+markers", "line": {"color": PLAIN_COLOR, "width": 4}},
        {"type": "scatter", "x": layers, "y": (growth["efficient_bytes"] / MIB).to_numpy(),
         "name": "memory-efficient: grows like L", "mode": "lines+markers",
         "line": {"color": EFFICIENT_COLOR, "width": 4, "dash": "dash"}},
    ]
    return figure(data, chart_layout(
        title or "One dense block: training memory, quadratic vs linear",
        "layers in the block (L)",
        "activation memory (MiB)",
        height=480,
    ))


def trade_chart(measured: pd.DataFrame) -> go.Figure:
    """Measured training: step time and saved activations of each mode, relative to plain (plain = 1)."""
    modes = measured["mode"].tolist()
    data = [
        {"type": "bar", "x": modes, "y": measured["time_ratio"].to_numpy(), "name": "step time ÷ plain",
         "marker": {"color": RESNET_COLOR}},
        {"type": "bar", "x": modes, "y": measured["memory_ratio"].to_numpy(), "name": "activation memory ÷ plain",
         "marker": {"color": EFFICIENT_COLOR}},
    ]
    return figure(data, chart_layout("Measured trade: memory saved for time spent", "training mode",
                                     "ratio to plain (×)", barmode="group", height=420,
                                     layout={"shapes": [_hline(1.0, dash="dot")]}))


SWEEP_PANELS = (
    ("Parameters (millions)", "params", 1e6),
    ("MACs per image (billions)", "macs_per_sample", 1e9),
    ("Training activations (MiB)", "train_plain_bytes", MIB),
)


@functools.lru_cache(maxsize=1)
def _sweep_grid() -> Grid:
    return subplot_grid(rows=3, cols=1, subplot_titles=[p[0] for p in SWEEP_PANELS], shared_xaxes=True,
                        vertical_spacing=0.12)


def sweep_chart(
    sweep: pd.DataFrame, x: str, x_title: str, title: str, references: pd.DataFrame | None = None,
    baseline: str | None = None,
) -> go.Figure:
    """Parameters, MACs and training memory along a sweep; ResNets (if given) as labelled reference points where
    they have the sweep's x, and the one named `baseline` as dashed lines.

    The panels are stacked (one x axis, full width: readable on a phone). The memory panel shows plain (solid)
    and memory-efficient (dashed) training.
    """
    grid = _sweep_grid()
    xs = sweep[x].to_numpy()
    current = sweep[sweep["current"]]
    with_references = references is not None and len(references) and x in references
    data = []
    for panel, (_, key, scale) in enumerate(SWEEP_PANELS, start=1):
        cell = grid.cell(panel, 1)
        data.append({
            "type": "scatter", "x": xs, "y": (sweep[key] / scale).to_numpy(), "mode": "lines+markers",
            "name": "DenseNet" + (", plain" if panel == 3 else ""),
            "line": {"color": DENSENET_COLOR if panel < 3 else PLAIN_COLOR, "width": 3}, "showlegend": panel >= 2,
            "legendgroup": f"d{panel}", **cell,
        })
        data.append({
            "type": "scatter", "x": current[x].to_numpy(), "y": (current[key] / scale).to_numpy(), "mode": "markers",
            "name": "current config", "marker": STAR, "showlegend": panel == 1, "legendgroup": "current", **cell,
        })
        if panel == 3:
            data.append({
                "type": "scatter", "x": xs, "y": (sweep["train_efficient_bytes"] / scale).to_numpy(),
                "mode": "lines+markers", "name": "DenseNet, memory-efficient",
                "line": {"color": EFFICIENT_COLOR, "width": 3, "dash": "dash"}, **cell,
            })
        if with_references:
            data.append({
                "type": "scatter", "x": references[x].to_numpy(), "y": (references[key] / scale).to_numpy(),
                "mode": "markers+text" if panel == 1 else "markers", "text": references["title"].tolist(),
                "textposition": "middle right", "name": "ResNets",
                "hovertemplate": "%{text}: %{y:.3g}<extra></extra>",
                "marker": {"size": 11, "color": RESNET_COLOR, "symbol": "diamond"},
                "showlegend": panel == 1, "legendgroup": "resnet", "textfont": {"size": LABEL_SIZE}, **cell,
            })
    layout = grid.layout_copy()
    layout[grid.axes(3, 1)[0]]["title"] = {"text": wrap_text(x_title, AXIS_CHARS)}
    for key in axis_keys(layout):
        if key.startswith("xaxis"):
            layout[key]["showticklabels"] = True  # every panel keeps its numbers, so each reads on its own
    for note in layout["annotations"]:  # the panel titles
        note["font"]["size"] = AXIS_TITLE_SIZE
    if baseline is not None and references is not None:
        shapes, notes = _baseline_lines(references, baseline)
        layout["shapes"] = [*layout.get("shapes", []), *shapes]
        layout["annotations"] = [*layout["annotations"], *notes]
    return figure(data, chart_layout(title, height=900, legend_below=True, top_labels=AXIS_TITLE_SIZE + 10,
                                     layout=layout), grid)  # top_labels: the panel titles


def _baseline_lines(references: pd.DataFrame, baseline: str) -> tuple[list[dict], list[dict]]:
    """The baseline ResNet's values on a sweep_chart's panels: dashed horizontal lines, each labelled at its right
    end (where fig.add_hline puts annotation_text), as the layout's shapes and annotations."""
    row = references[references["name"] == baseline]
    if not len(row):
        return [], []
    grid = _sweep_grid()
    label = row["title"].iloc[0]
    shapes, notes = [], []
    for panel, (_, key, scale) in enumerate(SWEEP_PANELS, start=1):
        cell = grid.cell(panel, 1)
        y = float(row[key].iloc[0]) / scale
        shapes.append(_hline(y, f"{cell['xaxis']} domain", cell["yaxis"], color=RESNET_COLOR, dash="dot"))
        notes.append({"font": {"size": LABEL_SIZE}, "showarrow": False, "text": label, "x": 1, "xanchor": "right",
                      "xref": f"{cell['xaxis']} domain", "y": y, "yanchor": "bottom", "yref": cell["yaxis"]})
    return shapes, notes
