"""The layer-by-layer plan of a network, derived from its config alone: channels and spatial sizes.

Graphs, charts and the analysis all read these records instead of repeating the channel arithmetic.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .config import DenseNetConfig, ResNetConfig, layer_in_channels, transition_out_channels


@dataclass(frozen=True)
class LayerSpec:
    """One unit of the network as a student would point at it in a diagram."""

    path: str  # module path in the real model, e.g. "features.denseblock2.denselayer3"
    kind: str  # "stem", "dense_layer", "transition", "norm", "residual_block", "classifier"
    block: int | None  # 1-based dense block / ResNet stage, None outside blocks
    layer: int | None  # 1-based layer within the block
    in_channels: int
    out_channels: int  # channels this unit produces (k for a dense layer)
    height: int  # spatial size of the unit's output
    width: int


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def check_input_size(input_size: int | tuple[int, int]) -> tuple[int, int]:
    """Return (H, W) from an int or pair, or raise ValueError for non-positive or non-integer sizes."""
    hw = (input_size, input_size) if isinstance(input_size, int) and not isinstance(input_size, bool) else input_size
    if (
        not isinstance(hw, tuple)
        or len(hw) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in hw)
    ):
        raise ValueError(f"input_size must be a positive integer or (height, width) pair, got {input_size!r}")
    return hw


def _stem(config: DenseNetConfig | ResNetConfig, hw: tuple[int, int], out: int, path: str) -> LayerSpec:
    if config.stem == "imagenet":
        h, w = (conv_out(conv_out(s, 7, 2, 3), 3, 2, 1) for s in hw)
    else:
        h, w = hw
    return LayerSpec(path, "stem", None, None, config.in_channels, out, h, w)


@functools.lru_cache(maxsize=1024)
def min_input_size(config: DenseNetConfig | ResNetConfig) -> int:
    """The smallest square input whose feature maps stay at least 1x1 through every downsampling."""
    # Every map side grows with the input side, so fitting is monotone: double, then bisect (a few plans,
    # where counting up from 1 planned the network ~30 times for an ImageNet stem).
    high = 1
    while not _fits(_plan(config, (high, high))):
        high *= 2
    low = high // 2  # 0, or a size that does not fit
    while high - low > 1:
        mid = (low + high) // 2
        if _fits(_plan(config, (mid, mid))):
            high = mid
        else:
            low = mid
    return high


def _fits(specs: tuple[LayerSpec, ...]) -> bool:
    return all(s.height >= 1 and s.width >= 1 for s in specs)


@functools.lru_cache(maxsize=512)
def _plan(config: DenseNetConfig | ResNetConfig, hw: tuple[int, int]) -> tuple[LayerSpec, ...]:
    # A sweep, a baseline match and the cost estimates plan the same configs again and again; specs are frozen.
    return tuple(_densenet_plan(config, hw)) if isinstance(config, DenseNetConfig) else tuple(_resnet_plan(config, hw))


def layer_plan(config: DenseNetConfig | ResNetConfig, input_size: int | tuple[int, int] = 224) -> list[LayerSpec]:
    """Every stem, dense layer / residual block, transition and classifier with its channels and size."""
    hw = check_input_size(input_size)
    specs = _plan(config, hw)
    if not _fits(specs):
        size = min_input_size(config)
        raise ValueError(
            f"input {hw[0]}x{hw[1]} is too small: the network downsamples by {config.downsampling}x "
            f"and its feature maps would vanish; use at least {size}x{size}"
        )
    return list(specs)


def _densenet_plan(config: DenseNetConfig, hw: tuple[int, int]) -> list[LayerSpec]:
    k = config.growth_rate
    stem = _stem(config, hw, config.num_init_features, "features.conv0")
    specs, (h, w), c = [stem], (stem.height, stem.width), config.num_init_features
    for b, n in enumerate(config.block_config, start=1):
        for i in range(1, n + 1):
            # Layer i reads k0 + k*(i-1) channels and adds k of its own.
            path = f"features.denseblock{b}.denselayer{i}"
            specs.append(LayerSpec(path, "dense_layer", b, i, layer_in_channels(c, k, i), k, h, w))
        c = layer_in_channels(c, k, n + 1)
        if b < len(config.block_config):
            out = transition_out_channels(c, config.compression)
            h, w = h // 2, w // 2
            specs.append(LayerSpec(f"features.transition{b}", "transition", b, None, c, out, h, w))
            c = out
    specs.append(LayerSpec("features.norm5", "norm", None, None, c, c, h, w))
    specs.append(LayerSpec("classifier", "classifier", None, None, c, config.num_classes, 1, 1))
    return specs


def _resnet_plan(config: ResNetConfig, hw: tuple[int, int]) -> list[LayerSpec]:
    stem = _stem(config, hw, config.widths[0], "conv1")
    specs, (h, w), c = [stem], (stem.height, stem.width), config.widths[0]
    for s, (n, width) in enumerate(zip(config.layers, config.widths, strict=False), start=1):
        out = width * config.expansion
        for i in range(1, n + 1):
            if s > 1 and i == 1:
                h, w = conv_out(h, 3, 2, 1), conv_out(w, 3, 2, 1)
            specs.append(LayerSpec(f"layer{s}.{i - 1}", "residual_block", s, i, c, out, h, w))
            c = out
    specs.append(LayerSpec("fc", "classifier", None, None, c, config.num_classes, 1, 1))
    return specs
