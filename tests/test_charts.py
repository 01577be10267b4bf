"""Plotly figures: their data follow the formulas, and they are readable (titles, units, fonts, palette)."""

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from figure_checks import content, figure_functions, validated

from densenet_viz import PRESETS, DenseNetConfig
from densenet_viz.analysis import accuracy as acc
from densenet_viz.analysis.closed_form import analyze, memory_growth
from densenet_viz.viz import accuracy_charts, charts
from densenet_viz.viz.graphs import connectivity_matrix, dense_block_trace
from densenet_viz.viz.series import (
    channel_series,
    comparison_table,
    resnet_channel_series,
    resnet_family,
    sweep_depth,
    sweep_growth,
)
from densenet_viz.viz.style import AXIS_TITLE_SIZE, OKABE_ITO, TICK_SIZE

CIFAR = DenseNetConfig(growth_rate=12, block_config=(4, 5, 6), num_init_features=24, stem="cifar", num_classes=10)


def ys(trace) -> list[float]:
    return [float(v) for v in np.asarray(trace.y)]


def readable(fig) -> None:
    """Every figure: a title, axis titles with a unit or a count, fonts a projector can show."""
    layout = fig.layout
    assert layout.title.text
    assert layout.font.size >= TICK_SIZE >= 16
    for axis in [a for name, a in layout.to_plotly_json().items() if name.startswith(("xaxis", "yaxis"))]:
        assert axis.get("tickfont", {}).get("size", TICK_SIZE) >= 16
        if axis.get("title"):
            assert axis["title"].get("font", {}).get("size", AXIS_TITLE_SIZE) >= 16


@pytest.mark.parametrize("k", [4, 12, 32])
def test_channel_saw_tooth_follows_k0_plus_k_times_l_and_theta_at_transitions(k):
    config = DenseNetConfig(growth_rate=k, block_config=(4, 5, 6), num_init_features=24, stem="cifar")
    series = channel_series(config, 32)
    fig = charts.channel_growth_chart(series, k, config.compression)
    readable(fig)
    y = ys(fig.data[0])
    # Block 1: layers read k0 + k(l-1); then the transition reads k0 + 4k and the next block starts at floor(theta*c).
    assert y[:4] == [24 + k * (layer - 1) for layer in range(1, 5)]
    assert y[4] == 24 + 4 * k
    c2 = math.floor(0.5 * (24 + 4 * k))
    assert y[5:10] == [c2 + k * (layer - 1) for layer in range(1, 6)]
    assert y[-1] == math.floor(0.5 * (c2 + 5 * k)) + 6 * k  # what reaches the final norm


def test_overlaid_growth_rates_get_one_line_each_current_first_and_thickest():
    series = channel_series(CIFAR, 32, [12, 4, 24])
    fig = charts.channel_growth_chart(series, 12, CIFAR.compression)
    assert [t.name for t in fig.data] == ["k = 12 (current)", "k = 4", "k = 24"]
    assert fig.data[0].line.width > fig.data[1].line.width
    assert all(t.line.color in OKABE_ITO.values() for t in fig.data)


def test_spatial_size_halves_at_each_transition():
    fig = charts.spatial_size_chart(channel_series(PRESETS["densenet121"], 224))
    readable(fig)
    assert sorted(set(ys(fig.data[0])), reverse=True) == [56, 28, 14, 7]


def test_the_resnet_staircase_doubles_per_stage():
    fig = charts.resnet_channel_chart(resnet_channel_series(PRESETS["resnet18"], 224), "ResNet-18")
    readable(fig)
    assert ys(fig.data[0]) == [64, 64, 128, 128, 256, 256, 512, 512]


def test_connectivity_heatmap_draws_the_matrix_and_frames_the_current_row():
    matrix = connectivity_matrix(dense_block_trace(CIFAR, 3, 32))
    fig = charts.connectivity_heatmap(matrix, highlight=2)
    readable(fig)
    assert int(np.asarray(fig.data[0].z).sum()) == 6 * 7 // 2
    (frame,) = fig.layout.shapes
    assert (frame.y0, frame.y1) == (0.5, 1.5)


def test_comparison_bars_show_the_analysis_numbers_in_their_units():
    dense, res = analyze(PRESETS["densenet121"]), analyze(PRESETS["resnet50"])
    table = comparison_table(dense, res)
    fig = charts.comparison_bars(table, "DenseNet-121", "ResNet-50")
    readable(fig)
    params = [t for t in fig.data if t.x == ("parameters",)]
    assert [round(t.y[0], 3) for t in params] == [round(7_978_856 / 1e6, 3), round(25_557_032 / 1e6, 3)]
    memory = next(t for t in fig.data if "train, plain" in t.x)
    assert memory.y[list(memory.x).index("train, plain")] == pytest.approx(131_030_528 / 2**20)


