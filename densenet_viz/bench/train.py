"""Benchmark: training step time and saved activation bytes, plain vs memory-efficient DenseNet.

`python -m densenet_viz.bench train [--quick]` prints two tables:

1. Training steps (forward, cross-entropy, backward) of DenseNet-121 (224x224, batch 8 and 32) and
   DenseNet-BC (L=100, k=12; 32x32, batch 64) in plain mode, torchvision's memory-efficient algorithm
   (our `checkpoint` mode), our `recompute_bn` mode, and torchvision's own model when it is importable.
   All modes of one case are alternated in one warmed-up process (see docs/reference.md on CPU noise).
2. One dense block (64 input channels, k = 32, bottleneck 4k, 32x32, batch 16) at L = 8..128 layers:
   saved activation bytes per mode, counted on the meta device (exact, no memory used).
"""

from __future__ import annotations

import importlib.util
import platform
import statistics
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..analysis.trade import MODES, saved_activation_bytes, time_training_steps
from ..models.build import build_model
from ..models.config import PRESETS, DenseNetConfig
from ..models.densenet import DenseBlock
from .machine import machine_line
from .tables import markdown_table

MIB = 2**20


@dataclass(frozen=True)
class Case:
    title: str
    config: DenseNetConfig
    input_size: int
    batch_size: int
    torchvision: str | None  # torchvision's constructor for the same network, if any


FULL_CASES = [
    Case("DenseNet-121", PRESETS["densenet121"], 224, 8, "densenet121"),
    Case("DenseNet-121", PRESETS["densenet121"], 224, 32, "densenet121"),
    Case("DenseNet-BC (L=100, k=12)", PRESETS["densenet_bc_100_12"], 32, 64, None),
]
QUICK_CASES = [
    Case("tiny DenseNet-BC", DenseNetConfig(8, (2, 2), 16, stem="cifar", num_classes=10), 16, 4, None),
]
FULL_DEPTHS = (8, 16, 32, 64, 128)
QUICK_DEPTHS = (2, 4)


def _torchvision_efficient(name: str, num_classes: int) -> nn.Module | None:
    """torchvision's own memory-efficient DenseNet, when torchvision is installed (it is optional here)."""
    if importlib.util.find_spec("torchvision") is None:
        return None
    from torchvision import models

    return getattr(models, name)(weights=None, memory_efficient=True, num_classes=num_classes)


def _case_rows(case: Case, repeats: int) -> list[list[str]]:
    torch.manual_seed(0)
    models: dict[str, nn.Module] = {
        name: build_model(replace(case.config, memory_efficient=efficient, efficient_impl=impl))
        for name, efficient, impl in MODES
    }
    tv = _torchvision_efficient(case.torchvision, case.config.num_classes) if case.torchvision else None
    if tv is not None:
        models["torchvision efficient"] = tv
    x = torch.randn(case.batch_size, case.config.in_channels, case.input_size, case.input_size)
    target = torch.randint(0, case.config.num_classes, (case.batch_size,))
    saved = {name: saved_activation_bytes(m.train(), x) for name, m in models.items()}
    times = time_training_steps(models, x, target, repeats=repeats, warmup=1)
    base_time, base_bytes = statistics.median(times["plain"]), saved["plain"]
    rows = []
    for name in models:
        median = statistics.median(times[name])
        rows.append([
            case.title, str(case.batch_size), name, f"{median:.3f}", f"{min(times[name]):.3f}",
            f"{median / base_time:.3f}", f"{saved[name] / MIB:.1f}", f"{saved[name] / base_bytes:.3f}",
            f"{base_bytes / saved[name]:.2f}x",
        ])
    return rows


def _depth_rows(depths: tuple[int, ...], batch: int, size: int) -> list[list[str]]:
    rows = []
    x = torch.empty(batch, 64, size, size, device="meta", requires_grad=True)
    for layers in depths:
        saved = {}
        for name, efficient, impl in MODES:
            block = DenseBlock(layers, 64, 4, 32, 0.0, efficient, impl).to("meta")
            saved[name] = saved_activation_bytes(block, x)
        plain = saved["plain"]
        rows.append([str(layers)] + [f"{saved[n] / MIB:.1f}" for n, _, _ in MODES] + [
            f"{plain / saved['checkpoint']:.2f}x", f"{plain / saved['recompute_bn']:.2f}x"
        ])
    return rows


def run(quick: bool = False) -> str:
    """Time the training cases and count the block sweep; return markdown tables."""
    cases, depths, repeats = (QUICK_CASES, QUICK_DEPTHS, 2) if quick else (FULL_CASES, FULL_DEPTHS, 5)
    batch, size = (2, 8) if quick else (16, 32)
    rows = [row for case in cases for row in _case_rows(case, repeats)]
    step_table = markdown_table(
        ["model", "batch", "mode", f"median step (s, of {repeats})", "min step (s)", "time / plain",
         "saved activations (MiB)", "memory / plain", "plain / memory"],
        rows,
    )
    depth_table = markdown_table(
        ["layers L", "plain (MiB)", "checkpoint (MiB)", "recompute_bn (MiB)", "plain / checkpoint",
         "plain / recompute_bn"],
        _depth_rows(depths, batch, size),
    )
    machine = f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
    return (
        f"{machine_line()}\n\nTraining step (forward + cross-entropy + backward), float32, {machine}; modes alternated "
        "in one "
        f"process after a warm-up step.\n\n{step_table}\n\n"
        f"One dense block (64 input channels, k = 32, bottleneck 4k), {size}x{size}, batch {batch}: "
        f"saved activation bytes (meta device).\n\n{depth_table}"
    )
