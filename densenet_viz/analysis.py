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
  the config's `efficient_impl`. "checkpoint" (torchvision's, the default, the figure REFERENCE.md
  quotes) wraps each dense layer's concat-BN-ReLU-Conv1x1 in non-reentrant `torch.utils.checkpoint`,
  which saves only the layer's inputs (shared with the block, so counted once per block) and
  recomputes the rest in backward. "recompute_bn" (efficient.py, Pleiss et al.) keeps the inputs, the
  batch statistics and the 1x1 convolution's output. A ResNet has no such mode; its figures are equal.
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
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from .config import DenseNetConfig, ResNetConfig, _check_int
from .plan import LayerSpec, _check_input_size, _conv_out, layer_plan

# torch dtypes the analysis accepts, by name (the UI passes names).
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}
MODES = ("inference", "train_plain", "train_efficient")
# Far above any batch a real accelerator holds, low enough that a typo is caught rather than quoted.
MAX_BATCH_SIZE = 1 << 20
_INDEX_BYTES = 8  # max-pool keeps int64 indices of its maxima for backward

MEMORY_LABELS: dict[str, str] = {
    "inference_bytes": (
        "Inference: the most activation memory alive at once during one forward pass without gradients "
        "(the input batch included, weights not)."
    ),
    "train_plain_bytes": (
        "Training: the activations autograd keeps from the forward pass until backward, each tensor once "
        "(weights not included)."
    ),
    "train_efficient_bytes": (
        "Training, memory-efficient: the same when each dense layer recomputes its concatenation and "
        "batch norm in backward instead of keeping them; equal to plain for a ResNet."
    ),
    "weight_bytes": "Weights: the parameters themselves (parameters x bytes per number); gradients need as much again.",
    "buffer_bytes": "Buffers: batch norm's running averages, kept with the weights (training also saves them).",
}


def _check_dtype(dtype: Any) -> torch.dtype:
    """Return dtype as a torch.dtype the analysis supports, or raise ValueError."""
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")


def _check_batch_size(batch_size: Any) -> int:
    _check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
    return batch_size


def _check_config(config: Any) -> None:
    if not isinstance(config, (DenseNetConfig, ResNetConfig)):
        raise ValueError(f"config must be a DenseNetConfig or ResNetConfig, got {type(config).__name__}")


def _check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


def _input_hw(input_size: Any) -> tuple[int, int]:
    # Lists come from JSON/URLs; the plan validates the values and wants a tuple.
    return tuple(input_size) if isinstance(input_size, list) else input_size


# ---------------------------------------------------------------------------------------------
# Reports


@dataclass(frozen=True)
class MemoryReport:
    """Memory of one configuration at one batch size and dtype, in bytes (see the module docstring)."""

    inference_bytes: int
    train_plain_bytes: int
    train_efficient_bytes: int
    weight_bytes: int  # parameters x itemsize; batch-norm running statistics (buffers) are not included
    buffer_bytes: int  # batch-norm running statistics and batch counters (autograd saves the statistics)

    @property
    def labels(self) -> dict[str, str]:
        """One plain-English sentence per figure, for a student (a fresh dict each time)."""
        return dict(MEMORY_LABELS)

    def activation_bytes(self, mode: str) -> int:
        """The activation figure of a mode: 'inference', 'train_plain' or 'train_efficient'."""
        return getattr(self, f"{_check_mode(mode)}_bytes")

    def required_bytes(self, mode: str) -> int:
        """Activations plus weights (plus as much again for their gradients when training).

        Optimizer state (Adam keeps two more copies of the weights), workspaces and allocator rounding
        are not included: a budget should leave room for them.
        """
        copies = 1 if _check_mode(mode) == "inference" else 2
        return self.activation_bytes(mode) + copies * self.weight_bytes


@dataclass(frozen=True)
class AnalysisReport:
    """Everything `analyze` computes for one config, input size, batch size and dtype."""

    config: DenseNetConfig | ResNetConfig
    input_size: tuple[int, int]  # (height, width)
    batch_size: int
    dtype: torch.dtype
    params: int
    macs: int  # multiply-accumulates of the whole batch (FLOPs = 2 x MACs)
    macs_per_sample: int
    table: pd.DataFrame  # one row per unit (stem, dense layer/residual block, transition, norm, classifier)
    blocks: pd.DataFrame  # subtotals per stem / block / transition / head, and a "total" row
    memory: MemoryReport

    def fits(self, budget_bytes: int, mode: str = "train_plain") -> bool:
        """Whether activations plus weights (and gradients, in training) fit in budget_bytes."""
        return self.memory.required_bytes(mode) <= budget_bytes


# ---------------------------------------------------------------------------------------------
# The closed form. Each walker below follows the model's forward code line by line, so a reader can
# set them side by side; sizes are per sample (bytes scale with the batch) plus per-channel constants.


