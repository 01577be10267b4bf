"""The data series behind the charts: sweeps, reference points, side-by-side tables, largest batches."""

from dataclasses import replace

import pandas as pd
import pytest

from densenet_viz import PRESETS, DenseNetConfig
from densenet_viz.analysis.closed_form import analyze, max_batch_that_fits
from densenet_viz.viz import charts
from densenet_viz.viz.series import (
    block_memory_growth,
    comparison_table,
    filter_layers,
    largest_batches,
    resnet_family,
    scaled_blocks,
    sweep_depth,
    sweep_growth,
)

CIFAR = DenseNetConfig(growth_rate=12, block_config=(4, 4, 4), num_init_features=24, stem="cifar", num_classes=10)


def test_growth_sweep_matches_analysis_and_marks_the_current_k():
    sweep = sweep_growth(CIFAR, 32, 2, rates=(4, 8, 24))
    assert list(sweep["growth_rate"]) == [4, 8, 12, 24]  # the current k is always included
    assert list(sweep["current"]) == [False, False, True, False]
    for _, row in sweep.iterrows():
        config = replace(CIFAR, growth_rate=int(row["growth_rate"]))
        report = analyze(config, input_size=32, batch_size=2)
        assert row["params"] == report.params
        assert row["train_plain_bytes"] == report.memory.train_plain_bytes
    assert sweep["params"].is_monotonic_increasing


def test_depth_sweep_scales_every_block_and_keeps_the_current_one():
    assert scaled_blocks((6, 12, 24, 16), 0.5) == (3, 6, 12, 8)
    assert scaled_blocks((1, 2), 0.25) == (1, 1)  # never fewer than one layer
    sweep = sweep_depth(PRESETS["densenet121"], 224)
    assert sweep["depth"].is_monotonic_increasing
    current = sweep[sweep["current"]]
    assert list(current["depth"]) == [121] and list(current["params"]) == [7_978_856]


def test_resnet_family_holds_the_same_stem_with_reference_counts():
    family = resnet_family(PRESETS["densenet121"], 224).set_index("name")
    assert list(family.index) == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
    assert family.loc["resnet50", "params"] == 25_557_032  # docs/reference.md
    assert family.loc["resnet50", "macs_per_sample"] == 4_089_184_256
    cifar = resnet_family(CIFAR, 32)
    assert set(cifar["name"]) == {"resnet20", "resnet32", "resnet44", "resnet56", "resnet110"}


def test_comparison_table_sides_and_ratios():
    dense = analyze(replace(PRESETS["densenet121"], efficient_impl="checkpoint"))  # the reference's mode
    res = analyze(PRESETS["resnet50"])
    table = comparison_table(dense, res).set_index("key")
    assert table.loc["params", "densenet"] == 7_978_856
    assert table.loc["params", "resnet"] == 25_557_032
    assert table.loc["train_plain_bytes", "densenet"] == 131_030_528  # docs/reference.md, batch 1
    assert table.loc["train_efficient_bytes", "densenet"] == 63_058_304
    assert table.loc["params", "ratio"] == pytest.approx(7_978_856 / 25_557_032)
    assert set(table["unit"]) == {"count", "MACs", "bytes"}


def test_largest_batches_agree_with_the_analysis():
    batches = largest_batches(PRESETS["densenet121"], 224, 8.0).set_index("mode")
    for mode in ("inference", "train_plain", "train_efficient"):
        assert batches.loc[mode, "batch"] == max_batch_that_fits(PRESETS["densenet121"], 224, 8 * 2**30, mode=mode)
    assert batches.loc["train_efficient", "batch"] > batches.loc["train_plain", "batch"]


def test_filter_layers_by_kind_and_block():
    table = analyze(PRESETS["densenet121"]).table
    assert len(filter_layers(table, [], [])) == len(table)
    dense2 = filter_layers(table, ["dense_layer"], [2])
    assert len(dense2) == 12 and set(dense2["block"]) == {2}
    assert set(filter_layers(table, ["transition"], [])["kind"]) == {"transition"}


def test_sweep_chart_draws_panels_with_reference_points():
    sweeps = sweep_depth(CIFAR, 32), resnet_family(CIFAR, 32)
    fig = charts.sweep_chart(sweeps[0], "depth", "depth L", "Sweeping depth", references=sweeps[1])
    resnets = [t for t in fig.data if t.name == "ResNets"]
    assert len(resnets) == 3 and list(resnets[0].x) == list(sweeps[1]["depth"])
    assert any(t.name == "current config" and len(t.x) == 1 for t in fig.data)


def test_trade_chart_draws_ratios():
    measured = pd.DataFrame(
        {"mode": ["plain", "checkpoint"], "time_ratio": [1.0, 1.2], "memory_ratio": [1.0, 0.5]}
    )
    fig = charts.trade_chart(measured)
    assert list(fig.data[0].y) == [1.0, 1.2] and list(fig.data[1].y) == [1.0, 0.5]


@pytest.mark.parametrize("impl", ["checkpoint", "recompute_bn"])
def test_the_growth_chart_counts_the_memory_efficient_mode_the_config_chose(impl):
    # The chart's efficient line is the model's first block as the config builds it: measured on the meta
    # device, a real block of L layers with this implementation saves what the chart says at L.
    import torch

    from densenet_viz.analysis.trade import saved_activation_bytes
    from densenet_viz.models.densenet import DenseBlock

    config = replace(CIFAR, memory_efficient=True, efficient_impl=impl)
    growth = block_memory_growth(config, 32, batch_size=2, max_layers=6)
    for layers in (2, 6):
        block = DenseBlock(layers, 24, config.bn_size, 12, 0.0, True, impl).to("meta").train()
        x = torch.empty(2, 24, 32, 32, device="meta", requires_grad=True)
        assert growth.loc[layers - 1, "efficient_bytes"] == saved_activation_bytes(block, x)
