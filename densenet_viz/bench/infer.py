"""Benchmark: inference throughput, and dense blocks with and without re-concatenation.

`python -m densenet_viz.bench infer [--quick]` prints two tables:

1. Images/s of DenseNet-121 (our default no-grad path, which writes into one buffer per block, and the
   concatenate-per-layer path) and ResNet-50, at batch 1 and 32, in NCHW and channels_last.
2. One dense block (64 input channels, k = 32, bottleneck 4k, 14x14) of L = 24, 64 and 128 layers:
   milliseconds per forward with a torch.cat per layer vs one preallocated buffer.

Every row of a table is timed alternately with the others in one warmed-up process, under
torch.no_grad() in eval mode; the figure is the median.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from ..models.build import build_model
from ..models.config import PRESETS, DenseNetConfig, ResNetConfig
from ..models.densenet import DenseBlock
from .machine import machine_line
from .tables import markdown_table

FORMATS = {"NCHW": torch.contiguous_format, "channels_last": torch.channels_last}


@contextmanager
def concatenating_blocks(model: nn.Module) -> Iterator[nn.Module]:
    """Make every dense block of model concatenate per layer even under no_grad (for comparison)."""
    blocks = [m for m in model.modules() if isinstance(m, DenseBlock)]
    for block in blocks:
        block.forward = block.forward_concat  # an instance attribute shadows the class's forward
    try:
        yield model
    finally:
        for block in blocks:
            del block.forward


def time_alternating(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each function, the functions alternated in every round."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(warmup + repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - start
            if i >= warmup:
                times[name].append(elapsed)
    return times


def _forward(model: nn.Module, x: Tensor, concat: bool = False) -> Callable[[], object]:
    def call() -> object:
        with torch.no_grad():
            if concat:
                with concatenating_blocks(model):
                    return model(x)
            return model(x)

    return call


def _throughput_table(models: dict[str, tuple[DenseNetConfig | ResNetConfig, bool]], size: int,
                      batches: tuple[int, ...], repeats: int) -> str:
    rows = []
    for batch in batches:
        fns: dict[tuple[str, str], Callable[[], object]] = {}
        for fmt_name, fmt in FORMATS.items():
            x = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
            built: dict[DenseNetConfig | ResNetConfig, nn.Module] = {}
            for title, (config, concat) in models.items():
                torch.manual_seed(0)
                if config not in built:
                    built[config] = build_model(config).eval().to(memory_format=fmt)
                fns[(title, fmt_name)] = _forward(built[config], x, concat)
        times = time_alternating(fns, repeats)
        for (title, fmt_name), ts in times.items():
            median = statistics.median(ts)
            rows.append([title, str(batch), fmt_name, f"{median * 1e3:.1f}", f"{batch / median:.1f}"])
    return markdown_table(["model", "batch", "layout", "median ms / batch", "images / s"], rows)


def _block_table(depths: tuple[int, ...], batches: tuple[int, ...], size: int, repeats: int) -> str:
    rows = []
    for layers in depths:
        torch.manual_seed(0)
        block = DenseBlock(layers, 64, 4, 32, 0.0).eval()
        for batch in batches:
            x = torch.randn(batch, 64, size, size)
            with torch.no_grad():
                same = torch.allclose(block.forward_concat(x), block.forward_into_buffer(x), rtol=1e-4, atol=1e-5)
                times = time_alternating(
                    {"cat": lambda b=block, x=x: b.forward_concat(x),
                     "buffer": lambda b=block, x=x: b.forward_into_buffer(x)},
                    repeats,
                )
            cat, buf = statistics.median(times["cat"]), statistics.median(times["buffer"])
            rows.append([str(layers), str(batch), f"{cat * 1e3:.1f}", f"{buf * 1e3:.1f}", f"{cat / buf:.2f}x",
                         "yes" if same else "NO"])
    return markdown_table(
        ["layers L", "batch", "torch.cat per layer (ms)", "one buffer (ms)", "speed-up", "allclose"], rows
    )


def run(quick: bool = False) -> str:
    """Time inference throughput and the block sweep; return markdown tables."""
    if quick:
        tiny = DenseNetConfig(8, (2, 2), 16, stem="cifar", num_classes=10)
        tiny_resnet = ResNetConfig("basic", (1, 1), (8, 16), stem="cifar", num_classes=10)
        models = {"tiny DenseNet": (tiny, False), "tiny DenseNet (cat per layer)": (tiny, True),
                  "tiny ResNet": (tiny_resnet, False)}
        size, batches, depths, block_batches, repeats = 16, (2,), (4,), (2,), 2
    else:
        models = {"DenseNet-121": (PRESETS["densenet121"], False),
                  "DenseNet-121 (cat per layer)": (PRESETS["densenet121"], True),
                  "ResNet-50": (PRESETS["resnet50"], False)}
        size, batches, depths, block_batches, repeats = 224, (1, 32), (24, 64, 128), (1, 8), 5
    machine = f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
    return (
        f"{machine_line()}\n\nInference (eval, no_grad, float32, {size}x{size}), {machine}; median of {repeats}.\n\n"
        f"{_throughput_table(models, size, batches, repeats)}\n\n"
        f"One dense block (64 input channels, k = 32, bottleneck 4k, 14x14), no_grad: median of {repeats}.\n\n"
        f"{_block_table(depths, block_batches, 14, repeats)}"
    )
