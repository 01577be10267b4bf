"""Measured (not estimated) training trade-offs: activation bytes, step time and peak memory per mode.

Everything here runs real models and is meant to be called on request (the app's memory page, the
benchmark), never at import or page load.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.build import build_model
from ..models.config import DenseNetConfig, check_int
from ..models.devices import check_device
from ..models.plan import layer_plan
from .budget import check_fits
from .closed_form import analyze
from .measure import counting_saved_storages

# Training modes compared by measure_trade: (mode name, memory_efficient, efficient_impl).
MODES: tuple[tuple[str, bool, str], ...] = (
    ("plain", False, "checkpoint"),
    ("checkpoint", True, "checkpoint"),
    ("recompute_bn", True, "recompute_bn"),
)

# measure_trade refuses runs that would need more memory than the device has free (budget.check_fits)
# and, on the CPU, more than this (bytes). The estimate is analysis.analyze's, which allocates nothing.
CPU_BUDGET_BYTES = 6 * 2**30
# ... and, on the CPU, more multiply-accumulates than this in all its training steps together
# (about 45 s on the 2-core machine of docs/benchmarks.md).
CPU_BUDGET_MACS = 3 * 10**12
MAX_REPEATS = 50


def saved_activation_bytes(model: nn.Module, x: Tensor | list[Tensor]) -> int:
    """Bytes of the unique storages autograd saves for backward in one forward, parameters excluded.

    Counted as docs/reference.md counts: batch-norm statistics that autograd saves stay in (a few
    bytes per channel), the weights do not.
    """
    sizes: list[int] = []
    with torch.enable_grad(), counting_saved_storages(model, sizes.append):
        out = model(x)
    del out  # frees the graph
    return sum(sizes)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_training_steps(
    models: dict[str, nn.Module],
    x: Tensor,
    target: Tensor,
    repeats: int,
    warmup: int = 1,
    progress: Callable[[int], None] | None = None,
) -> dict[str, list[float]]:
    """Seconds per forward+backward+zero_grad of each model, the models alternated in every round.

    Alternating in one warmed-up process matters: on a shared CPU, separate runs of two modes differ
    by tens of percent from page faults and neighbours alone.
    """
    times: dict[str, list[float]] = {name: [] for name in models}
    for model in models.values():
        model.train()
    for i in range(warmup + repeats):
        for name, model in models.items():
            _sync(x.device)
            start = time.perf_counter()
            loss = F.cross_entropy(model(x), target)
            loss.backward()
            _sync(x.device)
            elapsed = time.perf_counter() - start
            model.zero_grad(set_to_none=True)
            del loss
            if i >= warmup:
                times[name].append(elapsed)
            if progress is not None:
                progress(1)
    return times


def peak_training_bytes(model: nn.Module, x: Tensor, target: Tensor) -> int | None:
    """CUDA's peak allocated bytes over one training step (weights, activations, gradients); None off CUDA."""
    if x.device.type != "cuda":
        return None
    model.zero_grad(set_to_none=True)
    torch.cuda.synchronize(x.device)
    torch.cuda.reset_peak_memory_stats(x.device)
    F.cross_entropy(model(x), target).backward()
    torch.cuda.synchronize(x.device)
    peak = torch.cuda.max_memory_allocated(x.device)
    model.zero_grad(set_to_none=True)
    return peak


def _check_positive_int(name: str, value: object, high: int) -> int:
    check_int(name, value, 1, high)
    return value


def _check_budget(
    config: DenseNetConfig,
    input_size: int,
    batch_size: int,
    device: torch.device,
    num_modes: int,
    repeats: int,
    budget_bytes: int | None,
    budget_macs: int | None,
) -> None:
    """Raise ValueError if measuring would need more memory (or, on the CPU, compute) than the budget."""
    report = analyze(config, input_size, batch_size)
    # Plain-mode activations, one set of weights per model and one set of gradients at a time.
    needed = report.memory.train_plain_bytes + (num_modes + 1) * report.memory.weight_bytes
    if budget_bytes is None and device.type == "cpu":
        budget_bytes = CPU_BUDGET_BYTES
    try:
        check_fits(needed, str(device), what=f"measuring batch {batch_size} at {input_size}x{input_size}",
                   budget_bytes=budget_bytes)
    except MemoryError as exc:
        raise ValueError(f"{exc} Lower the batch size or input size.") from None
    # Forward and backward cost about 3x the forward's multiply-accumulates.
    macs = 3 * report.macs * num_modes * (repeats + 1)
    if budget_macs is None and device.type == "cpu":
        budget_macs = CPU_BUDGET_MACS
    if budget_macs is not None and macs > budget_macs:
        raise ValueError(
            f"measuring batch {batch_size} at {input_size}x{input_size} with {repeats} repeats takes about "
            f"{macs / 1e12:.1f} T multiply-accumulates, over the {budget_macs / 1e12:.1f} T budget on "
            f"{device.type}; lower the batch size, input size or repeats"
        )


