"""The bookkeeping the closed forms share: saved and live storages, table rows, convolution costs."""

from __future__ import annotations

from dataclasses import dataclass

from ..models.config import DenseNetConfig, ResNetConfig
from ..models.plan import LayerSpec, conv_out

INDEX_BYTES = 8  # max-pool keeps int64 indices of its maxima for backward


class Saved:
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


class Live:
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
class Unit:
    """Per-sample numbers of one table row."""

    spec: LayerSpec
    params: int
    macs: int
    out_numel: int


@dataclass(frozen=True)
class Core:
    """The batch-independent result: rows per sample and the memory coefficients."""

    units: tuple[Unit, ...]
    plain: dict[str, tuple[int, int]]  # unit path -> (bytes per sample, constant bytes)
    efficient: dict[str, tuple[int, int]]
    inference_per_sample: int
    buffer_bytes: int


def classifier_unit(f: LayerSpec) -> Unit:
    # A linear layer: weight and bias; its MACs are the matrix product (the bias add is not counted).
    return Unit(f, f.in_channels * f.out_channels + f.out_channels, f.in_channels * f.out_channels, f.out_channels)


def conv_cost(cin: int, cout: int, kernel: int, h: int, w: int) -> tuple[int, int]:
    """(parameters, MACs per sample) of a bias-free kernel x kernel convolution producing cout x h x w."""
    return cout * cin * kernel * kernel, cout * h * w * cin * kernel * kernel


def stem_conv_hw(config: DenseNetConfig | ResNetConfig, hw: tuple[int, int]) -> tuple[int, int]:
    """Spatial size after the stem's convolution (before the ImageNet stem's max-pool)."""
    if config.stem == "imagenet":
        return conv_out(hw[0], 7, 2, 3), conv_out(hw[1], 7, 2, 3)
    return hw
