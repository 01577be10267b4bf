"""Plotly figures of the analysis: they draw DataFrames from series.py / analysis.py and compute nothing.

Colours come from style.py (Okabe-Ito, colour-blind safe); fonts are sized for a projector; no figure
sets a background or template, so Streamlit's own theme makes them follow the light or dark theme.
"""

from __future__ import annotations

import textwrap

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import (
    ANNOTATION_SIZE,
    AXIS_TITLE_SIZE,
    DENSENET_COLOR,
    EFFICIENT_COLOR,
    FONT_FAMILY,
    HIGHLIGHT_COLOR,
    LEGEND_SIZE,
    OKABE_ITO,
    PLAIN_COLOR,
    RESNET_COLOR,
    SERIES_COLORS,
    TICK_SIZE,
    TITLE_SIZE,
)

MIB = 2**20  # charts show bytes in MiB (binary), with the unit in the axis title
CURRENT_COLOR = OKABE_ITO["reddish_purple"]  # the sidebar's model in a sweep: unlike any line colour
STAR = {"size": 18, "symbol": "star", "color": CURRENT_COLOR, "line": {"width": 1.5, "color": "#555555"}}
KIND_NAMES = {"dense_layer": "dense layer", "transition": "transition", "norm": "final BN (to the classifier)"}
# Plotly never wraps text: lines this long in TITLE_SIZE / AXIS_TITLE_SIZE fit a 390 px phone screen.
TITLE_CHARS = 32
AXIS_CHARS = 32
TOOLBAR_PX = 32  # the strip at the top of a chart that Streamlit's toolbar covers (always shown on a phone)


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


def _layout(
    fig: go.Figure, title: str, x_title: str | None = None, y_title: str | None = None, legend_below: bool = False,
    top_labels: int = 0, **extra,
) -> go.Figure:
    """Projector-sized title, axis titles and ticks that also fit a phone: titles wrapped, margins pushed by
    what they hold (automargin), the legend in a row of its own at the bottom, where it covers no data."""
    legend_rows = 2 if legend_below else 1  # a phone wraps a horizontal legend onto more rows
    heading = wrapped_title(title)
    fig.update_layout(
        title=heading,
        font={"family": FONT_FAMILY, "size": TICK_SIZE},
        legend={"font": {"size": LEGEND_SIZE}, "orientation": "h", "xref": "container", "x": 0, "xanchor": "left",
                "yref": "container",
                "y": 0, "yanchor": "bottom"},
        margin={"t": title_margin(heading, top_labels), "l": 10, "r": 10, "b": 70 + 26 * legend_rows},
        hoverlabel={"font": {"size": TICK_SIZE}},
        **extra,
    )
    fig.update_xaxes(title_font={"size": AXIS_TITLE_SIZE}, tickfont={"size": TICK_SIZE}, automargin=True)
    fig.update_yaxes(title_font={"size": AXIS_TITLE_SIZE}, tickfont={"size": TICK_SIZE}, automargin=True)
    if x_title:
        fig.update_xaxes(title_text=wrap_text(x_title, AXIS_CHARS))
    if y_title:
        fig.update_yaxes(title_text=wrap_text(y_title, AXIS_CHARS))
    return fig


def _hover(series: pd.DataFrame) -> list[str]:
    return [
        f"{p}<br>{KIND_NAMES.get(kind, kind)}: {c} channels in, {s}×{s}"
        for p, kind, c, s in zip(series["path"], series["kind"], series["channels"], series["size"], strict=False)
    ]


