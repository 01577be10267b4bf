"""The data series the app's charts draw: channels along the network, sweeps, and side-by-side tables.

Each function returns a DataFrame with explicit units in its column names; charts.py only draws them.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import torch

from ..analysis.baselines import adapted_baselines
from ..analysis.closed_form import Totals, totals
from ..models.config import PRESET_TITLES, DenseNetConfig, ResNetConfig
from ..models.plan import layer_plan

GROWTH_RATES = (4, 8, 12, 16, 24, 32, 40, 48, 64)
DEPTH_SCALES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def channel_series(
    config: DenseNetConfig, input_size: int = 224, growth_rates: list[int] | tuple[int, ...] | None = None
) -> pd.DataFrame:
    """Channels entering every dense layer, transition and the final norm, in order (the saw-tooth).

    One run per growth rate (the config's own by default). Columns: growth_rate, step (1-based position
    along the network), path, kind, block, layer, channels (entering), out_channels, size (the side of
    the feature map the unit reads, pixels).
    """
    rows = []
    for k in growth_rates or [config.growth_rate]:
        specs = layer_plan(replace(config, growth_rate=int(k)), input_size)
        size = specs[0].height
        for step, s in enumerate(specs[1:-1], start=1):  # between the stem and the classifier
            rows.append(
                {
                    "growth_rate": int(k),
                    "step": step,
                    "path": s.path,
                    "kind": s.kind,
                    "block": s.block,
                    "layer": s.layer,
                    "channels": s.in_channels,
                    "out_channels": s.out_channels,
                    "size": size,
                }
            )
            size = s.height
    return pd.DataFrame(rows)


def resnet_channel_series(config: ResNetConfig, input_size: int = 224) -> pd.DataFrame:
    """Channels entering every residual block of a ResNet (a staircase: constant within a stage)."""
    specs = [s for s in layer_plan(config, input_size) if s.kind == "residual_block"]
    return pd.DataFrame(
        {
            "step": range(1, len(specs) + 1),
            "path": [s.path for s in specs],
            "block": [s.block for s in specs],
            "channels": [s.in_channels for s in specs],
            "out_channels": [s.out_channels for s in specs],
            "size": [s.height for s in specs],
        }
    )


def block_memory_growth(
    config: DenseNetConfig, input_size: int, batch_size: int = 1, dtype: torch.dtype = torch.float32,
    max_layers: int = 64,
) -> pd.DataFrame:
    """memory_growth for the model's first dense block (its k, input channels, bottleneck, map size and
    memory-efficient implementation)."""
    from ..analysis.closed_form import memory_growth

    first = next(s for s in layer_plan(config, input_size) if s.kind == "dense_layer")
    return memory_growth(
        growth_rate=config.growth_rate,
        in_channels=first.in_channels,
        bn_size=config.bn_size,
        max_layers=max_layers,
        input_size=first.height,
        batch_size=batch_size,
        dtype=dtype,
        efficient_impl=config.efficient_impl,
    )


def _row(report: Totals) -> dict:
    m = report.memory
    return {
        "params": report.params,
        "macs_per_sample": report.macs_per_sample,
        "inference_bytes": m.inference_bytes,
        "train_plain_bytes": m.train_plain_bytes,
        "train_efficient_bytes": m.train_efficient_bytes,
        "weight_bytes": m.weight_bytes,
    }


def sweep_growth(
    config: DenseNetConfig,
    input_size: int,
    batch_size: int = 1,
    dtype: torch.dtype = torch.float32,
    rates: tuple[int, ...] = GROWTH_RATES,
) -> pd.DataFrame:
    """Parameters, MACs and memory as the growth rate k varies, everything else as in config."""
    rows = []
    for k in sorted({*rates, config.growth_rate}):
        try:
            cfg = replace(config, growth_rate=k)
        except ValueError:  # e.g. compression would leave a block no channels at this k
            continue
        report = totals(cfg, input_size=input_size, batch_size=batch_size, dtype=dtype)
        rows.append({"growth_rate": k, "depth": cfg.depth, **_row(report), "current": k == config.growth_rate})
    return pd.DataFrame(rows)


def scaled_blocks(block_config: tuple[int, ...], scale: float) -> tuple[int, ...]:
    """Layers per block scaled by a factor (at least one layer each): the depth sweep's configs."""
    return tuple(max(1, round(n * scale)) for n in block_config)


