"""What `analyze` returns and what it accepts: report types, memory labels and argument checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from ..models.config import DenseNetConfig, ResNetConfig, check_int

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
        "Training, memory-efficient: the same when dense layers recompute their concatenation and first BN "
        "in backward (checkpoint mode: the 1×1 conv too); equal to plain for a ResNet."
    ),
    "weight_bytes": "Weights: the parameters themselves (parameters x bytes per number); gradients need as much again.",
    "buffer_bytes": "Buffers: batch norm's running averages, kept with the weights (training also saves them).",
}


def check_dtype(dtype: Any) -> torch.dtype:
    """Return dtype as a torch.dtype the analysis supports, or raise ValueError."""
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")


def check_batch_size(batch_size: Any) -> int:
    check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
    return batch_size


def check_config(config: Any) -> None:
    if not isinstance(config, (DenseNetConfig, ResNetConfig)):
        raise ValueError(f"config must be a DenseNetConfig or ResNetConfig, got {type(config).__name__}")


def check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


def input_hw(input_size: Any) -> tuple[int, int]:
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
        return getattr(self, f"{check_mode(mode)}_bytes")

    def required_bytes(self, mode: str) -> int:
        """Activations plus weights (plus as much again for their gradients when training).

        Optimizer state (Adam keeps two more copies of the weights), workspaces and allocator rounding
        are not included: a budget should leave room for them.
        """
        copies = 1 if check_mode(mode) == "inference" else 2
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