class _Saved:
    """Storages autograd saves, each once, charged to the unit whose forward saves it first."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.by_unit: dict[str, list[int]] = {}  # unit path -> [bytes per sample, constant bytes]
        self.unit = ""
        self.bn_layers = 0
        self.bn_channels = 0

    def enter(self, path: str) -> None:
        self.unit = path
        self.by_unit.setdefault(path, [0, 0])

    def save(self, key: str, per_sample: int) -> None:
        if key not in self.seen:
            self.seen.add(key)
            self.by_unit[self.unit][0] += per_sample

    def bn_stats(self, channels: int, itemsize: int, running: bool = True) -> None:
        # Training BN saves running mean/var (buffers) and the batch mean/invstd: 4 vectors per channel;
        # efficient.cat_bn_relu_conv keeps only the batch mean/invstd.
        self.by_unit[self.unit][1] += (4 if running else 2) * channels * itemsize
        self.bn_layers += 1
        self.bn_channels += channels


class _Live:
    """Tensors alive during a no-grad forward pass; the peak is read after every allocation."""

    def __init__(self) -> None:
        self.sizes: dict[int, int] = {}  # handle -> bytes
        self.handles = 0
        self.current = 0
        self.peak = 0

    def alloc(self, nbytes: int) -> int:
        """Record a new storage of nbytes and return its handle."""
        self.handles += 1
        self.sizes[self.handles] = nbytes
        self.current += nbytes
        self.peak = max(self.peak, self.current)
        return self.handles

    def free(self, *handles: int) -> None:
        for h in handles:
            if h:  # 0: no tensor (e.g. an identity shortcut)
                self.current -= self.sizes.pop(h)


@dataclass(frozen=True)
class _Unit:
    """Per-sample numbers of one table row."""

    spec: LayerSpec
    params: int
    macs: int
    out_numel: int


@dataclass(frozen=True)
class _Core:
    """The batch-independent result: rows per sample and the memory coefficients."""

    units: tuple[_Unit, ...]
    plain: dict[str, tuple[int, int]]  # unit path -> (bytes per sample, constant bytes)
    efficient: dict[str, tuple[int, int]]
    inference_per_sample: int
    buffer_bytes: int


def _classifier_unit(f: LayerSpec) -> _Unit:
    # A linear layer: weight and bias; its MACs are the matrix product (the bias add is not counted).
    return _Unit(f, f.in_channels * f.out_channels + f.out_channels, f.in_channels * f.out_channels, f.out_channels)


def _conv(cin: int, cout: int, kernel: int, h: int, w: int) -> tuple[int, int]:
    """(parameters, MACs per sample) of a bias-free kernel x kernel convolution producing cout x h x w."""
    return cout * cin * kernel * kernel, cout * h * w * cin * kernel * kernel


def _stem_conv_hw(config: DenseNetConfig | ResNetConfig, hw: tuple[int, int]) -> tuple[int, int]:
    """Spatial size after the stem's convolution (before the ImageNet stem's max-pool)."""
    if config.stem == "imagenet":
        return _conv_out(hw[0], 7, 2, 3), _conv_out(hw[1], 7, 2, 3)
    return hw


@dataclass(frozen=True)
class _DenseParts:
    """A DenseNet plan cut along the model's structure."""

    stem: LayerSpec
    blocks: tuple[tuple[tuple[LayerSpec, ...], LayerSpec | None], ...]  # (dense layers, transition after)
    norm: LayerSpec
    classifier: LayerSpec


def _dense_parts(plan: list[LayerSpec]) -> _DenseParts:
    blocks: list[tuple[list[LayerSpec], LayerSpec | None]] = []
    for s in plan[1:-2]:
        if s.kind == "dense_layer":
            if s.layer == 1:
                blocks.append(([], None))
            blocks[-1][0].append(s)
        else:
            blocks[-1] = (blocks[-1][0], s)
    return _DenseParts(plan[0], tuple((tuple(ls), t) for ls, t in blocks), plan[-2], plan[-1])


