"""Plotly figures for the feature-map and training pages; they draw records, they never run a model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..lab.features import ChannelGroup
from ..lab.training import EpochResult, ReuseMap
from .charts import title_margin, wrapped_title
from .style import DENSENET_COLOR, FONT_FAMILY, OKABE_ITO, RESNET_COLOR, SERIES_COLORS, text_color_on

# One colour per source layer of a block output, cycling through the palette; x0 (the block input) is grey.
LAYER_COLORS = tuple(color for name, color in OKABE_ITO.items() if name != "grey")
X0_COLOR = OKABE_ITO["grey"]
MAP_COLORSCALE = "Cividis"  # perceptually uniform and colour-blind safe
FONT = {"family": FONT_FAMILY, "size": 15}  # readable on a projector
TITLE_FONT_SIZE = 21  # plotly's default for FONT: 1.4 × its size
GRID_WIDTH_PX = 900


def model_color(name: str, index: int) -> str:
    """The colour a model has on every page: DenseNets in DENSENET_COLOR, ResNets in RESNET_COLOR."""
    if name.lower().startswith("densenet"):
        return DENSENET_COLOR
    if name.lower().startswith("resnet"):
        return RESNET_COLOR
    return SERIES_COLORS[(index + 2) % len(SERIES_COLORS)]  # after the two the architectures own


def source_colors(groups: list[ChannelGroup]) -> dict[str, str]:
    """A colour per source group: grey for x0, then the palette in layer order (cycling when L > 7)."""
    colors: dict[str, str] = {}
    for g in groups:
        colors[g.label] = X0_COLOR if g.layer <= 0 else LAYER_COLORS[(g.layer - 1) % len(LAYER_COLORS)]
    return colors


def feature_grid_figure(
    maps: np.ndarray, channels: list[int], sources: list[str], colors: dict[str, str], title: str, cols: int = 8
) -> go.Figure:
    """One heatmap per channel (maps: (n, H, W)), each on its own colour range, titled in its source's colour."""
    n = len(channels)
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    tile = GRID_WIDTH_PX / cols  # square tiles: the page is about this wide
    fig = make_subplots(
        rows=rows,
        cols=cols,
        # black text (readable on white) after a square in the source's colour
        subplot_titles=[f"<span style='color:{colors.get(s, X0_COLOR)}'>■</span> ch {c}"
                        for c, s in zip(channels, sources, strict=True)],
        horizontal_spacing=0.02,
        vertical_spacing=min(0.12, 30 / (rows * (tile + 30))),
    )
    for i, (c, fmap) in enumerate(zip(channels, maps, strict=True)):
        r, col = divmod(i, cols)
        fig.add_trace(
            go.Heatmap(
                z=fmap,
                colorscale=MAP_COLORSCALE,
                showscale=False,
                name=f"channel {c}",
                hovertemplate=f"channel {c} ({sources[i]})<br>x %{{x}}, y %{{y}}<br>"
                "activation %{z:.3g}<extra></extra>",
            ),
            row=r + 1,
            col=col + 1,
        )
    for annotation in fig.layout.annotations[:n]:
        annotation.font = {"size": 13}
    for i in range(1, n + 1):  # keep every map square (x and y in the same units)
        suffix = "" if i == 1 else str(i)
        fig.layout[f"yaxis{suffix}"].update(scaleanchor=f"x{suffix}", constrain="domain")
        fig.layout[f"xaxis{suffix}"].update(constrain="domain")
    # Legend entries for the source colours (markers without data draw nothing on the axes).
    for label in dict.fromkeys(sources):
        fig.add_trace(
            go.Scatter(x=[None], y=[None], mode="markers", marker={"color": colors.get(label), "size": 10},
                       name=label, showlegend=True)
        )
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, ticks="", showline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, ticks="", showline=False,
                     autorange="reversed")
    heading = wrapped_title(title, TITLE_FONT_SIZE)
    fig.update_layout(
        title=heading,
        height=int(150 + rows * (tile + 30)),
        margin={"l": 10, "r": 10, "t": title_margin(heading, 20), "b": 10},
        font=FONT,
        legend={"title": {"text": "produced by"}, "orientation": "h", "y": -0.02, "yanchor": "top"},
        plot_bgcolor="white",
    )
    return fig


def channel_groups_figure(groups: list[ChannelGroup], colors: dict[str, str], title: str) -> go.Figure:
    """The concatenation as one stacked bar: a segment per source, as wide as its channel count."""
    fig = go.Figure()
    for g in groups:
        fig.add_trace(
            go.Bar(
                x=[g.size],
                y=["output channels"],
                orientation="h",
                name=g.label,
                marker={"color": colors[g.label], "line": {"color": "white", "width": 1}},
                text=[g.label if g.size >= 8 else ""],
                textposition="inside",
                textfont={"color": text_color_on(colors[g.label])},
                hovertemplate=f"{g.label}: channels {g.start}–{g.stop - 1} ({g.size})<extra></extra>",
            )
        )
    heading = wrapped_title(title, TITLE_FONT_SIZE)
    fig.update_layout(
        barmode="stack",
        title=heading,
        xaxis_title="channel index (concatenation order)",
        yaxis={"showticklabels": False},
        height=140 + title_margin(heading),
        margin={"l": 10, "r": 10, "t": title_margin(heading), "b": 40},
        font=FONT,
        showlegend=False,
    )
    return fig


