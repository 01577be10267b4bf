"""The training and feature figures colour each architecture as every other page does."""

import numpy as np
import pandas as pd
import pytest
from figure_checks import content, figure_functions, validated

from densenet_viz import PRESETS, analyze
from densenet_viz.analysis.records import ChannelGroup, EpochResult, ReuseMap
from densenet_viz.viz import charts, series
from densenet_viz.viz import feature_charts as fc
from densenet_viz.viz.style import DENSENET_COLOR, RESNET_COLOR


def _colors_by_name(fig) -> dict[str, str]:
    out = {}
    for trace in fig.data:
        color = trace.line.color if getattr(trace, "line", None) is not None and trace.line.color else None
        color = color or trace.marker.color
        out[trace.name] = color
    return out


def test_a_model_keeps_its_colour_from_the_comparison_chart_to_the_training_curves():
    table = series.comparison_table(analyze(PRESETS["densenet121"]), analyze(PRESETS["resnet18"]))
    bars = _colors_by_name(charts.comparison_bars(table, "DenseNet-121", "ResNet-18"))
    assert bars["DenseNet-121"] == DENSENET_COLOR and bars["ResNet-18"] == RESNET_COLOR
    history = [EpochResult(m, 1, 1.0, 0.5, 0.5, 1.0) for m in ("DenseNet-BC", "ResNet-20")]
    curves = _colors_by_name(fc.training_curves_figure(history))
    assert curves["DenseNet-BC loss"] == bars["DenseNet-121"]
    assert curves["ResNet-20 test"] == bars["ResNet-18"]


def test_accuracy_points_are_coloured_by_architecture():
    table = pd.DataFrame({"model": ["ResNet-20", "DenseNet-BC"], "parameters": [270_000, 100_000],
                          "test accuracy (%)": [91.1, 96.9]})
    fig = fc.accuracy_vs_params_figure(table)
    assert list(fig.data[0].marker.color) == [RESNET_COLOR, DENSENET_COLOR]


GROUPS = [ChannelGroup("x0 (block input)", 0, 0, 24), ChannelGroup("layer 1", 1, 24, 36),
          ChannelGroup("layer 2", 2, 36, 48)]
COLORS = fc.source_colors(GROUPS)
REUSE = ReuseMap(1, np.array([[1.0, np.nan, np.nan], [0.5, 1.0, np.nan], [0.2, 0.7, 1.0]]), np.ones((3, 3)),
                 ["layer 1", "layer 2", "transition 1"], ["x0 (block input)", "layer 1", "layer 2"])
# Every figure function: a call, and what the figure holds (traces, axes, shapes, annotations).
FIGURES = {
    # five maps on a 4-wide grid (8 cells, each with its axes), a title each, and a legend entry per source
    "feature_grid_figure": (
        lambda: fc.feature_grid_figure(np.random.default_rng(0).random((5, 8, 8)), [0, 1, 24, 25, 36],
                                       ["x0 (block input)"] * 2 + ["layer 1"] * 2 + ["layer 2"], COLORS, "Maps",
                                       cols=4),
        {"traces": 8, "axes": 16, "shapes": 0, "annotations": 5}),
    # five of 48 channels spread over the three sources, on one row of five cells
    "sources_grid_figure": (lambda: fc.sources_grid_figure(np.random.default_rng(0).random((48, 8, 8)), GROUPS, 5,
                                                           "Block 1"),
                            {"traces": 8, "axes": 10, "shapes": 0, "annotations": 5}),
    "channel_groups_figure": (lambda: fc.channel_groups_figure(GROUPS, COLORS, "Block output"),
                              {"traces": 3, "axes": 2, "shapes": 0, "annotations": 0}),
    "source_means_figure": (
        lambda: fc.source_means_figure(pd.DataFrame({"source": [g.label for g in GROUPS], "channels": [24, 12, 12],
                                                     "mean activation": [0.1, 0.2, -0.1],
                                                     "mean |activation|": [0.3, 0.4, 0.5]}), COLORS, "Means"),
        {"traces": 1, "axes": 2, "shapes": 0, "annotations": 0}),
    # loss, test and train accuracy per model, in two titled panels
    "training_curves_figure": (
        lambda: fc.training_curves_figure([EpochResult(m, e, 1.0 / e, 0.5, 0.6, 1.0) for e in (1, 2)
                                           for m in ("DenseNet-BC", "ResNet-20")]),
        {"traces": 6, "axes": 4, "shapes": 0, "annotations": 2}),
    "accuracy_vs_params_figure": (
        lambda: fc.accuracy_vs_params_figure(pd.DataFrame({"model": ["ResNet-20", "DenseNet-BC"],
                                                           "parameters": [270_000, 100_000],
                                                           "test accuracy (%)": [91.1, 96.9]})),
        {"traces": 1, "axes": 2, "shapes": 0, "annotations": 0}),
    "reuse_heatmap_figure": (lambda: fc.reuse_heatmap_figure(REUSE),
                             {"traces": 1, "axes": 2, "shapes": 0, "annotations": 0}),
}


@pytest.mark.parametrize("name", figure_functions(fc))
def test_every_figure_is_one_plotly_validates_unchanged_with_its_traces_and_axes(name):
    make, expected = FIGURES[name]  # a new figure function needs a case here
    spec = validated(make())
    assert content(spec) == expected
    assert spec["layout"]["title"]["text"] and "template" in spec["layout"]


def test_the_sources_grid_takes_channels_round_robin_from_every_source_in_their_colours():
    maps = np.random.default_rng(1).random((48, 8, 8))
    fig = fc.sources_grid_figure(maps, GROUPS, 5, "Block 1")
    spec = validated(fig)
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    # x0 gives channels 0 and 1, layer 1 gives 24 and 25, layer 2 gives 36: one from each source in turn
    assert [t.rsplit("ch ", 1)[1] for t in titles] == ["0", "1", "24", "25", "36"]
    assert [COLORS[g] in t for g, t in zip(["x0 (block input)"] * 2 + ["layer 1"] * 2 + ["layer 2"], titles,
                                            strict=True)] == [True] * 5
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert np.allclose(np.asarray(heat[2].z), maps[24])
    assert "5 of 48 channels" in spec["layout"]["title"]["text"]
