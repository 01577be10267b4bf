"""ResNet baselines for a DenseNet: the family that shares its stem, adapted to its classes and input
channels, and the one closest in parameters or depth. Parameter counts come from the closed form, so
choosing a baseline never builds a model."""

from __future__ import annotations

import functools
from dataclasses import replace

from ..models.config import PRESETS, DenseNetConfig, ResNetConfig
from ..models.plan import layer_plan
from .dense_form import dense_parts, densenet_units
from .report import check_config
from .resnet_form import resnet_units


# Configs are frozen (hashable): a baseline match, run for every new config a student tries, then counts only
# the new DenseNet; the candidate ResNets' counts are remembered.
@functools.lru_cache(maxsize=1024)
def count_params(config: DenseNetConfig | ResNetConfig) -> int:
    """Parameters of the model a config describes, in closed form (no model is built): the sum of its table rows,
    without the memory figures."""
    check_config(config)
    # The count does not depend on the input size: an input as large as the downsampling leaves every map 1x1 or more.
    hw = (config.downsampling, config.downsampling)
    plan = layer_plan(config, hw)
    units = (densenet_units(config, dense_parts(plan), hw) if isinstance(config, DenseNetConfig)
             else resnet_units(config, plan, hw))
    return sum(u.params for u in units)


def adapt_baseline(baseline: ResNetConfig, config: DenseNetConfig) -> ResNetConfig:
    """A ResNet preset with the DenseNet's input channels and classes, so the two compare like for like."""
    return replace(baseline, in_channels=config.in_channels, num_classes=config.num_classes)


def resnet_baselines(stem: str) -> dict[str, ResNetConfig]:
    """The ResNet presets that share a stem (ImageNet or CIFAR), as defined (not yet adapted)."""
    return {name: cfg for name, cfg in PRESETS.items() if isinstance(cfg, ResNetConfig) and cfg.stem == stem}


def adapted_baselines(config: DenseNetConfig) -> dict[str, ResNetConfig]:
    """Every ResNet preset of the DenseNet's stem family, adapted to its input channels and classes."""
    return {name: adapt_baseline(cfg, config) for name, cfg in resnet_baselines(config.stem).items()}


def match_baseline(config: DenseNetConfig, by: str = "params") -> tuple[str, ResNetConfig]:
    """The ResNet preset (same stem family, adapted) closest to a DenseNet by parameter count or by depth."""
    if by not in ("params", "depth"):
        raise ValueError(f"by must be 'params' or 'depth', got {by!r}")
    candidates = adapted_baselines(config)
    if by == "params":
        target = count_params(config)
        name = min(candidates, key=lambda n: abs(count_params(candidates[n]) - target))
    else:
        name = min(candidates, key=lambda n: abs(candidates[n].depth - config.depth))
    return name, candidates[name]
