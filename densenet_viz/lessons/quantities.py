"""The quantities a lesson may ask about, each computed from the live model (analyze(), the plan, the real module).

A lesson file names a quantity and its arguments; it never holds an answer or any code. Each quantity
returns an Answer: the value and a short markdown reason built from the same numbers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..analysis import accuracy
from ..analysis.closed_form import analyze
from ..models.build import seeded_model
from ..models.config import PRESETS, DenseNetConfig, ModelConfig
from ..models.densenet import Transition
from ..models.plan import layer_plan
from ..units import MIB
from ..viz.graphs import dense_block_trace


@dataclass(frozen=True)
class Context:
    """The model a step is about: the lesson's settings made into a config, input, batch and dtype."""

    config: DenseNetConfig
    input_size: int = 224
    batch_size: int = 1
    dtype: str = "float32"


@dataclass(frozen=True)
class Answer:
    """A computed answer: a number (in the quantity's unit) or one of the question's options, and why."""

    value: float | str
    why: str


@dataclass(frozen=True)
class Quantity:
    """A named computation a lesson can ask for: its unit, its arguments (name -> type) and the function."""

    name: str
    unit: str
    description: str
    args: dict[str, type]
    compute: Callable[[Context, dict], Answer]
    kind: str = "number"  # "number", or "choice" when the answer is a text among the question's options


def _report(ctx: Context, config: ModelConfig | None = None):
    return analyze(config or ctx.config, input_size=ctx.input_size, batch_size=ctx.batch_size, dtype=ctx.dtype)


def _check_block(config: DenseNetConfig, block: int) -> int:
    if not 1 <= block <= len(config.block_config):
        raise ValueError(f"block must be in [1, {len(config.block_config)}] for this model, got {block}")
    return config.block_config[block - 1]


def _check_transition(config: DenseNetConfig, transition: int) -> None:
    if not 1 <= transition < len(config.block_config):
        raise ValueError(f"transition must be in [1, {len(config.block_config) - 1}] for this model, got {transition}")


def channels_into_layer(ctx: Context, args: dict) -> Answer:
    """Channels the l-th dense layer of a block reads: the block's input plus k per earlier layer."""
    block, layer, config = args["block"], args["layer"], ctx.config
    n = _check_block(config, block)
    if not 1 <= layer <= n:
        raise ValueError(f"layer must be in [1, {n}] for block {block}, got {layer}")
    table = _report(ctx).table
    row = table[(table["kind"] == "dense_layer") & (table["block"] == block) & (table["layer"] == layer)]
    value = int(row["in_channels"].iloc[0])
    c0 = config.block_in_channels()[block - 1]
    return Answer(value, f"Block {block} starts with $k_0 = {c0}$ channels and every earlier layer adds "
                         f"$k = {config.growth_rate}$: ${c0} + {config.growth_rate}\\cdot({layer}-1) = {value}$.")


def connections_in_block(ctx: Context, args: dict) -> Answer:
    """Direct connections into the layers of one dense block (the Connectivity page's diagram)."""
    n = _check_block(ctx.config, args["block"])
    value = dense_block_trace(ctx.config, args["block"], ctx.input_size).count("read")
    return Answer(value, f"Layer $\\ell$ reads $x_0, \\dots, x_{{\\ell-1}}$: $\\ell$ connections. "
                         f"$1 + 2 + \\dots + {n} = {n}\\cdot{n + 1}/2 = {value}$.")


def _transition_row(ctx: Context, transition: int):
    _check_transition(ctx.config, transition)
    table = _report(ctx).table
    return table[(table["kind"] == "transition") & (table["block"] == transition)].iloc[0]


def channels_after_transition(ctx: Context, args: dict) -> Answer:
    """Channels a transition hands to the next block: floor(theta * c) of the c it receives."""
    row, theta = _transition_row(ctx, args["transition"]), ctx.config.compression
    value = int(row["out_channels"])
    return Answer(value, f"Transition {args['transition']} receives {int(row['in_channels'])} channels and keeps "
                         f"$\\lfloor \\theta c \\rfloor = \\lfloor {theta:g}\\cdot{int(row['in_channels'])} "
                         f"\\rfloor = {value}$.")