def sweep_depth(
    config: DenseNetConfig,
    input_size: int,
    batch_size: int = 1,
    dtype: torch.dtype = torch.float32,
    scales: tuple[float, ...] = DEPTH_SCALES,
) -> pd.DataFrame:
    """Parameters, MACs and memory as every block's layer count is scaled (depth L varies)."""
    rows, seen = [], set()
    for scale in scales:
        blocks = scaled_blocks(config.block_config, scale)
        if blocks in seen:
            continue
        seen.add(blocks)
        try:
            cfg = replace(config, block_config=blocks)
        except ValueError:
            continue
        report = totals(cfg, input_size=input_size, batch_size=batch_size, dtype=dtype)
        rows.append(
            {
                "scale": scale,
                "blocks": "-".join(map(str, blocks)),
                **{"depth": cfg.depth, **_row(report)},
                "current": blocks == config.block_config,
            }
        )
    return pd.DataFrame(rows).sort_values("depth", ignore_index=True)


def resnet_family(
    config: DenseNetConfig, input_size: int, batch_size: int = 1, dtype: torch.dtype = torch.float32
) -> pd.DataFrame:
    """The ResNets sharing the DenseNet's stem (same classes and input channels): reference points."""
    rows = []
    for name, cfg in adapted_baselines(config).items():
        try:
            report = totals(cfg, input_size=input_size, batch_size=batch_size, dtype=dtype)
        except ValueError:  # input too small for this ResNet's downsampling
            continue
        rows.append({"name": name, "title": PRESET_TITLES.get(name, name), "depth": cfg.depth, **_row(report)})
    return pd.DataFrame(rows)


COMPARISON_ROWS = (
    ("Parameters", "params", "count"),
    ("MACs per image", "macs_per_sample", "MACs"),
    ("MACs for the batch", "macs", "MACs"),
    ("Weights", "weight_bytes", "bytes"),
    ("Inference activations", "inference_bytes", "bytes"),
    ("Training activations, plain", "train_plain_bytes", "bytes"),
    ("Training activations, memory-efficient", "train_efficient_bytes", "bytes"),
)


def comparison_table(dense_report, resnet_report) -> pd.DataFrame:
    """DenseNet and ResNet side by side: quantity, key, unit, densenet, resnet, ratio (DenseNet / ResNet)."""

    def value(report, attr: str) -> int:
        return getattr(report, attr) if hasattr(report, attr) else getattr(report.memory, attr)

    rows = []
    for label, attr, unit in COMPARISON_ROWS:
        d, r = value(dense_report, attr), value(resnet_report, attr)
        rows.append(
            {"quantity": label, "key": attr, "unit": unit, "densenet": d, "resnet": r, "ratio": d / r if r else None}
        )
    return pd.DataFrame(rows)


BATCH_MODES = (
    ("inference", "Inference (no gradients)"),
    ("train_plain", "Training, plain"),
    ("train_efficient", "Training, memory-efficient"),
)


def largest_batches(
    config: DenseNetConfig, input_size: int, budget_gib: float, dtype: torch.dtype = torch.float32
) -> pd.DataFrame:
    """The largest batch whose weights and activations fit in budget_gib GiB, per mode (0: not even one)."""
    from ..analysis.closed_form import max_batch_that_fits

    budget = int(budget_gib * 2**30)
    rows = [
        {"mode": mode, "label": label, "batch": max_batch_that_fits(config, input_size, budget, dtype=dtype, mode=mode)}
        for mode, label in BATCH_MODES
    ]
    return pd.DataFrame(rows)


def filter_layers(table: pd.DataFrame, kinds: list[str], blocks: list[int]) -> pd.DataFrame:
    """The rows of a per-layer table whose kind is in kinds (all if empty) and block in blocks (all if empty)."""
    keep = pd.Series(True, index=table.index)
    if kinds:
        keep &= table["kind"].isin(kinds)
    if blocks:
        keep &= table["block"].isin(blocks)
    return table[keep]