def source_means_figure(summary: pd.DataFrame, colors: dict[str, str], title: str) -> go.Figure:
    """Mean activation of each source's channels (bars in the source colours)."""
    fig = go.Figure(
        go.Bar(
            x=summary["source"],
            y=summary["mean activation"],
            marker={"color": [colors.get(s, X0_COLOR) for s in summary["source"]]},
            customdata=np.stack([summary["channels"], summary["mean |activation|"]], axis=1),
            hovertemplate="%{x}<br>mean %{y:.3g}<br>mean |a| %{customdata[1]:.3g}<br>%{customdata[0]} channels"
            "<extra></extra>",
        )
    )
    heading = wrapped_title(title, TITLE_FONT_SIZE)
    fig.update_layout(
        title=heading,
        xaxis_title="source of the channels",
        yaxis_title="mean activation (a.u.)",
        height=340,
        margin={"l": 10, "r": 10, "t": title_margin(heading), "b": 40},
        font=FONT,
    )
    return fig


def training_curves_figure(history: list[EpochResult]) -> go.Figure:
    """Training loss and train/test accuracy per epoch for each model."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["Training loss", "Accuracy"])
    names = list(dict.fromkeys(r.model for r in history))
    for i, name in enumerate(names):
        rows = [r for r in history if r.model == name]
        color = model_color(name, i)
        epochs = [r.epoch for r in rows]
        fig.add_trace(go.Scatter(x=epochs, y=[r.loss for r in rows], name=f"{name} loss", mode="lines+markers",
                                 line={"color": color}), row=1, col=1)
        fig.add_trace(go.Scatter(x=epochs, y=[100 * r.test_acc for r in rows], name=f"{name} test",
                                 mode="lines+markers", line={"color": color}), row=1, col=2)
        fig.add_trace(go.Scatter(x=epochs, y=[100 * r.train_acc for r in rows], name=f"{name} train",
                                 mode="lines+markers", line={"color": color, "dash": "dot"}), row=1, col=2)
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_yaxes(title_text="cross-entropy (nats)", row=1, col=1)
    fig.update_yaxes(title_text="accuracy (%)", row=1, col=2)
    heading = wrapped_title("Training on scikit-learn digits", TITLE_FONT_SIZE)
    # The legend in rows under the plots: on the right it would leave a phone's plots a few pixels wide.
    fig.update_layout(title=heading, height=480, font=FONT, margin={"l": 10, "r": 10, "t": title_margin(heading, 30),
                                                                    "b": 150},
                      legend={"orientation": "h", "xref": "container", "x": 0, "yref": "container", "y": 0,
                              "yanchor": "bottom"})
    return fig


def accuracy_vs_params_figure(table: pd.DataFrame) -> go.Figure:
    """Test accuracy against parameter count, one labelled point per model (table: model, parameters, test %)."""
    colors = [model_color(name, i) for i, name in enumerate(table["model"])]
    fig = go.Figure(
        go.Scatter(
            x=table["parameters"],
            y=table["test accuracy (%)"],
            mode="markers+text",
            text=table["model"],
            textposition="bottom center",
            marker={"size": 14, "color": colors},
            hovertemplate="%{text}<br>%{x:,} parameters<br>test accuracy %{y:.1f} %<extra></extra>",
        )
    )
    heading = wrapped_title("Held-out accuracy against parameters", TITLE_FONT_SIZE)
    fig.update_layout(
        title=heading,
        xaxis={"title": "parameters (count)", "range": [0, 1.25 * float(table["parameters"].max())]},
        yaxis={"title": "test accuracy (%)", "range": [0, 105]},
        height=360,
        font=FONT,
        margin={"l": 10, "r": 10, "t": title_margin(heading), "b": 40},
    )
    return fig


def reuse_heatmap_figure(reuse: ReuseMap) -> go.Figure:
    """Huang et al.'s Figure 5 for one block: target layers (rows) against the sources they read (columns)."""
    text = np.where(np.isnan(reuse.values), "", np.vectorize(lambda v: f"{v:.2f}")(np.nan_to_num(reuse.values)))
    fig = go.Figure(
        go.Heatmap(
            z=reuse.values,
            x=reuse.sources,
            y=reuse.targets,
            zmin=0,
            zmax=1,
            colorscale="Viridis",
            text=text,
            texttemplate="%{text}" if reuse.values.size <= 400 else None,
            colorbar={"title": {"text": "relative<br>mean |w|"}},
            hovertemplate="%{y} reads %{x}<br>relative mean |w| %{z:.2f}<extra></extra>",
        )
    )
    heading = wrapped_title(f"Feature reuse in dense block {reuse.block} (mean |weight| per source, each row "
                            "scaled to max 1)", TITLE_FONT_SIZE)
    fig.update_layout(
        title=heading,
        xaxis_title="source s (whose channels are read)",
        yaxis={"title": "reader (layer l)", "autorange": "reversed"},
        height=max(320, 60 + 32 * len(reuse.targets)),
        font=FONT,
        margin={"l": 10, "r": 10, "t": title_margin(heading), "b": 40},
    )
    return fig
