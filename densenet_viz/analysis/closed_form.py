"""Per-layer table, parameters, MACs and activation memory of a DenseNet or ResNet: exact and instant.

`analyze(config, input_size, batch_size, dtype)` answers from the config alone, in closed form: it
never builds the model and never allocates an activation, so DenseNet-264 at batch 256 costs what
batch 1 costs. Every figure is defined by a measurement on the real model, and the tests check that
the closed form gives exactly the measured bytes, on real CPU tensors and on the `meta` device:

* **MACs** are the multiply-accumulates of the convolutions and the linear layer, what
  `torch.utils.flop_counter.FlopCounterMode` counts (FLOPs = 2 x MACs). Batch norm, ReLU, pooling
  and the classifier's bias add are not counted.
* **Training, plain** (`train_plain_bytes`): the bytes of the distinct tensor storages that autograd
  saves for backward during one training-mode forward pass (`torch.autograd.graph.saved_tensors_hooks`),
  parameters left out (they are weight memory). A view or an in-place ReLU shares its storage and
  counts once. The input batch counts (the first convolution saves it) and so do batch norm's running
  statistics and batch statistics, which autograd saves too: the small per-channel constant that
  makes the figure linear in the batch size *plus* a constant.
* **Training, memory-efficient** (`train_efficient_bytes`): the same with `memory_efficient=True`, in
  the config's `efficient_impl`. "checkpoint" (torchvision's, the figure docs/reference.md quotes)
  wraps each dense layer's concat-BN-ReLU-Conv1x1 in non-reentrant `torch.utils.checkpoint`, which
  saves only the layer's inputs (shared with the block, so counted once per block) and recomputes the
  1x1 output in backward; BN2-ReLU-Conv3x3 after it run normally and keep their inputs (the 1x1 output
  and its BN-ReLU). "recompute_bn" (efficient.py, Pleiss et al.; the default) keeps the inputs, the
  batch statistics and the 1x1 convolution's output only. A ResNet has no such mode; its figures are equal.
* **Inference** (`inference_bytes`): the peak, over one eval-mode `torch.no_grad()` forward pass, of
  the bytes of the distinct storages of the live tensors that PyTorch functions have returned, the
  input batch included (the caller holds it), weights and buffers left out. It is read just after
  each function returns, so a layer's input and output count together; scratch memory inside one
  operation (a convolution's workspace) is not visible at that level and not counted.

Where the numbers depend on the backend: on CPU (and so here) dropout keeps a mask in the
activation dtype, CUDA keeps a 1-byte one; with float16/bfloat16 on CPU batch norm keeps its batch
statistics in that dtype, while CUDA and the meta device keep them in float32 (a few KiB).
`measure_cuda_peak` gives the CUDA allocator's own peak for comparison.

Why torchinfo's "Forward/backward pass size" is a different (and larger) number, e.g. 1444 MB for
DenseNet-121 at batch 8 against 995 MiB saved by autograd: torchinfo adds the output of every leaf
module that has parameters (every conv, batch norm and linear layer) and doubles it "for
gradients". It does not see what autograd keeps: batch norm saves its input, not its output; the
in-place ReLU's output shares the batch norm's storage; a 1x1 convolution's output is kept by the
next batch norm, not by the convolution; max-pool keeps int64 indices; and `torch.cat` is not a
module, so the concatenation copies that dominate DenseNet's memory are invisible to it, while
every output it does see counts twice. It also ignores checkpointing, so it reports the same figure
for the memory-efficient model.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import torch

from ..models.config import DEFAULT_EFFICIENT_IMPL, DenseNetConfig, ResNetConfig, check_int, layer_in_channels
from ..models.plan import LayerSpec, check_input_size, layer_plan
from .dense_form import dense_parts, densenet_inference, densenet_saved, densenet_units, save_dense_block
from .ledger import Core, Saved
from .report import (
    MAX_BATCH_SIZE,
    AnalysisReport,
    MemoryReport,
    check_batch_size,
    check_config,
    check_dtype,
    check_mode,
    input_hw,
)
from .resnet_form import resnet_inference, resnet_saved, resnet_units


@functools.lru_cache(maxsize=64)
def _core(config: DenseNetConfig | ResNetConfig, hw: tuple[int, int], dtype: torch.dtype) -> Core:
    """Everything that does not depend on the batch size, from the config alone."""
    size = dtype.itemsize
    plan = layer_plan(config, hw)
    if isinstance(config, DenseNetConfig):
        parts = dense_parts(plan)
        units = densenet_units(config, parts, hw)
        plain = densenet_saved(config, parts, hw, size, efficient=False)
        efficient = densenet_saved(config, parts, hw, size, efficient=True)
        inference = densenet_inference(config, parts, hw, size)
    else:
        units = resnet_units(config, plan, hw)
        plain = efficient = resnet_saved(config, plan, hw, size)
        inference = resnet_inference(config, plan, hw, size)
    return Core(
        units=tuple(units),
        plain={k: (v[0], v[1]) for k, v in plain.by_unit.items()},
        efficient={k: (v[0], v[1]) for k, v in efficient.by_unit.items()},
        inference_per_sample=inference,
        # Every batch norm runs once in the plain pass: running mean and variance, plus an int64 counter.
        buffer_bytes=2 * plain.bn_channels * size + 8 * plain.bn_layers,
    )


# ---------------------------------------------------------------------------------------------
# The public API


def _group(kind: str, block: int | None) -> str:
    """The subtotal a table row belongs to, named after the model's modules."""
    names = {"dense_layer": "denseblock", "transition": "transition", "residual_block": "layer"}
    if kind in names:
        return f"{names[kind]}{block}"
    return "stem" if kind == "stem" else "head"


