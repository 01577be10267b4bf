"""The compute budget: the closed-form time estimate against measured forward passes, the setting, and the
refusal's message."""

from __future__ import annotations

import time

import pytest
import torch

from densenet_viz import DenseNetConfig
from densenet_viz.analysis import cost
from densenet_viz.models.build import build_model

# Small DenseNets spanning the three terms of the model: MAC-heavy (wide, few layers), activation-heavy
# (narrow, many layers, big batch), and unit-heavy (many tiny layers).
SPREAD = [
    (DenseNetConfig(64, (3,), 64, stem="cifar", bn_size=0), 64, 1),
    (DenseNetConfig(32, (16,), 64, stem="cifar"), 32, 4),
    (DenseNetConfig(12, (4, 4, 4), 24, stem="cifar"), 32, 8),
    (DenseNetConfig(4, (30,), 8, stem="cifar", bn_size=0), 32, 16),
    (DenseNetConfig(12, (16, 16, 16), 24, stem="cifar"), 32, 1),
    (DenseNetConfig(32, (6, 12, 24, 16), 64), 96, 1),
]


def measured_forward(config: DenseNetConfig, size: int, batch: int, repeats: int = 7) -> float:
    """CPU seconds of a no-grad forward pass on one thread, after a warm-up: the least of `repeats` (the
    estimate is of the CPU the pass needs, not of the wait for a core on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_model(config).eval()
        x = torch.randn(batch, config.in_channels, size, size)
        times = []
        with torch.no_grad():
            model(x)
            for _ in range(repeats):
                start = time.thread_time()
                model(x)
                times.append(time.thread_time() - start)
        return min(times)
    finally:
        torch.set_num_threads(threads)


def test_the_estimate_is_within_a_factor_of_two_of_the_measured_forward_pass():
    calibration = cost.calibrate()
    ratios = {}
    for config, size, batch in SPREAD:
        estimate = cost.forward_seconds(config, size, batch, calibration=calibration)
        key = (config.growth_rate, config.block_config, size, batch)
        ratios[key] = estimate / measured_forward(config, size, batch)
    assert all(0.5 <= r <= 2.0 for r in ratios.values()), ratios


def test_the_estimate_grows_with_the_work():
    small = DenseNetConfig(12, (6, 6), 24, stem="cifar")
    assert cost.forward_seconds(small, 64, 4) == pytest.approx(4 * cost.forward_seconds(small, 32, 4), rel=0.35)
    assert cost.forward_seconds(small, 32, 8, torch.float64) > 1.9 * cost.forward_seconds(small, 32, 4)
    assert cost.build_seconds(DenseNetConfig(12, (12, 12), 24, stem="cifar")) > cost.build_seconds(small)


def test_the_budget_setting(monkeypatch):
    monkeypatch.delenv(cost.ENV_BUDGET, raising=False)
    assert cost.budget_seconds() == cost.DEFAULT_BUDGET_S
    monkeypatch.setenv(cost.ENV_BUDGET, "600")
    assert cost.budget_seconds() == 600
    for bad in ("0", "-5", "soon", "1e9"):
        monkeypatch.setenv(cost.ENV_BUDGET, bad)
        with pytest.raises(ValueError, match="DENSENET_VIZ_BUDGET_S must be a number of seconds"):
            cost.budget_seconds()


def test_a_refusal_says_what_it_would_cost_and_how_to_get_under_the_budget():
    with pytest.raises(cost.OverBudget) as refused:
        cost.check_budget(360, "This forward pass", "Choose a smaller input.", budget_s=5)
    text = str(refused.value)
    assert "about 6 min of CPU" in text and "budget of 5.0 s" in text and "smaller input" in text
    assert cost.ENV_BUDGET in text
    cost.check_budget(4.9, "This forward pass", "", budget_s=5)  # under the budget: nothing raised
    assert [cost.format_duration(s) for s in (0.42, 12.4, 404, 4 * 3600)] == ["0.4 s", "12 s", "7 min", "4.0 h"]