def _densenet_units(c: DenseNetConfig, parts: _DenseParts, hw: tuple[int, int]) -> list[_Unit]:
    k, inter = c.growth_rate, c.bn_size * c.growth_rate
    s = parts.stem
    if c.stem == "imagenet":
        p, m = _conv(s.in_channels, s.out_channels, 7, *_stem_conv_hw(c, hw))
        p += 2 * s.out_channels  # norm0
    else:
        p, m = _conv(s.in_channels, s.out_channels, 3, *hw)
    units = [_Unit(s, p, m, s.out_channels * s.height * s.width)]
    for layers, transition in parts.blocks:
        for s in layers:
            if inter:
                p1, m1 = _conv(s.in_channels, inter, 1, s.height, s.width)
                p2, m2 = _conv(inter, k, 3, s.height, s.width)
                p, m = 2 * s.in_channels + p1 + 2 * inter + p2, m1 + m2
            else:
                p, m = _conv(s.in_channels, k, 3, s.height, s.width)
                p += 2 * s.in_channels
            units.append(_Unit(s, p, m, k * s.height * s.width))
        if transition is not None:
            t, last = transition, layers[-1]
            # The 1x1 convolution runs before the 2x2 pooling, at the block's size.
            p, m = _conv(t.in_channels, t.out_channels, 1, last.height, last.width)
            units.append(_Unit(t, 2 * t.in_channels + p, m, t.out_channels * t.height * t.width))
    n, f = parts.norm, parts.classifier
    units.append(_Unit(n, 2 * n.in_channels, 0, n.out_channels * n.height * n.width))
    units.append(_classifier_unit(f))
    return units


def _save_dense_block(
    acc: _Saved,
    c: DenseNetConfig,
    layers: tuple[LayerSpec, ...],
    block_in: tuple[str, int],
    plane: int,
    size: int,
    efficient: bool,
) -> None:
    """What autograd keeps in one dense block (plane: bytes per sample of one channel map)."""
    k, inter = c.growth_rate, c.bn_size * c.growth_rate
    features = [block_in]
    for s in layers:
        acc.enter(s.path)
        if efficient:
            # Both implementations keep the layer's inputs (shared with the block, so once per block).
            for key, nbytes in features:
                acc.save(key, nbytes)
        if efficient and c.efficient_impl == "recompute_bn":
            # efficient.cat_bn_relu_conv keeps the inputs and the batch mean and invstd of each BN it
            # wraps; in a bottleneck layer it wraps BN2-ReLU-Conv3x3 too, whose input is conv1's output.
            acc.bn_stats(s.in_channels, size, running=False)
            if inter:
                acc.save(f"{s.path}.conv1", inter * plane)
                acc.bn_stats(inter, size, running=False)
        else:
            if not efficient:  # (checkpointing keeps nothing of concat-norm1-relu1-conv1)
                acc.save(f"{s.path}.cat", s.in_channels * plane)  # norm1 keeps the concatenation
                acc.bn_stats(s.in_channels, size)
                acc.save(f"{s.path}.norm1", s.in_channels * plane)  # relu1 (in place) keeps it; conv1 reads it
            if inter:
                acc.save(f"{s.path}.conv1", inter * plane)  # norm2 keeps the bottleneck's output
                acc.bn_stats(inter, size)
                acc.save(f"{s.path}.norm2", inter * plane)  # relu2 (in place) keeps it; conv2 reads it
        if c.drop_rate > 0:
            acc.save(f"{s.path}.dropout", k * plane)  # the scaled keep-mask (CPU: activation dtype)
        features.append((s.path, k * plane))


def _densenet_saved(c: DenseNetConfig, parts: _DenseParts, hw: tuple[int, int], size: int, efficient: bool) -> _Saved:
    """What autograd keeps during a training forward pass of densenet.DenseNet."""
    acc, k = _Saved(), c.growth_rate
    stem = parts.stem
    acc.enter(stem.path)
    acc.save("input", c.in_channels * hw[0] * hw[1] * size)  # conv0 keeps the image for its weight gradient
    if c.stem == "imagenet":
        h1, w1 = _stem_conv_hw(c, hw)
        acc.save("conv0", stem.out_channels * h1 * w1 * size)  # norm0 keeps its input
        acc.bn_stats(stem.out_channels, size)
        acc.save("norm0", stem.out_channels * h1 * w1 * size)  # relu0 (in place) keeps it; pool0 reads it
        acc.save("pool0.indices", stem.out_channels * stem.height * stem.width * _INDEX_BYTES)
    block_in = ("stem", stem.out_channels * stem.height * stem.width * size)
    for layers, transition in parts.blocks:
        plane = layers[0].height * layers[0].width * size  # bytes of one channel map
        _save_dense_block(acc, c, layers, block_in, plane, size, efficient)
        block_out = (f"block{layers[0].block}.cat", (layers[-1].in_channels + k) * plane)
        if transition is not None:
            t = transition
            acc.enter(t.path)
            acc.save(*block_out)  # norm keeps the block's concatenation
            acc.bn_stats(t.in_channels, size)
            acc.save(f"{t.path}.norm", t.in_channels * plane)  # relu (in place) keeps it; conv reads it
            acc.save(f"{t.path}.conv", t.out_channels * plane)  # avg-pool keeps its input
            block_in = (t.path, t.out_channels * t.height * t.width * size)
    acc.enter(parts.norm.path)
    acc.save(*block_out)  # norm5 keeps the last block's concatenation
    acc.bn_stats(parts.norm.in_channels, size)
    # The head: F.relu (in place) keeps norm5's output, global pooling keeps nothing, the linear layer
    # keeps its (B, C) input. These run between modules; they are charged to the classifier's row.
    acc.enter(parts.classifier.path)
    acc.save("norm5", block_out[1])
    acc.save("pooled", parts.classifier.in_channels * size)
    return acc