def _totals(coefficients: dict[str, tuple[int, int]]) -> tuple[int, int]:
    return sum(a for a, _ in coefficients.values()), sum(c for _, c in coefficients.values())


_SUMMED = ("params", "macs", "output_bytes", "train_plain_bytes", "train_efficient_bytes")


@dataclass(frozen=True)
class Totals:
    """A report's whole-model figures without its tables: what a sweep or a baseline match needs of many models."""

    params: int
    macs_per_sample: int
    memory: MemoryReport
    units: int  # rows of the report's table: stem, dense layers / residual blocks, transitions, norm, classifier


@functools.lru_cache(maxsize=512)
def _totals_of(config: DenseNetConfig | ResNetConfig, hw: tuple[int, int], batch: int, dtype: torch.dtype) -> Totals:
    core, size = _core(normalised(config), hw, dtype), dtype.itemsize
    params = sum(u.params for u in core.units)
    (pa, pc), (ea, ec) = _totals(core.plain), _totals(core.efficient)
    memory = MemoryReport(
        inference_bytes=core.inference_per_sample * batch,
        train_plain_bytes=pa * batch + pc,
        train_efficient_bytes=ea * batch + ec,
        weight_bytes=params * size,
        buffer_bytes=core.buffer_bytes,
    )
    return Totals(params, sum(u.macs for u in core.units), memory, len(core.units))


@functools.lru_cache(maxsize=128)
def _report(
    config: DenseNetConfig | ResNetConfig, hw: tuple[int, int], batch: int, dtype: torch.dtype
) -> AnalysisReport:
    core, size = _core(normalised(config), hw, dtype), dtype.itemsize
    rows = []
    for u in core.units:
        s = u.spec
        shape = (batch, s.out_channels) if s.kind == "classifier" else (batch, s.out_channels, s.height, s.width)
        plain, efficient = core.plain.get(s.path, (0, 0)), core.efficient.get(s.path, (0, 0))
        rows.append(
            {
                "path": s.path,
                "kind": s.kind,
                "block": s.block,
                "layer": s.layer,
                "in_channels": s.in_channels,
                "out_channels": s.out_channels,
                "output_shape": "x".join(map(str, shape)),
                "params": u.params,
                "macs": u.macs * batch,
                "output_bytes": u.out_numel * size * batch,
                "train_plain_bytes": plain[0] * batch + plain[1],
                "train_efficient_bytes": efficient[0] * batch + efficient[1],
            }
        )
    # Columns built in Python: pandas per-row operations would cost more than the whole closed form.
    nullable = {"block", "layer"}  # None for the stem and the head: nullable integers, made as such
    table = pd.DataFrame({key: pd.array([r[key] for r in rows], dtype="Int64") if key in nullable
                          else [r[key] for r in rows] for key in rows[0]})
    blocks = _block_table(config, rows)
    t = _totals_of(config, hw, batch, dtype)
    return AnalysisReport(
        config, hw, batch, dtype, t.params, t.macs_per_sample * batch, t.macs_per_sample, table, blocks, t.memory
    )


