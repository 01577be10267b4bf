"""The training and feature figures colour each architecture as every other page does."""

import pandas as pd

from densenet_viz import PRESETS, analyze
from densenet_viz.lab.training import EpochResult
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