def channel_growth_chart(series: pd.DataFrame, current_k: int, compression: float) -> go.Figure:
    """The saw-tooth: channels entering every layer; +k per dense layer, x theta at each transition.

    One line per growth rate in `series` (channel_series); the current k is drawn thickest and annotated.
    """
    fig = go.Figure()
    rates = sorted(series["growth_rate"].unique(), key=lambda k: (k != current_k, k))
    for i, k in enumerate(rates):
        s = series[series["growth_rate"] == k]
        current = k == current_k
        fig.add_trace(
            go.Scatter(
                x=s["step"],
                y=s["channels"],
                name=f"k = {k}" + (" (current)" if current else ""),
                mode="lines+markers",
                line={"color": SERIES_COLORS[i % len(SERIES_COLORS)], "width": 4 if current else 2},
                marker={"size": 7 if current else 4},
                hovertext=_hover(s),
                hoverinfo="text+name",
            )
        )
    s = series[series["growth_rate"] == current_k]
    # The formula is on the page above the chart: here each transition gets a dotted line and a short label
    # above the plot, where it covers no data at any width.
    for _, t in s[s["kind"] == "transition"].iterrows():
        fig.add_vline(x=t["step"], line_dash="dot", line_color=OKABE_ITO["grey"], line_width=1)
        fig.add_annotation(
            x=t["step"], xref="x", y=1, yref="paper", yanchor="bottom", text="×θ", showarrow=False,
            font={"size": ANNOTATION_SIZE}, hovertext=f"transition: c → ⌊θ·c⌋ with θ = {compression:g}",
        )
    return _layout(
        fig,
        "Channels entering each layer: +k per layer, ×θ at transitions",
        "position along the network",
        "channels entering (count)",
        height=540,
        top_labels=ANNOTATION_SIZE + 8,
    )


def spatial_size_chart(series: pd.DataFrame) -> go.Figure:
    """Side of the feature map each unit reads: constant in a block, halved by every transition."""
    s = series[series["growth_rate"] == series["growth_rate"].iloc[0]]
    fig = go.Figure(
        go.Scatter(
            x=s["step"],
            y=s["size"],
            mode="lines+markers",
            line={"shape": "hv", "color": DENSENET_COLOR, "width": 3},
            name="feature-map side",
            hovertext=_hover(s),
            hoverinfo="text",
        )
    )
    return _layout(
        fig,
        "Spatial size: halved at each transition",
        "position along the network",
        "map side (pixels)",
        height=400,
    )


def resnet_channel_chart(series: pd.DataFrame, title: str) -> go.Figure:
    """Channels every residual block of the baseline carries (its output): flat in a stage, doubled between."""
    fig = go.Figure(
        go.Scatter(
            x=series["step"],
            y=series["out_channels"],
            mode="lines+markers",
            line={"shape": "hv", "color": RESNET_COLOR, "width": 4},
            name=title,
            hovertext=[
                f"{p}: {c} channels out, {s}×{s}"
                for p, c, s in zip(series["path"], series["out_channels"], series["size"], strict=False)
            ],
            hoverinfo="text",
        )
    )
    return _layout(
        fig,
        f"{title}: channels per residual block",
        "residual block (in order)",
        "channels (count)",
        height=400,
    )


def connectivity_heatmap(matrix: pd.DataFrame, highlight: int | None = None, title: str = "") -> go.Figure:
    """Who reads whom as a matrix (for blocks too large to draw as a graph); 1 = the row reads the column."""
    fig = go.Figure(
        go.Heatmap(
            z=matrix.to_numpy(),
            x=list(matrix.columns),
            y=list(matrix.index),
            colorscale=[[0, "rgba(0,0,0,0)"], [1, DENSENET_COLOR]],
            showscale=False,
            xgap=1,
            ygap=1,
            hovertemplate="%{y} reads %{x}: %{z}<extra></extra>",
        )
    )
    if highlight is not None:
        row = highlight - 1
        fig.add_shape(
            type="rect", x0=-0.5, x1=len(matrix.columns) - 0.5, y0=row - 0.5, y1=row + 0.5,
            line={"color": HIGHLIGHT_COLOR, "width": 3},
        )
    fig.update_yaxes(autorange="reversed", dtick=1 if len(matrix) <= 32 else None)
    fig.update_xaxes(dtick=1 if len(matrix) <= 32 else None, side="bottom")
    return _layout(
        fig,
        title or "Connectivity matrix: row H_l reads x_0 … x_(l−1)",
        "map read (x_0 = block input, x_i = output of H_i)",
        "layer reading",
        height=min(1400, max(480, 26 * len(matrix) + 220)),
    )