def size_after_transition(ctx: Context, args: dict) -> Answer:
    """Height (= width, square input) of the maps a transition hands on: its 2x2 pooling halves the size."""
    _check_transition(ctx.config, args["transition"])
    specs = layer_plan(ctx.config, ctx.input_size)
    spec = next(s for s in specs if s.kind == "transition" and s.block == args["transition"])
    before = next(s for s in specs if s.kind == "dense_layer" and s.block == args["transition"])
    return Answer(spec.height, f"The block's maps are {before.height}×{before.width}; the 2×2 pooling with stride "
                               f"2 halves each side: {spec.height}×{spec.width}.")


def params_millions(ctx: Context, args: dict) -> Answer:
    """The model's parameters, in millions."""
    value = _report(ctx).params
    return Answer(value / 1e6, f"The analysis counts {value:,} parameters = {value / 1e6:.3f} M.")


def _other(ctx: Context, name: str) -> ModelConfig:
    data = accuracy.load_published()
    if name not in PRESETS and name not in data.architectures:
        raise ValueError(f"model {name!r} is not a preset ({', '.join(PRESETS)})")
    config = PRESETS[name] if name in PRESETS else data.architectures[name][1]
    return replace(config, num_classes=ctx.config.num_classes)


def params_ratio(ctx: Context, args: dict) -> Answer:
    """How many times the parameters of another model (a preset) the lesson's model has."""
    other, mine = _report(ctx, _other(ctx, args["model"])).params, _report(ctx).params
    title = accuracy.model_title(args["model"])
    return Answer(other / mine, f"{title} has {other:,} parameters, this model {mine:,}: "
                                f"{other:,} / {mine:,} = {other / mine:.2f}.")


def flops_ratio(ctx: Context, args: dict) -> Answer:
    """How many times the FLOPs of this model another model (a preset) needs per image, at this input size."""
    other, mine = _report(ctx, _other(ctx, args["model"])).macs_per_sample, _report(ctx).macs_per_sample
    title = accuracy.model_title(args["model"])
    return Answer(other / mine, f"At {ctx.input_size}×{ctx.input_size}, {title} needs {2 * other / 1e9:.2f} G FLOPs, "
                                f"this model {2 * mine / 1e9:.2f} G: a ratio of {other / mine:.2f}.")


_MODES = {"plain": "train_plain_bytes", "efficient": "train_efficient_bytes"}


def train_memory_mib(ctx: Context, args: dict) -> Answer:
    """Activation memory autograd saves in one training step (plain or memory-efficient), in MiB."""
    if args["mode"] not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}; got {args['mode']!r}")
    value = getattr(_report(ctx).memory, _MODES[args["mode"]])
    return Answer(value / MIB, f"At batch {ctx.batch_size}, {ctx.input_size}×{ctx.input_size}, {ctx.dtype}: "
                                 f"{value:,} bytes saved for backward ({args['mode']}) = {value / MIB:.1f} MiB.")


def memory_saving(ctx: Context, args: dict) -> Answer:
    """Plain training memory divided by memory-efficient training memory."""
    memory = _report(ctx).memory
    ratio = memory.train_plain_bytes / memory.train_efficient_bytes
    return Answer(ratio, f"{memory.train_plain_bytes / MIB:.1f} MiB plain / "
                         f"{memory.train_efficient_bytes / MIB:.1f} MiB memory-efficient = {ratio:.2f}.")


def _published(model: str, dataset: str, source: str) -> float:
    rows = [r for r in accuracy.load_published().results if (r.model, r.dataset, r.source) == (model, dataset, source)]
    if not rows:
        raise ValueError(f"no published {dataset} error of {model!r} from source {source!r} in data/accuracy.toml")
    return rows[0].error


def published_error(ctx: Context, args: dict) -> Answer:
    """A published error in percent, as data/accuracy.toml holds it (with its source and table)."""
    value = _published(args["model"], args["dataset"], args["source"])
    data = accuracy.load_published()
    return Answer(value, f"{accuracy.model_title(args['model'])}: {value:g} % on {args['dataset']} "
                         f"({data.sources[args['source']]}).")


