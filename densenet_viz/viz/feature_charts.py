"""Plotly figures for the feature-map and training pages; they draw records, they never run a model.

Built as dicts and made a go.Figure once by charts.figure, without plotly's per-property validation (see charts.py).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..analysis.records import ChannelGroup, EpochResult, ReuseMap, source_of, spread_channels
from .charts import Grid, axis_keys, figure, subplot_grid, title_margin, wrapped_title
from .style import (
    DENSENET_COLOR,
    FONT_FAMILY,
    LABEL_SIZE,
    OKABE_ITO,
    RESNET_COLOR,
    SERIES_COLORS,
    TICK_SIZE,
    text_color_on,
)

# One colour per source layer of a block output, cycling through the palette; x0 (the block input) is grey.
LAYER_COLORS = tuple(color for name, color in OKABE_ITO.items() if name != "grey")
X0_COLOR = OKABE_ITO["grey"]
MAP_COLORSCALE = "Cividis"  # perceptually uniform and colour-blind safe
FONT = {"family": FONT_FAMILY, "size": TICK_SIZE}
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


@functools.lru_cache(maxsize=16)
def _feature_grid(rows: int, cols: int, vertical_spacing: float) -> Grid:
    # Placeholder titles, one per cell (titled in order, row by row): each figure puts in its own.
    return subplot_grid(rows=rows, cols=cols, subplot_titles=[f"{i}" for i in range(1, rows * cols + 1)],
                        horizontal_spacing=0.02, vertical_spacing=vertical_spacing)


@functools.lru_cache(maxsize=4)
def _colorscale(name: str) -> list[list]:
    """A named colorscale as the [[position, colour], ...] list plotly's validation turns the name into
    (plotly.colors.get_colorscale differs from it in the last digit of a position)."""
    return [list(stop) for stop in go.Heatmap(colorscale=name).colorscale]


def feature_grid_figure(
    maps: np.ndarray, channels: list[int], sources: list[str], colors: dict[str, str], title: str, cols: int = 8
) -> go.Figure:
    """One heatmap per channel (maps: (n, H, W)), each on its own colour range, titled in its source's colour."""
    n = len(channels)
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    tile = GRID_WIDTH_PX / cols  # square tiles: the page is about this wide
    grid = _feature_grid(rows, cols, min(0.12, 30 / (rows * (tile + 30))))
    colorscale = _colorscale(MAP_COLORSCALE)
    data = []
    for i, (c, fmap) in enumerate(zip(channels, maps, strict=True)):
        r, col = divmod(i, cols)
        data.append({
            "type": "heatmap",
            "z": fmap,
            "colorscale": colorscale,
            "showscale": False,
            "name": f"channel {c}",
            "hovertemplate": f"channel {c} ({sources[i]})<br>x %{{x}}, y %{{y}}<br>"
            "activation %{z:.3g}<extra></extra>",
            **grid.cell(r + 1, col + 1),
        })
    layout = grid.layout_copy()
    # black text (readable on white) after a square in the source's colour
    layout["annotations"] = [
        {**note, "text": f"<span style='color:{colors.get(s, X0_COLOR)}'>■</span> ch {c}", "font": {"size": LABEL_SIZE}}
        for note, c, s in zip(layout["annotations"], channels, sources, strict=False)
    ]
    for i in range(1, n + 1):  # keep every map square (x and y in the same units)
        suffix = "" if i == 1 else str(i)
        layout[f"yaxis{suffix}"].update(scaleanchor=f"x{suffix}", constrain="domain")
        layout[f"xaxis{suffix}"].update(constrain="domain")
    # Legend entries for the source colours (markers without data draw nothing on the axes).
    for label in dict.fromkeys(sources):
        data.append({"type": "scatter", "x": [None], "y": [None], "mode": "markers",
                     "marker": {"color": colors.get(label), "size": 10}, "name": label, "showlegend": True})
    for key in axis_keys(layout):
        layout[key].update(showticklabels=False, showgrid=False, zeroline=False, ticks="", showline=False)
        if key.startswith("yaxis"):
            layout[key]["autorange"] = "reversed"
    heading = wrapped_title(title, TITLE_FONT_SIZE)
    layout.update(
        title=heading,
        height=int(150 + rows * (tile + 30)),
        margin={"l": 10, "r": 10, "t": title_margin(heading, 20), "b": 10},
        font=FONT,
        legend={"title": {"text": "produced by"}, "orientation": "h", "y": -0.02, "yanchor": "top"},
        plot_bgcolor="white",
    )
    return figure(data, layout, grid)