def comparison_bars(table: pd.DataFrame, dense_name: str, resnet_name: str) -> go.Figure:
    """DenseNet vs ResNet bars: parameters (millions), MACs per image (G) and memory (MiB), one panel each."""
    panels = [
        ("Parameters (M)", ["params"], 1e6),
        ("MACs/image (G)", ["macs_per_sample"], 1e9),
        ("Memory (MiB)", ["weight_bytes", "inference_bytes", "train_plain_bytes", "train_efficient_bytes"], MIB),
    ]
    names = {
        "params": "parameters",
        "macs_per_sample": "MACs",
        "weight_bytes": "weights",
        "inference_bytes": "inference",
        "train_plain_bytes": "train, plain",
        "train_efficient_bytes": "train, efficient",
    }
    # Two small panels side by side, the memory panel (four bar pairs) below at full width: readable on a phone.
    fig = make_subplots(
        rows=2, cols=2, specs=[[{}, {}], [{"colspan": 2}, None]], subplot_titles=[p[0] for p in panels],
        horizontal_spacing=0.2, vertical_spacing=0.2,
    )
    rows = table.set_index("key")
    for col, (_, keys, scale) in enumerate(panels, start=1):
        for who, name, color in (("densenet", dense_name, DENSENET_COLOR), ("resnet", resnet_name, RESNET_COLOR)):
            fig.add_trace(
                go.Bar(
                    x=[names[k] for k in keys],
                    y=[rows.loc[k, who] / scale for k in keys],
                    name=name,
                    marker_color=color,
                    showlegend=col == 1,
                    legendgroup=who,
                    hovertemplate=f"{name}<br>%{{x}}: %{{y:.3g}}<extra></extra>",
                ),
                row=1 if col < 3 else 2,
                col=col if col < 3 else 1,
            )
    fig.update_annotations(font_size=AXIS_TITLE_SIZE)
    return _layout(fig, f"{dense_name} vs {resnet_name}", height=680, barmode="group", legend_below=True,
                   top_labels=AXIS_TITLE_SIZE + 10)  # the panel titles


def block_memory_chart(blocks: pd.DataFrame) -> go.Figure:
    """Training activation memory per stage (stem, dense blocks, transitions, head), plain vs efficient (MiB)."""
    b = blocks[blocks["block"].astype(str) != "total"]
    labels = [str(v) for v in b["block"]]
    fig = go.Figure(
        [
            go.Bar(x=labels, y=b["train_plain_bytes"] / MIB, name="training, plain", marker_color=PLAIN_COLOR),
            go.Bar(
                x=labels, y=b["train_efficient_bytes"] / MIB, name="training, memory-efficient",
                marker_color=EFFICIENT_COLOR,
            ),
        ]
    )
    return _layout(
        fig, "Training memory per stage", "stage of the network", "activation memory (MiB)",
        barmode="group", height=480,
    )


def memory_growth_chart(growth: pd.DataFrame, title: str = "") -> go.Figure:
    """Activation memory of one dense block against its layer count: plain is quadratic, efficient linear."""
    fig = go.Figure(
        [
            go.Scatter(
                x=growth["layers"], y=growth["plain_bytes"] / MIB, name="plain: grows like L²",
                mode="lines+markers", line={"color": PLAIN_COLOR, "width": 4},
            ),
            go.Scatter(
                x=growth["layers"], y=growth["efficient_bytes"] / MIB, name="memory-efficient: grows like L",
                mode="lines+markers", line={"color": EFFICIENT_COLOR, "width": 4, "dash": "dash"},
            ),
        ]
    )
    return _layout(
        fig,
        title or "One dense block: training memory, quadratic vs linear",
        "layers in the block (L)",
        "activation memory (MiB)",
        height=480,
    )


def trade_chart(measured: pd.DataFrame) -> go.Figure:
    """Measured training: step time and saved activations of each mode, relative to plain (plain = 1)."""
    fig = go.Figure(
        [
            go.Bar(x=measured["mode"], y=measured["time_ratio"], name="step time ÷ plain", marker_color=RESNET_COLOR),
            go.Bar(
                x=measured["mode"], y=measured["memory_ratio"], name="activation memory ÷ plain",
                marker_color=EFFICIENT_COLOR,
            ),
        ]
    )
    fig.add_hline(y=1.0, line_dash="dot")
    return _layout(fig, "Measured trade: memory saved for time spent", "training mode", "ratio to plain (×)",
                   barmode="group", height=420)