def closest_resnet(ctx: Context, args: dict) -> Answer:
    """The published ResNet (same dataset and sources) whose error is closest to this published DenseNet's."""
    dataset, sources = args["dataset"], accuracy.SOURCE_SETS.get(args["sources"])
    if sources is None:
        raise ValueError(f"sources must be one of {', '.join(accuracy.SOURCE_SETS)}; got {args['sources']!r}")
    table = accuracy.published_table(dataset, sources)
    cost = accuracy.model_cost(ctx.config, table)
    if not len(cost.published):
        raise ValueError("this step's model has no published error; closest_resnet needs a published DenseNet")
    mine = float(cost.published["error"].iloc[0])
    resnets = table[table["family"] == "ResNet"]
    best = resnets.iloc[int((resnets["error"] - mine).abs().argmin())]
    return Answer(str(best["title"]), f"This DenseNet's published error is {mine:g} %; {best['title']}'s is "
                                      f"{best['error']:g} %, the closest of the ResNets.")


_POOLS = {"AvgPool2d": "average pooling", "MaxPool2d": "max pooling", "Conv2d": "strided convolution"}


@functools.lru_cache(maxsize=8)
def _pool_kind(config: DenseNetConfig) -> str:
    # The model's own Transition class, as DenseNet.__init__ builds it for transition 1; only that module: a whole
    # model of the largest size a lesson may name takes seconds to build even on the meta device.
    with torch.device("meta"):
        pool = Transition(config.block_out_channels()[0], config.block_in_channels()[1])[-1]
    return _POOLS.get(type(pool).__name__, type(pool).__name__)


def transition_pooling(ctx: Context, args: dict) -> Answer:
    """How the real model's transitions shrink the maps: the module its first transition ends with."""
    _check_transition(ctx.config, 1)
    value = _pool_kind(ctx.config)
    return Answer(value, f"The built model's `features.transition1` ends with {value} (2×2, stride 2): every output "
                         "pixel is the mean of four, so all four positions of every channel reach the next block.")


def reuse_cells(ctx: Context, args: dict) -> Answer:
    """Cells of the training page's feature-reuse heatmap (Figure 5) for one block of its digits DenseNet."""
    from ..lab import training  # the training page's model; imported here so lessons load without its data

    config = training.DIGITS_CONFIG
    n = _check_block(config, args["block"])
    reuse = training.feature_reuse(seeded_model(config, 0), args["block"])
    value = int(np.isfinite(reuse.values).sum())
    return Answer(value, f"Block {args['block']} has {n} layers: layer $\\ell$ reads $\\ell$ sources "
                         f"($x_0 \\dots x_{{\\ell-1}}$), {n * (n + 1) // 2} cells, and the {reuse.targets[-1]} reads "
                         f"all {n + 1}: {value} cells.")


QUANTITIES: dict[str, Quantity] = {
    q.name: q
    for q in (
        Quantity("channels_into_layer", "channels", "Channels entering layer `layer` of block `block`",
                 {"block": int, "layer": int}, channels_into_layer),
        Quantity("connections_in_block", "connections", "Direct connections into the layers of block `block`",
                 {"block": int}, connections_in_block),
        Quantity("channels_after_transition", "channels", "Channels leaving transition `transition`",
                 {"transition": int}, channels_after_transition),
        Quantity("size_after_transition", "pixels", "Side of the maps leaving transition `transition`",
                 {"transition": int}, size_after_transition),
        Quantity("params_millions", "M parameters", "The model's parameters in millions", {}, params_millions),
        Quantity("params_ratio", "×", "Parameters of preset `model` ÷ this model's", {"model": str}, params_ratio),
        Quantity("flops_ratio", "×", "FLOPs of preset `model` ÷ this model's", {"model": str}, flops_ratio),
        Quantity("train_memory_mib", "MiB", "Training activation memory, `mode` plain or efficient",
                 {"mode": str}, train_memory_mib),
        Quantity("memory_saving", "×", "Plain ÷ memory-efficient training memory", {}, memory_saving),
        Quantity("published_error", "%", "Published error of `model` on `dataset` from `source`",
                 {"model": str, "dataset": str, "source": str}, published_error),
        Quantity("closest_resnet", "", "The published ResNet whose error is closest to this DenseNet's",
                 {"dataset": str, "sources": str}, closest_resnet, kind="choice"),
        Quantity("transition_pooling", "", "What the real model's transitions pool with", {}, transition_pooling,
                 kind="choice"),
        Quantity("reuse_cells", "cells", "Cells of the training page's reuse heatmap for block `block`",
                 {"block": int}, reuse_cells),
    )
}