def sources_grid_figure(maps: np.ndarray, groups: list[ChannelGroup], n: int, label: str, cols: int = 8) -> go.Figure:
    """Up to n channels of a unit's output (maps: every channel, (C, h, w)) spread over the layers that produced
    them, each titled in its source's colour: the grid the Feature maps and Train pages draw."""
    chosen = spread_channels(groups, min(n, maps.shape[0]))
    labels = source_of(groups, maps.shape[0])
    title = f"{label}: {len(chosen)} of {maps.shape[0]} channels, coloured by source (each on its own colour range)"
    return feature_grid_figure(maps[chosen], chosen, [labels[c] for c in chosen], source_colors(groups), title, cols)


def channel_groups_figure(groups: list[ChannelGroup], colors: dict[str, str], title: str) -> go.Figure:
    """The concatenation as one stacked bar: a segment per source, as wide as its channel count."""
    data = [
        {
            "type": "bar",
            "x": [g.size],
            "y": ["output channels"],
            "orientation": "h",
            "name": g.label,
            "marker": {"color": colors[g.label], "line": {"color": "white", "width": 1}},
            "text": [g.label if g.size >= 8 else ""],
            "textposition": "inside",
            "textfont": {"color": text_color_on(colors[g.label])},
            "hovertemplate": f"{g.label}: channels {g.start}–{g.stop - 1} ({g.size})<extra></extra>",
        }
        for g in groups
    ]
    heading = wrapped_title(title, TITLE_FONT_SIZE)
    return figure(data, {
        "barmode": "stack",
        "title": heading,
        "xaxis": {"title": {"text": "channel index (concatenation order)"}},
        "yaxis": {"showticklabels": False},
        "height": 140 + title_margin(heading),
        "margin": {"l": 10, "r": 10, "t": title_margin(heading), "b": 40},
        "font": FONT,
        "showlegend": False,
    })


def source_means_figure(summary: pd.DataFrame, colors: dict[str, str], title: str) -> go.Figure:
    """Mean activation of each source's channels (bars in the source colours)."""
    sources = summary["source"].tolist()
    trace = {
        "type": "bar",
        "x": sources,
        "y": summary["mean activation"].to_numpy(),
        "marker": {"color": [colors.get(s, X0_COLOR) for s in sources]},
        "customdata": np.stack([summary["channels"], summary["mean |activation|"]], axis=1),
        "hovertemplate": "%{x}<br>mean %{y:.3g}<br>mean |a| %{customdata[1]:.3g}<br>%{customdata[0]} channels"
        "<extra></extra>",
    }
    heading = wrapped_title(title, TITLE_FONT_SIZE)
    return figure([trace], {
        "title": heading,
        "xaxis": {"title": {"text": "source of the channels"}},
        "yaxis": {"title": {"text": "mean activation (a.u.)"}},
        "height": 340,
        "margin": {"l": 10, "r": 10, "t": title_margin(heading), "b": 40},
        "font": FONT,
    })


@functools.lru_cache(maxsize=1)
def _training_grid() -> Grid:
    return subplot_grid(rows=1, cols=2, subplot_titles=["Training loss", "Accuracy"])