def test_memory_growth_chart_draws_mib_and_plain_outgrows_efficient():
    growth = memory_growth(max_layers=16)
    fig = charts.memory_growth_chart(growth)
    readable(fig)
    plain, efficient = ys(fig.data[0]), ys(fig.data[1])
    assert plain == pytest.approx(list(growth["plain_bytes"] / 2**20))
    assert plain[-1] / plain[0] > efficient[-1] / efficient[0]


def test_block_memory_chart_leaves_out_the_total_row():
    fig = charts.block_memory_chart(analyze(PRESETS["densenet121"]).blocks)
    readable(fig)
    assert "total" not in fig.data[0].x
    assert "denseblock1" in fig.data[0].x


def _sweep() -> go.Figure:
    return charts.sweep_chart(sweep_depth(CIFAR, 32), "depth", "depth L", "Sweeping depth",
                              references=resnet_family(CIFAR, 32))


# Every figure function: a call, and what the figure holds (traces, axes, shapes, annotations).
FIGURES = {
    # two growth rates; CIFAR's two transitions each get a dotted line and a label
    "channel_growth_chart": (lambda: charts.channel_growth_chart(channel_series(CIFAR, 32, [12, 4]), 12, 0.5),
                             {"traces": 2, "axes": 2, "shapes": 2, "annotations": 2}),
    "spatial_size_chart": (lambda: charts.spatial_size_chart(channel_series(CIFAR, 32)),
                           {"traces": 1, "axes": 2, "shapes": 0, "annotations": 0}),
    "resnet_channel_chart": (
        lambda: charts.resnet_channel_chart(resnet_channel_series(PRESETS["resnet18"], 224), "ResNet-18"),
        {"traces": 1, "axes": 2, "shapes": 0, "annotations": 0}),
    "connectivity_heatmap": (
        lambda: charts.connectivity_heatmap(connectivity_matrix(dense_block_trace(CIFAR, 3, 32)), highlight=2),
        {"traces": 1, "axes": 2, "shapes": 1, "annotations": 0}),
    # three panels of a DenseNet and a ResNet bar each, titled
    "comparison_bars": (
        lambda: charts.comparison_bars(comparison_table(analyze(PRESETS["densenet121"]), analyze(PRESETS["resnet50"])),
                                       "DenseNet-121", "ResNet-50"),
        {"traces": 6, "axes": 6, "shapes": 0, "annotations": 3}),
    "block_memory_chart": (lambda: charts.block_memory_chart(analyze(PRESETS["densenet121"]).blocks),
                           {"traces": 2, "axes": 2, "shapes": 0, "annotations": 0}),
    "memory_growth_chart": (lambda: charts.memory_growth_chart(memory_growth(max_layers=8)),
                            {"traces": 2, "axes": 2, "shapes": 0, "annotations": 0}),
    "trade_chart": (
        lambda: charts.trade_chart(pd.DataFrame({"mode": ["plain", "checkpoint"], "time_ratio": [1.0, 1.2],
                                                 "memory_ratio": [1.0, 0.5]})),
        {"traces": 2, "axes": 2, "shapes": 1, "annotations": 0}),
    # per panel: DenseNet, the star, the ResNets; the memory panel adds the memory-efficient line
    "sweep_chart": (_sweep, {"traces": 10, "axes": 6, "shapes": 0, "annotations": 3}),
    "sweep_chart_baseline": (lambda: charts.sweep_chart(sweep_growth(CIFAR, 32), "growth_rate", "growth rate k",
                                                        "Sweeping k", references=resnet_family(CIFAR, 32),
                                                        baseline="resnet56"),
                             {"traces": 7, "axes": 6, "shapes": 3, "annotations": 6}),
    "figure": (lambda: charts.figure([{"type": "bar", "x": ["a"], "y": [1]}], {"title": {"text": "bars"}}),
               {"traces": 1, "axes": 0, "shapes": 0, "annotations": 0}),
    # four family-and-source lines of CIFAR-10 and the dashed line of the user's model
    "accuracy_chart": (lambda: accuracy_charts.accuracy_chart(acc.published_table("c10+"), "params", "CIFAR-10",
                                                              marker=1e6, log_x=True),
                       {"traces": 5, "axes": 2, "shapes": 0, "annotations": 0}),
}


@pytest.mark.parametrize("name", figure_functions(charts, accuracy_charts))
def test_every_chart_is_a_figure_plotly_validates_unchanged_with_its_traces_and_axes(name):
    make, expected = FIGURES[name]  # a new figure function needs a case here
    spec = validated(make())
    assert content(spec) == expected
    if name != "figure":
        assert spec["layout"]["title"]["text"] and spec["layout"]["font"]["size"] >= TICK_SIZE
        assert "template" in spec["layout"]  # as a validated figure: Streamlit's theme replaces plotly's template