def _inference_block(live: _Live, c: DenseNetConfig, layers: tuple[LayerSpec, ...], plane: int) -> int:
    """_DenseBlock without grad (forward_into_buffer): layers read views of one buffer and write after them."""
    k, inter = c.growth_rate, c.bn_size * c.growth_rate
    buffer = live.alloc((layers[-1].in_channels + k) * plane)
    for s in layers:
        norm1 = live.alloc(s.in_channels * plane)  # the concatenation is a view of the buffer: no copy
        new = live.alloc((inter or k) * plane)
        live.free(norm1)
        if inter:
            norm2 = live.alloc(inter * plane)
            conv2 = live.alloc(k * plane)
            live.free(new, norm2)
            new = conv2
        live.free(new)  # copied into the buffer and dropped
    return buffer


def _densenet_inference(c: DenseNetConfig, parts: _DenseParts, hw: tuple[int, int], size: int) -> int:
    """Peak live bytes per sample during an eval-mode no-grad forward pass of densenet.DenseNet."""
    live = _Live()
    live.alloc(c.in_channels * hw[0] * hw[1] * size)  # the caller holds the input throughout
    stem = parts.stem
    c0 = stem.out_channels
    if c.stem == "imagenet":
        h1, w1 = _stem_conv_hw(c, hw)
        conv0 = live.alloc(c0 * h1 * w1 * size)
        norm0 = live.alloc(c0 * h1 * w1 * size)
        live.free(conv0)  # nn.Sequential rebinds its input; relu0 works in place
        out = live.alloc(c0 * stem.height * stem.width * size)
        live.free(norm0)
    else:
        out = live.alloc(c0 * stem.height * stem.width * size)
    for layers, transition in parts.blocks:
        plane = layers[0].height * layers[0].width * size
        block_out = _inference_block(live, c, layers, plane)
        live.free(out)  # the outer nn.Sequential drops the block's input once the block returns
        out = block_out
        if transition is not None:
            t = transition
            norm = live.alloc(t.in_channels * plane)
            conv = live.alloc(t.out_channels * plane)
            live.free(norm)
            pooled = live.alloc(t.out_channels * t.height * t.width * size)
            live.free(conv, out)  # the outer nn.Sequential drops the block's output once the transition returns
            out = pooled
    live.alloc(parts.norm.out_channels * parts.norm.height * parts.norm.width * size)  # norm5
    live.free(out)
    live.alloc(parts.classifier.in_channels * size)  # pooled (B, C, 1, 1); `features` still holds norm5's output
    live.alloc(parts.classifier.out_channels * size)  # logits
    return live.peak


@dataclass(frozen=True)
class _ResBlock:
    """One residual block with what its forward needs besides the plan's record."""

    spec: LayerSpec
    in_hw: tuple[int, int]
    planes: int
    shortcut: str | None  # None (identity), "projection" or "zero_pad"


def _res_blocks(c: ResNetConfig, plan: list[LayerSpec]) -> list[_ResBlock]:
    blocks, prev = [], plan[0]
    for s in plan[1:-1]:
        stride = 2 if s.block > 1 and s.layer == 1 else 1
        shortcut = c.shortcut if stride != 1 or s.in_channels != s.out_channels else None
        blocks.append(_ResBlock(s, (prev.height, prev.width), c.widths[s.block - 1], shortcut))
        prev = s
    return blocks


def _resnet_units(c: ResNetConfig, plan: list[LayerSpec], hw: tuple[int, int]) -> list[_Unit]:
    stem = plan[0]
    p, m = _conv(stem.in_channels, stem.out_channels, 7 if c.stem == "imagenet" else 3, *_stem_conv_hw(c, hw))
    units = [_Unit(stem, p + 2 * stem.out_channels, m, stem.out_channels * stem.height * stem.width)]
    for b in _res_blocks(c, plan):
        s, w, out_hw = b.spec, b.planes, (b.spec.height, b.spec.width)
        if c.block == "bottleneck":
            # torchvision puts the stride on the 3x3, so the first 1x1 runs at the block's input size.
            convs = [_conv(s.in_channels, w, 1, *b.in_hw), _conv(w, w, 3, *out_hw)]
            convs.append(_conv(w, s.out_channels, 1, *out_hw))
            norms = 2 * (w + w + s.out_channels)
        else:
            convs = [_conv(s.in_channels, w, 3, *out_hw), _conv(w, w, 3, *out_hw)]
            norms = 2 * (w + w)
        if b.shortcut == "projection":
            convs.append(_conv(s.in_channels, s.out_channels, 1, *out_hw))
            norms += 2 * s.out_channels
        params, macs = sum(p for p, _ in convs) + norms, sum(m for _, m in convs)
        units.append(_Unit(s, params, macs, s.out_channels * s.height * s.width))
    f = plan[-1]
    units.append(_classifier_unit(f))
    return units