SWEEP_PANELS = (
    ("Parameters (millions)", "params", 1e6),
    ("MACs per image (billions)", "macs_per_sample", 1e9),
    ("Training activations (MiB)", "train_plain_bytes", MIB),
)


def sweep_chart(
    sweep: pd.DataFrame, x: str, x_title: str, title: str, references: pd.DataFrame | None = None
) -> go.Figure:
    """Parameters, MACs and training memory along a sweep; ResNets (if given) as labelled reference points.

    The panels are stacked (one x axis, full width: readable on a phone). The memory panel shows plain (solid)
    and memory-efficient (dashed) training.
    """
    fig = make_subplots(rows=3, cols=1, subplot_titles=[p[0] for p in SWEEP_PANELS], shared_xaxes=True,
                        vertical_spacing=0.12)
    for panel, (_, key, scale) in enumerate(SWEEP_PANELS, start=1):
        fig.add_trace(
            go.Scatter(
                x=sweep[x], y=sweep[key] / scale, mode="lines+markers",
                name="DenseNet" + (", plain" if panel == 3 else ""),
                line={"color": DENSENET_COLOR if panel < 3 else PLAIN_COLOR, "width": 3}, showlegend=panel >= 2,
                legendgroup=f"d{panel}",
            ),
            row=panel,
            col=1,
        )
        current = sweep[sweep["current"]]
        fig.add_trace(
            go.Scatter(
                x=current[x], y=current[key] / scale, mode="markers", name="current config",
                marker=STAR,
                showlegend=panel == 1,
                legendgroup="current",
            ),
            row=panel,
            col=1,
        )
        if panel == 3:
            fig.add_trace(
                go.Scatter(
                    x=sweep[x], y=sweep["train_efficient_bytes"] / scale, mode="lines+markers",
                    name="DenseNet, memory-efficient", line={"color": EFFICIENT_COLOR, "width": 3, "dash": "dash"},
                ),
                row=3,
                col=1,
            )
        if references is not None and len(references) and x in references:
            fig.add_trace(
                go.Scatter(
                    x=references[x], y=references[key] / scale, mode="markers+text" if panel == 1 else "markers",
                    text=references["title"], textposition="middle right", name="ResNets",
                    hovertemplate="%{text}: %{y:.3g}<extra></extra>", marker={"size": 11, "color": RESNET_COLOR,
                                                                       "symbol": "diamond"},
                    showlegend=panel == 1, legendgroup="resnet", textfont={"size": 13},
                ),
                row=panel,
                col=1,
            )
    fig.update_xaxes(title_text=wrap_text(x_title, AXIS_CHARS), row=3, col=1)
    fig.update_xaxes(showticklabels=True)  # every panel keeps its numbers, so each reads on its own
    fig.update_annotations(font_size=AXIS_TITLE_SIZE)
    return _layout(fig, title, height=900, legend_below=True, top_labels=AXIS_TITLE_SIZE + 10)  # panel titles


def reference_lines(fig: go.Figure, references: pd.DataFrame, baseline: str) -> go.Figure:
    """Add the baseline ResNet's values as dashed horizontal lines to a growth-rate sweep_chart."""
    row = references[references["name"] == baseline]
    if not len(row):
        return fig
    for panel, (_, key, scale) in enumerate(SWEEP_PANELS, start=1):
        fig.add_hline(
            y=float(row[key].iloc[0]) / scale, line_dash="dot", line_color=RESNET_COLOR, row=panel, col=1,
            annotation_text=row["title"].iloc[0], annotation_font_size=14,
        )
    return fig


def apply_layout(fig: go.Figure, title: str, x_title: str | None = None, y_title: str | None = None,
                 **extra) -> go.Figure:
    """The projector-sized layout of this module's charts, for chart modules beside it."""
    return _layout(fig, title, x_title, y_title, **extra)