def _block_table(config: DenseNetConfig | ResNetConfig, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Subtotals per stem, dense block / stage, transition and head, then the total."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(_group(r["kind"], r["block"]), []).append(r)
    groups["total"] = rows
    out = []
    for name, part in groups.items():
        if name == "total":
            channels = (config.in_channels, config.num_classes)
        elif name.startswith("denseblock"):
            channels = (part[0]["in_channels"], part[-1]["in_channels"] + config.growth_rate)  # the concatenation
        else:
            channels = (part[0]["in_channels"], part[-1]["out_channels"])
        out.append(
            {
                "block": name,
                "layers": len(part),
                "in_channels": channels[0],
                "out_channels": channels[1],
                **{c: sum(r[c] for r in part) for c in _SUMMED},
            }
        )
    return pd.DataFrame({key: [r[key] for r in out] for key in out[0]})


def normalised(config: DenseNetConfig | ResNetConfig) -> DenseNetConfig | ResNetConfig:
    # The report always gives both training figures, so the memory_efficient flag must not split the cache.
    return replace(config, memory_efficient=False) if isinstance(config, DenseNetConfig) else config


def validated(config: Any, input_size: Any, batch_size: Any, dtype: Any) -> tuple[tuple[int, int], int, torch.dtype]:
    check_config(config)
    hw = check_input_size(input_hw(input_size))
    batch, dt = check_batch_size(batch_size), check_dtype(dtype)
    layer_plan(config, hw)  # raises ValueError for inputs too small for the downsampling
    return hw, batch, dt


def analyze(
    config: DenseNetConfig | ResNetConfig,
    input_size: int | tuple[int, int] = 224,
    batch_size: int = 1,
    dtype: torch.dtype | str = torch.float32,
) -> AnalysisReport:
    """Per-layer table, parameters, MACs and activation memory, from the config alone (nothing allocated).

    Results are cached; the returned DataFrames are copies, so changing them leaves the cache intact.
    """
    hw, batch, dt = validated(config, input_size, batch_size, dtype)
    report = _report(config, hw, batch, dt)
    return replace(report, table=report.table.copy(), blocks=report.blocks.copy())


def totals(
    config: DenseNetConfig | ResNetConfig,
    input_size: int | tuple[int, int] = 224,
    batch_size: int = 1,
    dtype: torch.dtype | str = torch.float32,
) -> Totals:
    """analyze()'s parameters, MACs per sample and memory, without building its tables (~4x faster)."""
    hw, batch, dt = validated(config, input_size, batch_size, dtype)
    return _totals_of(config, hw, batch, dt)


def clear_cache() -> None:
    """Forget every cached analysis (benchmarks time the cold path with it)."""
    _core.cache_clear()
    _totals_of.cache_clear()
    _report.cache_clear()


def _coefficients(core: Core, mode: str) -> tuple[int, int]:
    """(bytes per sample, constant bytes) of a mode's activation figure."""
    if mode == "inference":
        return core.inference_per_sample, 0
    return _totals(core.plain if mode == "train_plain" else core.efficient)


def max_batch_that_fits(
    config: DenseNetConfig | ResNetConfig,
    input_size: int | tuple[int, int],
    budget_bytes: int,
    dtype: torch.dtype | str = torch.float32,
    mode: str = "train_plain",
) -> int:
    """The largest batch whose `MemoryReport.required_bytes(mode)` fits in budget_bytes; 0 if none does.

    Computed from the closed form (bytes = a * batch + b), never by allocating; capped at MAX_BATCH_SIZE.
    """
    hw, _, dt = validated(config, input_size, 1, dtype)
    check_mode(mode)
    if (
        isinstance(budget_bytes, bool)
        or not isinstance(budget_bytes, (int, float))
        or not math.isfinite(budget_bytes)
        or budget_bytes < 0
    ):
        raise ValueError(f"budget_bytes must be a non-negative number of bytes, got {budget_bytes!r}")
    per_sample, _ = _coefficients(_core(normalised(config), hw, dt), mode)
    # required(batch) = per_sample * batch + fixed, fixed being the weights (and gradients) and the constant.
    fixed = _totals_of(config, hw, 1, dt).memory.required_bytes(mode) - per_sample
    if fixed + per_sample > budget_bytes:
        return 0
    return min(MAX_BATCH_SIZE, int((budget_bytes - fixed) // per_sample))


def memory_growth(
    growth_rate: int = 32,
    in_channels: int = 64,
    bn_size: int = 4,
    max_layers: int = 64,
    input_size: int | tuple[int, int] = 32,
    batch_size: int = 16,
    dtype: torch.dtype | str = torch.float32,
    efficient_impl: str = DEFAULT_EFFICIENT_IMPL,
) -> pd.DataFrame:
    """Training bytes of one dense block of L = 1..max_layers layers, plain (quadratic) and memory-efficient (linear).

    The block is measured as in Pleiss et al. (2017): its input requires grad (it comes from earlier
    layers), so the memory-efficient layers keep it, and nothing after the block is counted.
    efficient_impl chooses the memory-efficient implementation, as in DenseNetConfig.
    """
    check_int("growth_rate", growth_rate, 1, 512)
    check_int("in_channels", in_channels, 1, 4096)
    check_int("bn_size", bn_size, 0, 16)
    check_int("max_layers", max_layers, 1, 512)
    h, w = check_input_size(input_hw(input_size))
    batch, dt = check_batch_size(batch_size), check_dtype(dtype)
    config = DenseNetConfig(
        growth_rate=growth_rate,
        block_config=(max_layers,),
        num_init_features=in_channels,
        bn_size=bn_size,
        stem="cifar",
        efficient_impl=efficient_impl,  # validated by the config
    )
    layers = tuple(
        LayerSpec(f"denselayer{i}", "dense_layer", 1, i, layer_in_channels(in_channels, growth_rate, i), growth_rate,
                  h, w)
        for i in range(1, max_layers + 1)
    )
    size = dt.itemsize
    totals = {}
    for efficient in (False, True):
        acc = Saved()
        save_dense_block(acc, config, layers, ("input", in_channels * h * w * size), h * w * size, size, efficient)
        running, column = 0, []
        for s in layers:
            a, c = acc.by_unit[s.path]
            running += a * batch + c
            column.append(running)
        totals[efficient] = column
    return pd.DataFrame(
        {"layers": range(1, max_layers + 1), "plain_bytes": totals[False], "efficient_bytes": totals[True]}
    )


