"""Measured trade-offs: saved-activation counting against docs/reference.md, a second counting method, measure_trade."""

from dataclasses import replace

import pandas as pd
import pytest
import torch
from second_methods import retained_bytes

from densenet_viz import PRESETS, DenseNetConfig, build_model
from densenet_viz.analysis.closed_form import analyze
from densenet_viz.analysis.trade import measure_trade, saved_activation_bytes

TINY = DenseNetConfig(growth_rate=4, block_config=(2, 2), num_init_features=8, stem="cifar", num_classes=3)
COLUMNS = ["mode", "median_step_s", "activation_bytes", "peak_bytes", "time_ratio", "memory_ratio"]


@pytest.mark.parametrize(
    ("batch", "efficient", "expected"),
    [(1, False, 131_030_528), (1, True, 63_058_304), (8, False, 1_043_559_936), (8, True, 503_312_384)],
)
def test_saved_bytes_reproduce_reference(batch, efficient, expected):
    config = replace(PRESETS["densenet121"], memory_efficient=efficient, efficient_impl="checkpoint")  # torchvision's
    model = build_model(config, device="meta").train()
    assert saved_activation_bytes(model, torch.empty(batch, 3, 224, 224, device="meta")) == expected


@pytest.mark.parametrize("impl", ["plain", "checkpoint", "recompute_bn"])
def test_two_counting_methods_agree(impl):
    # The hooks see what autograd saves; retained_bytes sees what stays alive. They differ by the input
    # (saved, but not created by the forward) and the running statistics autograd saves for batch-norm.
    config = replace(TINY, memory_efficient=impl != "plain", efficient_impl="checkpoint" if impl == "plain" else impl)
    model = build_model(config).train()
    x = torch.randn(2, 3, 8, 8)
    saved, kept = saved_activation_bytes(model, x), retained_bytes(model, x)
    assert kept <= saved - x.nbytes
    stats = sum(b.nbytes for name, b in model.named_buffers() if "running" in name)
    assert saved - x.nbytes - kept <= stats


def test_saved_bytes_match_the_analysis_engine():
    report = analyze(TINY, 8, 2).memory
    for efficient, expected in [(False, report.train_plain_bytes), (True, report.train_efficient_bytes)]:
        model = build_model(replace(TINY, memory_efficient=efficient), device="meta").train()
        assert saved_activation_bytes(model, torch.empty(2, 3, 8, 8, device="meta")) == expected


def test_measure_trade_gives_one_row_per_mode_with_ratios():
    calls = []
    table = measure_trade(TINY, 8, 2, repeats=1, progress=lambda f, text: calls.append((f, text)))
    assert isinstance(table, pd.DataFrame) and list(table.columns) == COLUMNS
    assert list(table["mode"]) == ["plain", "checkpoint", "recompute_bn"]
    assert (table["median_step_s"] > 0).all()
    assert table["peak_bytes"].isna().all()  # only CUDA reports a peak
    rows = table.set_index("mode")
    assert rows.loc["plain", "time_ratio"] == 1.0 and rows.loc["plain", "memory_ratio"] == 1.0
    assert rows.loc["recompute_bn", "activation_bytes"] < rows.loc["checkpoint", "activation_bytes"]
    assert rows.loc["checkpoint", "activation_bytes"] < rows.loc["plain", "activation_bytes"]
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_size": 0}, "input_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"repeats": 0}, "repeats"),
        ({"input_size": 1}, "too small"),
        ({"device": "meta"}, "meta"),
        ({"device": "tpu"}, "device"),
        ({"modes": ["checkpoint"]}, "plain"),
        ({"budget_bytes": 1000}, "budget"),
        ({"budget_macs": 1000}, "multiply-accumulates"),
    ],
)
def test_measure_trade_refuses_bad_requests(kwargs, message):
    args = {"input_size": 8, "batch_size": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        measure_trade(TINY, **args)


def test_measure_trade_refuses_non_densenets():
    with pytest.raises(ValueError, match="DenseNetConfig"):
        measure_trade(PRESETS["resnet18"], 32, 2)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_measure_trade_reports_cuda_peaks():
    table = measure_trade(TINY, 16, 4, device="cuda", repeats=2).set_index("mode")
    assert (table["peak_bytes"] > 0).all()
    assert table.loc["recompute_bn", "peak_bytes"] <= table.loc["plain", "peak_bytes"]


def test_a_trade_measurement_leaves_the_process_random_stream_alone():
    # Every session of the app shares the process's default generator: a measurement must not reseed it.
    state = torch.get_rng_state()
    expected = torch.rand(8)
    torch.set_rng_state(state)
    measure_trade(TINY, 8, 2, repeats=1, modes=["plain"])
    assert torch.equal(torch.rand(8), expected)