def _resnet_saved(c: ResNetConfig, plan: list[LayerSpec], hw: tuple[int, int], size: int) -> _Saved:
    """What autograd keeps during a training forward pass of resnet.ResNet."""
    acc, stem = _Saved(), plan[0]
    acc.enter(stem.path)  # conv1, bn1, relu and maxpool are the stem
    acc.save("input", c.in_channels * hw[0] * hw[1] * size)
    h1, w1 = _stem_conv_hw(c, hw)
    acc.save("conv1", stem.out_channels * h1 * w1 * size)  # bn1 keeps its input
    acc.bn_stats(stem.out_channels, size)
    acc.save("bn1", stem.out_channels * h1 * w1 * size)  # relu (in place) keeps it
    if c.stem == "imagenet":
        acc.save("maxpool.indices", stem.out_channels * stem.height * stem.width * _INDEX_BYTES)
        x = ("maxpool", stem.out_channels * stem.height * stem.width * size)
    else:
        x = ("bn1", stem.out_channels * h1 * w1 * size)  # the identity max-pool hands on relu's output
    for b in _res_blocks(c, plan):
        s, w = b.spec, b.planes
        acc.enter(s.path)
        plane, in_plane = s.height * s.width * size, b.in_hw[0] * b.in_hw[1] * size
        acc.save(*x)  # conv1 (and a projection's conv) keep the block's input
        if b.shortcut == "projection":
            acc.save(f"{s.path}.downsample.0", s.out_channels * plane)  # its batch norm keeps the conv's output
            acc.bn_stats(s.out_channels, size)
        # Each conv's output is kept by the batch norm after it, each batch norm's output by the in-place
        # ReLU (and the next conv); the zero-padding shortcut and the addition keep nothing.
        if c.block == "bottleneck":
            maps = [("conv1", w, in_plane), ("bn1", w, in_plane), ("conv2", w, plane), ("bn2", w, plane)]
            maps.append(("conv3", s.out_channels, plane))
        else:
            maps = [("conv1", w, plane), ("bn1", w, plane), ("conv2", w, plane)]
        for name, channels, p in maps:
            acc.save(f"{s.path}.{name}", channels * p)
            if name.startswith("conv"):
                acc.bn_stats(channels, size)
        x = (f"{s.path}.out", s.out_channels * plane)
        acc.save(*x)  # the ReLU after the addition keeps its output
    fc = plan[-1]
    acc.enter(fc.path)  # avgpool (a mean: keeps nothing) and fc, which keeps its (B, C) input
    acc.save("pooled", fc.in_channels * size)
    return acc


def _resnet_inference(c: ResNetConfig, plan: list[LayerSpec], hw: tuple[int, int], size: int) -> int:
    """Peak live bytes per sample during an eval-mode no-grad forward pass of resnet.ResNet."""
    live, stem = _Live(), plan[0]
    live.alloc(c.in_channels * hw[0] * hw[1] * size)  # the caller holds the input throughout
    h1, w1 = _stem_conv_hw(c, hw)
    conv1 = live.alloc(stem.out_channels * h1 * w1 * size)
    x = live.alloc(stem.out_channels * h1 * w1 * size)  # bn1; relu works in place
    live.free(conv1)
    if c.stem == "imagenet":
        pooled = live.alloc(stem.out_channels * stem.height * stem.width * size)
        live.free(x)
        x = pooled
    blocks = _res_blocks(c, plan)
    for stage in range(1, len(c.layers) + 1):
        stage_in = cur = x  # ResNet.forward's `x` holds the stage input until the stage returns
        for b in (b for b in blocks if b.spec.block == stage):
            s, w = b.spec, b.planes
            plane, in_plane = s.height * s.width * size, b.in_hw[0] * b.in_hw[1] * size
            identity = 0
            if b.shortcut == "projection":
                d = live.alloc(s.out_channels * plane)
                identity = live.alloc(s.out_channels * plane)
                live.free(d)
            elif b.shortcut == "zero_pad":
                identity = live.alloc(s.out_channels * plane)  # the strided slice is a view; F.pad copies
            first = in_plane if c.block == "bottleneck" else plane
            c1 = live.alloc(w * first)
            out = live.alloc(w * first)  # bn1 (+ in-place ReLU)
            live.free(c1)
            widths = [w, s.out_channels] if c.block == "bottleneck" else [w]
            for channels in widths:  # conv2/bn2 (and conv3/bn3): the old `out` lives until reassigned
                conv = live.alloc(channels * plane)
                normed = live.alloc(channels * plane)
                live.free(conv, out)
                out = normed
            added = live.alloc(s.out_channels * plane)  # out + identity; the ReLU works in place
            live.free(out, identity)
            if cur != stage_in:
                live.free(cur)  # nn.Sequential drops the previous block's output
            cur = added
        if cur != stage_in:
            live.free(stage_in)
        x = cur
    fc = plan[-1]
    live.alloc(fc.in_channels * size)  # avgpool's (B, C, 1, 1); flatten is a view
    live.free(x)
    live.alloc(fc.out_channels * size)
    return live.peak


