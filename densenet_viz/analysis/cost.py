"""What a view costs on this server before it runs: seconds estimated from the closed form, and the budget.

A forward pass on one CPU thread costs about a*MACs + b*(bytes its activations write) + c*(units it runs);
building a model costs about d*parameters (the weight initialisers) + e*units (Python per module). The
weights below were fitted on a 2-core x86 server (float32, one torch thread, ten DenseNets from 2 M to
5 G MACs: every fit within 0.6x-1.3x of the measured time); `calibrate()` scales them to the machine it
runs on by timing one small model, once per process.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import torch

from ..models.config import DenseNetConfig, ResNetConfig
from .closed_form import totals

ENV_BUDGET = "DENSENET_VIZ_BUDGET_S"
DEFAULT_BUDGET_S = 5.0  # a class of 30 on 2 cores: a few seconds per heavy view keeps everyone moving
MAX_BUDGET_S = 24 * 3600.0
S_PER_MAC = 8.1e-12
S_PER_ACTIVATION_BYTE = 5.2e-10  # every output a layer writes (the plain-training activation bytes)
S_PER_UNIT = 2.8e-5
BUILD_S_PER_PARAM = 1.7e-8  # large models: a 530 M-parameter DenseNet took 9.3 s
BUILD_S_PER_UNIT = 4.5e-4
TRAIN_STEP_FACTOR = 3.0  # forward + backward cost about 3x the forward alone
# The timed references: small enough for a blink at start-up, big enough that timer noise does not matter;
# one per stem (a CIFAR net of many small layers, an ImageNet net with its 7x7 stem), the scale their mean.
REFERENCE = DenseNetConfig(growth_rate=12, block_config=(8, 8, 8), num_init_features=24, stem="cifar")
REFERENCE_SIZE, REFERENCE_BATCH = 32, 8
IMAGENET_REFERENCE = DenseNetConfig(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64)
IMAGENET_REFERENCE_SIZE = 96


class OverBudget(ValueError):
    """A view whose estimated cost is over the server's compute budget (the message says what to change)."""


@dataclass(frozen=True)
class Calibration:
    """This machine's speed relative to the fitted weights (1.0 = the machine they were fitted on)."""

    forward_scale: float = 1.0
    build_scale: float = 1.0


def budget_seconds() -> float:
    """The compute budget per heavy view: DENSENET_VIZ_BUDGET_S seconds if set, else DEFAULT_BUDGET_S."""
    text = os.environ.get(ENV_BUDGET, "").strip()
    if not text:
        return DEFAULT_BUDGET_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_BUDGET_S:
        raise ValueError(f"{ENV_BUDGET} must be a number of seconds in (0, {MAX_BUDGET_S:g}], got {text!r}")
    return value


def _raw_forward(config: DenseNetConfig | ResNetConfig, input_size: int, batch_size: int,
                 dtype: torch.dtype = torch.float32) -> float:
    total = totals(config, input_size=input_size, batch_size=batch_size, dtype=dtype)
    # Wider floats run the same MACs at a lower rate (float64 about half the float32 rate on a CPU).
    width = max(1.0, torch.finfo(dtype).bits / 32)
    return (S_PER_MAC * width * total.macs_per_sample * batch_size
            + S_PER_ACTIVATION_BYTE * total.memory.train_plain_bytes + S_PER_UNIT * total.units)


def _raw_build(config: DenseNetConfig | ResNetConfig) -> float:
    from ..models.plan import min_input_size

    total = totals(config, input_size=min_input_size(config), batch_size=1)
    return BUILD_S_PER_PARAM * total.params + BUILD_S_PER_UNIT * total.units


def forward_seconds(config: DenseNetConfig | ResNetConfig, input_size: int, batch_size: int = 1,
                    dtype: torch.dtype = torch.float32, calibration: Calibration = Calibration()) -> float:
    """Estimated seconds of one forward pass on one CPU thread of this machine."""
    return calibration.forward_scale * _raw_forward(config, input_size, batch_size, dtype)


def build_seconds(config: DenseNetConfig | ResNetConfig, calibration: Calibration = Calibration()) -> float:
    """Estimated seconds to build the model (its weight initialisers run in Python and on one thread)."""
    return calibration.build_scale * _raw_build(config)


def _least_forward(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    """CPU seconds of this thread for the fastest of `repeats` no-grad forward passes, after a warm-up."""
    times = []
    with torch.no_grad():
        model(x)  # warm-up: first calls allocate
        for _ in range(repeats):
            start = time.thread_time()
            model(x)
            times.append(time.thread_time() - start)
    return min(times)


def calibrate(repeats: int = 5) -> Calibration:
    """Time the reference models' build and forward passes here (one thread) against the fitted weights.

    CPU time of this thread (one torch thread computes in the caller), the least of `repeats` runs: the budget
    is about the CPU a view takes, not how long it waited for a core on a shared machine.
    """
    from ..models.build import build_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        builds = []
        for _ in range(repeats):
            start = time.thread_time()
            model = build_model(REFERENCE).eval()
            builds.append(time.thread_time() - start)
        ratios = []
        for config, size, batch in [(REFERENCE, REFERENCE_SIZE, REFERENCE_BATCH),
                                    (IMAGENET_REFERENCE, IMAGENET_REFERENCE_SIZE, 1)]:
            model = build_model(config).eval()
            x = torch.randn(batch, config.in_channels, size, size)
            ratios.append(_least_forward(model, x, repeats) / _raw_forward(config, size, batch))
    finally:
        torch.set_num_threads(threads)
    return Calibration(forward_scale=math.sqrt(ratios[0] * ratios[1]), build_scale=min(builds) / _raw_build(REFERENCE))


def format_duration(seconds: float) -> str:
    """A duration as a person says it: '0.4 s', '12 s', '6 min', '3.2 h'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def check_budget(seconds: float, what: str, advice: str, budget_s: float | None = None) -> None:
    """Raise OverBudget, saying what it would cost and how to get under the budget, if seconds > budget."""
    budget = budget_seconds() if budget_s is None else budget_s
    if seconds > budget:
        raise OverBudget(
            f"{what} would take about {format_duration(seconds)} of CPU on this server, over its budget of "
            f"{format_duration(budget)} per view (shared by everyone using it). {advice} Or run the app on your "
            f"own machine, where a teacher can raise the budget with the setting {ENV_BUDGET} (seconds)."
        )


def trade_seconds(config: DenseNetConfig, input_size: int, batch_size: int,
                  calibration: Calibration = Calibration(), modes: int = 3, repeats: int = 3) -> float:
    """Estimated seconds of analysis.trade.measure_trade: each mode built, then 2 counting steps, a warm-up
    and `repeats` timed training steps (recomputing modes redo part of the forward: counted as a third more)."""
    step = TRAIN_STEP_FACTOR * forward_seconds(config, input_size, batch_size, calibration=calibration)
    return modes * build_seconds(config, calibration) + (1 + 2 * 4 / 3) / 3 * modes * (3 + repeats) * step