def training_curves_figure(history: list[EpochResult]) -> go.Figure:
    """Training loss and train/test accuracy per epoch for each model."""
    grid = _training_grid()
    loss, accuracy = grid.cell(1, 1), grid.cell(1, 2)
    names = list(dict.fromkeys(r.model for r in history))
    data = []
    for i, name in enumerate(names):
        rows = [r for r in history if r.model == name]
        color = model_color(name, i)
        epochs = [r.epoch for r in rows]
        data += [
            {"type": "scatter", "x": epochs, "y": [r.loss for r in rows], "name": f"{name} loss",
             "mode": "lines+markers", "line": {"color": color}, **loss},
            {"type": "scatter", "x": epochs, "y": [100 * r.test_acc for r in rows], "name": f"{name} test",
             "mode": "lines+markers", "line": {"color": color}, **accuracy},
            {"type": "scatter", "x": epochs, "y": [100 * r.train_acc for r in rows], "name": f"{name} train",
             "mode": "lines+markers", "line": {"color": color, "dash": "dot"}, **accuracy},
        ]
    layout = grid.layout_copy()
    for key in axis_keys(layout):
        if key.startswith("xaxis"):
            layout[key].update(title={"text": "epoch"}, dtick=1)
    layout[grid.axes(1, 1)[1]]["title"] = {"text": "cross-entropy (nats)"}
    layout[grid.axes(1, 2)[1]]["title"] = {"text": "accuracy (%)"}
    heading = wrapped_title("Training on scikit-learn digits", TITLE_FONT_SIZE)
    # The legend in rows under the plots: on the right it would leave a phone's plots a few pixels wide.
    layout.update(title=heading, height=480, font=FONT, margin={"l": 10, "r": 10, "t": title_margin(heading, 30),
                                                                "b": 150},
                  legend={"orientation": "h", "xref": "container", "x": 0, "yref": "container", "y": 0,
                          "yanchor": "bottom"})
    return figure(data, layout, grid)


def accuracy_vs_params_figure(table: pd.DataFrame) -> go.Figure:
    """Test accuracy against parameter count, one labelled point per model (table: model, parameters, test %)."""
    colors = [model_color(name, i) for i, name in enumerate(table["model"])]
    trace = {
        "type": "scatter",
        "x": table["parameters"].to_numpy(),
        "y": table["test accuracy (%)"].to_numpy(),
        "mode": "markers+text",
        "text": table["model"].tolist(),
        "textposition": "bottom center",
        "marker": {"size": 14, "color": colors},
        "hovertemplate": "%{text}<br>%{x:,} parameters<br>test accuracy %{y:.1f} %<extra></extra>",
    }
    heading = wrapped_title("Held-out accuracy against parameters", TITLE_FONT_SIZE)
    return figure([trace], {
        "title": heading,
        "xaxis": {"title": {"text": "parameters (count)"}, "range": [0, 1.25 * float(table["parameters"].max())]},
        "yaxis": {"title": {"text": "test accuracy (%)"}, "range": [0, 105]},
        "height": 360,
        "font": FONT,
        "margin": {"l": 10, "r": 10, "t": title_margin(heading), "b": 40},
    })


def reuse_heatmap_figure(reuse: ReuseMap) -> go.Figure:
    """Huang et al.'s Figure 5 for one block: target layers (rows) against the sources they read (columns)."""
    text = np.where(np.isnan(reuse.values), "", np.vectorize(lambda v: f"{v:.2f}")(np.nan_to_num(reuse.values)))
    trace = {
        "type": "heatmap",
        "z": reuse.values,
        "x": list(reuse.sources),
        "y": list(reuse.targets),
        "zmin": 0,
        "zmax": 1,
        "colorscale": _colorscale("Viridis"),
        "text": text.tolist(),
        "colorbar": {"title": {"text": "relative<br>mean |w|"}},
        "hovertemplate": "%{y} reads %{x}<br>relative mean |w| %{z:.2f}<extra></extra>",
    }
    if reuse.values.size <= 400:  # numbers in the cells while they fit
        trace["texttemplate"] = "%{text}"
    heading = wrapped_title(f"Feature reuse in dense block {reuse.block} (mean |weight| per source, each row "
                            "scaled to max 1)", TITLE_FONT_SIZE)
    return figure([trace], {
        "title": heading,
        "xaxis": {"title": {"text": "source s (whose channels are read)"}},
        "yaxis": {"title": {"text": "reader (layer l)"}, "autorange": "reversed"},
        "height": max(320, 60 + 32 * len(reuse.targets)),
        "font": FONT,
        "margin": {"l": 10, "r": 10, "t": title_margin(heading), "b": 40},
    })