def _run_modes(
    config: DenseNetConfig,
    chosen: list[str],
    dev: torch.device,
    input_size: int,
    batch_size: int,
    repeats: int,
    report: Callable[[float, str], None],
) -> list[dict]:
    """Build one model per chosen mode, count its saved activations and time its training steps."""
    report(0.0, "building models")
    models: dict[str, nn.Module] = {}
    for name, efficient, impl in MODES:
        if name in chosen:
            cfg = replace(config, memory_efficient=efficient, efficient_impl=impl)
            models[name] = build_model(cfg, device=dev).train()
    x = torch.randn(batch_size, config.in_channels, input_size, input_size, device=dev)
    target = torch.randint(0, config.num_classes, (batch_size,), device=dev)

    report(0.05, "counting saved activations")
    activation = {name: saved_activation_bytes(m, x) for name, m in models.items()}
    peak = {name: peak_training_bytes(m, x, target) for name, m in models.items()}

    warmup = 1
    total = (warmup + repeats) * len(models)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        report(0.1 + 0.9 * done / total, f"timing training steps ({done}/{total})")

    times = time_training_steps(models, x, target, repeats, warmup=warmup, progress=step)
    return [
        {
            "mode": name,
            "median_step_s": statistics.median(times[name]),
            "activation_bytes": activation[name],
            "peak_bytes": peak[name],
        }
        for name in models
    ]


def measure_trade(
    config: DenseNetConfig,
    input_size: int,
    batch_size: int,
    device: str = "cpu",
    repeats: int = 3,
    progress: Callable[[float, str], None] | None = None,
    budget_bytes: int | None = None,
    budget_macs: int | None = None,
    modes: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Measure plain vs memory-efficient training of config: one row per mode, ratios against plain.

    Columns: mode, median_step_s (median of `repeats` steps after one warm-up, modes alternated),
    activation_bytes (saved for backward), peak_bytes (CUDA's max_memory_allocated over one step,
    which includes the weights of every mode's model; None off CUDA),
    time_ratio and memory_ratio (this mode / plain). progress, if given, is called as
    progress(fraction in [0, 1], text). Raises ValueError for bad arguments and for runs over the
    memory budget (default: CPU_BUDGET_BYTES on the CPU; always the device's free memory) or, on the CPU, the
    compute budget (default CPU_BUDGET_MACS).
    """
    if not isinstance(config, DenseNetConfig):
        raise ValueError(f"config must be a DenseNetConfig, got {type(config).__name__}")
    _check_positive_int("input_size", input_size, 4096)
    _check_positive_int("batch_size", batch_size, 4096)
    _check_positive_int("repeats", repeats, MAX_REPEATS)
    layer_plan(config, input_size)  # raises ValueError if the input is too small for the network
    dev = check_device(device)
    if dev.type == "meta":
        raise ValueError("device 'meta' has no data to time; choose a real device")
    known = [name for name, _, _ in MODES]
    chosen = known if modes is None else list(modes)
    if not chosen or any(m not in known for m in chosen) or "plain" not in chosen:
        raise ValueError(f"modes must include 'plain' and come from {', '.join(known)}; got {chosen!r}")
    _check_budget(config, input_size, batch_size, dev, len(chosen), repeats, budget_bytes, budget_macs)

    def report(fraction: float, text: str) -> None:
        if progress is not None:
            progress(min(max(fraction, 0.0), 1.0), text)

    # The process has one default RNG, shared by every session of the app: fork it, so that seeding
    # here (the same weights and data on every run) leaves everyone else's random stream where it was.
    cuda = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(0)
        rows = _run_modes(config, chosen, dev, input_size, batch_size, repeats, report)
    table = pd.DataFrame(rows)
    base = table.set_index("mode").loc["plain"]
    table["time_ratio"] = table["median_step_s"] / base["median_step_s"]
    table["memory_ratio"] = table["activation_bytes"] / base["activation_bytes"]
    report(1.0, "done")
    return table