@functools.lru_cache(maxsize=64)
def _core(config: DenseNetConfig | ResNetConfig, hw: tuple[int, int], dtype: torch.dtype) -> _Core:
    """Everything that does not depend on the batch size, from the config alone."""
    size = dtype.itemsize
    plan = layer_plan(config, hw)
    if isinstance(config, DenseNetConfig):
        parts = _dense_parts(plan)
        units = _densenet_units(config, parts, hw)
        plain = _densenet_saved(config, parts, hw, size, efficient=False)
        efficient = _densenet_saved(config, parts, hw, size, efficient=True)
        inference = _densenet_inference(config, parts, hw, size)
    else:
        units = _resnet_units(config, plan, hw)
        plain = efficient = _resnet_saved(config, plan, hw, size)
        inference = _resnet_inference(config, plan, hw, size)
    return _Core(
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


@functools.lru_cache(maxsize=128)
def _report(
    config: DenseNetConfig | ResNetConfig, hw: tuple[int, int], batch: int, dtype: torch.dtype
) -> AnalysisReport:
    core, size = _core(_normalised(config), hw, dtype), dtype.itemsize
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
    table = pd.DataFrame({key: [r[key] for r in rows] for key in rows[0]})
    table = table.astype({"block": "Int64", "layer": "Int64"})
    blocks = _block_table(config, rows)
    params = sum(r["params"] for r in rows)
    macs_per_sample = sum(u.macs for u in core.units)
    (pa, pc), (ea, ec) = _totals(core.plain), _totals(core.efficient)
    memory = MemoryReport(
        inference_bytes=core.inference_per_sample * batch,
        train_plain_bytes=pa * batch + pc,
        train_efficient_bytes=ea * batch + ec,
        weight_bytes=params * size,
        buffer_bytes=core.buffer_bytes,
    )
    return AnalysisReport(
        config, hw, batch, dtype, params, macs_per_sample * batch, macs_per_sample, table, blocks, memory
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


def _normalised(config: DenseNetConfig | ResNetConfig) -> DenseNetConfig | ResNetConfig:
    # The report always gives both training figures, so the memory_efficient flag must not split the cache.
    return replace(config, memory_efficient=False) if isinstance(config, DenseNetConfig) else config


def _validated(config: Any, input_size: Any, batch_size: Any, dtype: Any) -> tuple[tuple[int, int], int, torch.dtype]:
    _check_config(config)
    hw = _check_input_size(_input_hw(input_size))
    batch, dt = _check_batch_size(batch_size), _check_dtype(dtype)
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
    hw, batch, dt = _validated(config, input_size, batch_size, dtype)
    report = _report(config, hw, batch, dt)
    return replace(report, table=report.table.copy(), blocks=report.blocks.copy())


def clear_cache() -> None:
    """Forget every cached analysis (benchmarks time the cold path with it)."""
    _core.cache_clear()
    _report.cache_clear()


def _coefficients(core: _Core, mode: str) -> tuple[int, int]:
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
    hw, _, dt = _validated(config, input_size, 1, dtype)
    _check_mode(mode)
    if (
        isinstance(budget_bytes, bool)
        or not isinstance(budget_bytes, (int, float))
        or not math.isfinite(budget_bytes)
        or budget_bytes < 0
    ):
        raise ValueError(f"budget_bytes must be a non-negative number of bytes, got {budget_bytes!r}")
    per_sample, _ = _coefficients(_core(_normalised(config), hw, dt), mode)
    # required(batch) = per_sample * batch + fixed, fixed being the weights (and gradients) and the constant.
    fixed = _report(config, hw, 1, dt).memory.required_bytes(mode) - per_sample
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
    efficient_impl: str = "checkpoint",
) -> pd.DataFrame:
    """Training bytes of one dense block of L = 1..max_layers layers, plain (quadratic) and memory-efficient (linear).

    The block is measured as in Pleiss et al. (2017): its input requires grad (it comes from earlier
    layers), so the memory-efficient layers keep it, and nothing after the block is counted.
    efficient_impl chooses the memory-efficient implementation, as in DenseNetConfig.
    """
    _check_int("growth_rate", growth_rate, 1, 512)
    _check_int("in_channels", in_channels, 1, 4096)
    _check_int("bn_size", bn_size, 0, 16)
    _check_int("max_layers", max_layers, 1, 512)
    h, w = _check_input_size(_input_hw(input_size))
    batch, dt = _check_batch_size(batch_size), _check_dtype(dtype)
    config = DenseNetConfig(
        growth_rate=growth_rate,
        block_config=(max_layers,),
        num_init_features=in_channels,
        bn_size=bn_size,
        stem="cifar",
        efficient_impl=efficient_impl,  # validated by the config
    )
    layers = tuple(
        LayerSpec(f"denselayer{i}", "dense_layer", 1, i, in_channels + (i - 1) * growth_rate, growth_rate, h, w)
        for i in range(1, max_layers + 1)
    )
    size = dt.itemsize
    totals = {}
    for efficient in (False, True):
        acc = _Saved()
        _save_dense_block(acc, config, layers, ("input", in_channels * h * w * size), h * w * size, size, efficient)
        running, column = 0, []
        for s in layers:
            a, c = acc.by_unit[s.path]
            running += a * batch + c
            column.append(running)
        totals[efficient] = column
    return pd.DataFrame(
        {"layers": range(1, max_layers + 1), "plain_bytes": totals[False], "efficient_bytes": totals[True]}
    )


# ---------------------------------------------------------------------------------------------
# The second method: measure the same figures on the real model (CPU tensors, or `meta` ones that
# have shapes but no memory). Tests hold the closed form to these; the UI may offer them as a check.


def _mode_config(config: DenseNetConfig | ResNetConfig, mode: str) -> DenseNetConfig | ResNetConfig:
    """The config whose model runs in a mode: memory_efficient on only for 'train_efficient'."""
    if not isinstance(config, DenseNetConfig):
        return config
    return replace(config, memory_efficient=mode == "train_efficient")


def _measurement_model(
    config: DenseNetConfig | ResNetConfig, hw: tuple[int, int], batch: int, dtype: torch.dtype, mode: str, device: str
) -> tuple[nn.Module, torch.Tensor]:
    from .build import build_model  # build imports the models; the closed form above never needs them

    model = build_model(_mode_config(config, mode), device=device).to(dtype)
    model.train(mode != "inference")
    x = torch.randn(batch, config.in_channels, *hw, device=device, dtype=dtype)
    return model, x


def _unit_of_module(config: DenseNetConfig | ResNetConfig, plan: list[LayerSpec]) -> dict[str, str]:
    """Module path -> table row path, for the modules that make up each row."""
    units = {s.path: s.path for s in plan}
    if isinstance(config, DenseNetConfig):
        stem = ["features.conv0", "features.norm0", "features.relu0", "features.pool0"]
        units.update(dict.fromkeys(stem if config.stem == "imagenet" else stem[:1], plan[0].path))
    else:
        units.update(dict.fromkeys(["conv1", "bn1", "relu", "maxpool"], plan[0].path))
        units["avgpool"] = plan[-1].path
    return units


@contextmanager
def _charging_units(model: nn.Module, units: dict[str, str], charge: Callable[[str | None], None]) -> Iterator[None]:
    """Tell charge() which table row is running; None between rows (those ops go to the next row)."""
    handles = []
    for module_path, unit in units.items():
        module = model.get_submodule(module_path)
        handles.append(module.register_forward_pre_hook(lambda *_, u=unit: charge(u)))
        handles.append(module.register_forward_hook(lambda *_: charge(None)))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _storage_key(t: torch.Tensor) -> int:
    # Identity of the storage, not its address: every meta tensor has data_ptr 0.
    return t.untyped_storage()._cdata


@contextmanager
def counting_saved_storages(model: nn.Module, count: Callable[[int], None]) -> Iterator[None]:
    """Call count(nbytes) once for every distinct storage autograd saves for backward inside the block,
    the model's parameters left out (they are weight memory, not activations)."""
    params = {_storage_key(p) for p in model.parameters()}
    seen: set[int] = set()

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = _storage_key(t)
        if key not in params and key not in seen:
            seen.add(key)
            count(t.untyped_storage().nbytes())
        # A detached alias keeps the storage alive without the reference cycle `return t` would make.
        return t.detach()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield


def _measure_saved(
    config: DenseNetConfig | ResNetConfig,
    input_size: int | tuple[int, int],
    batch_size: int,
    dtype: torch.dtype | str,
    mode: str,
    device: str,
) -> dict[str, int]:
    """Bytes of the distinct storages autograd saves in one training forward pass, per table row."""
    hw, batch, dt = _validated(config, input_size, batch_size, dtype)
    model, x = _measurement_model(config, hw, batch, dt, mode, device)
    by_unit: dict[str, int] = {}
    state: dict[str, Any] = {"unit": None, "pending": 0}

    def charge(unit: str | None) -> None:
        if unit is not None and state["pending"]:
            by_unit[unit] = by_unit.get(unit, 0) + state["pending"]
            state["pending"] = 0
        state["unit"] = unit

    def count(nbytes: int) -> None:
        if state["unit"] is None:
            state["pending"] += nbytes
        else:
            by_unit[state["unit"]] = by_unit.get(state["unit"], 0) + nbytes

    plan = layer_plan(config, hw)
    units = _unit_of_module(config, plan)
    with _charging_units(model, units, charge), counting_saved_storages(model, count):
        out = model(x)
    del out
    return by_unit


class _LiveTensors(TorchFunctionMode):
    """Tracks the storages of live tensors that torch functions return; keeps the peak of their bytes."""

    def __init__(self, exclude: set[int]) -> None:
        super().__init__()
        self.exclude = exclude
        self.nbytes: dict[int, int] = {}  # storage key -> bytes
        self.refs: dict[int, int] = {}  # storage key -> tracked tensors alive on it
        self.tracked: set[int] = set()
        self.current = 0
        self.peak = 0

    def _release(self, tensor_id: int, key: int) -> None:
        self.tracked.discard(tensor_id)
        self.refs[key] -= 1
        if self.refs[key] == 0:
            del self.refs[key]
            self.current -= self.nbytes.pop(key)

    def track(self, t: torch.Tensor) -> None:
        """Count t's storage as live until the last tracked tensor on it is freed."""
        key = _storage_key(t)
        if id(t) in self.tracked or key in self.exclude:
            return
        if key not in self.refs:
            self.refs[key] = 0
            self.nbytes[key] = t.untyped_storage().nbytes()
            self.current += self.nbytes[key]
        self.refs[key] += 1
        self.tracked.add(id(t))
        weakref.finalize(t, self._release, id(t), key)
        self.peak = max(self.peak, self.current)

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.track(t)
        return out


def _measure_inference(
    config: DenseNetConfig | ResNetConfig,
    input_size: int | tuple[int, int],
    batch_size: int,
    dtype: torch.dtype | str,
    device: str,
) -> int:
    """Peak bytes of live tensors during an eval-mode no-grad forward pass, the input included."""
    hw, batch, dt = _validated(config, input_size, batch_size, dtype)
    model, x = _measurement_model(config, hw, batch, dt, "inference", device)
    weights = {_storage_key(t) for t in [*model.parameters(), *model.buffers()]}
    mode = _LiveTensors(weights)
    with torch.no_grad(), mode:
        mode.track(x)
        model(x)
    return mode.peak


def measure_activation_bytes(
    config: DenseNetConfig | ResNetConfig,
    input_size: int | tuple[int, int] = 224,
    batch_size: int = 1,
    dtype: torch.dtype | str = torch.float32,
    mode: str = "train_plain",
    device: str = "meta",
) -> int:
    """One memory figure measured by running the real model ('meta': shapes only, nothing allocated)."""
    _check_mode(mode)
    if mode == "inference":
        return _measure_inference(config, input_size, batch_size, dtype, device)
    return sum(_measure_saved(config, input_size, batch_size, dtype, mode, device).values())


def measure_macs(
    config: DenseNetConfig | ResNetConfig,
    input_size: int | tuple[int, int] = 224,
    batch_size: int = 1,
    device: str = "meta",
) -> int:
    """Multiply-accumulates of one forward pass as torch.utils.flop_counter.FlopCounterMode counts them (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    hw, batch, _ = _validated(config, input_size, batch_size, torch.float32)
    model, x = _measurement_model(config, hw, batch, torch.float32, "inference", device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops() // 2


def measure_cuda_peak(
    config: DenseNetConfig | ResNetConfig,
    input_size: int | tuple[int, int] = 224,
    batch_size: int = 1,
    dtype: torch.dtype | str = torch.float32,
    mode: str = "train_plain",
) -> int:
    """Peak CUDA bytes a training step (forward + backward) or a no-grad forward adds above weights and input.

    `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`. It is larger than the estimate:
    it also holds the weight gradients, backward's temporaries, cuDNN workspaces and the allocator's
    512-byte rounding, and CUDA keeps dropout masks in 1 byte and half-precision BN statistics in float32.
    """
    if not torch.cuda.is_available():
        raise ValueError("measure_cuda_peak needs a CUDA GPU, and torch.cuda.is_available() is False here")
    hw, batch, dt = _validated(config, input_size, batch_size, dtype)
    _check_mode(mode)
    model, x = _measurement_model(config, hw, batch, dt, mode, "cuda")
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    if mode == "inference":
        with torch.no_grad():
            model(x)
    else:
        model(x).float().sum().backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del model, x
    torch.cuda.empty_cache()
    return peak
