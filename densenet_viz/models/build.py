"""Turn a config into its nn.Module on a chosen device."""

from __future__ import annotations

import torch
from torch import nn

from .config import DenseNetConfig, ResNetConfig
from .densenet import DenseNet
from .devices import check_device
from .resnet import ResNet


def build_model(config: DenseNetConfig | ResNetConfig, device: str | torch.device = "cpu") -> nn.Module:
    """Build the DenseNet or ResNet a config describes, on device ('cpu', 'cuda', 'mps' or 'meta')."""
    dev = check_device(device)
    if isinstance(config, DenseNetConfig):
        cls: type[nn.Module] = DenseNet
    elif isinstance(config, ResNetConfig):
        cls = ResNet
    else:
        raise ValueError(f"config must be a DenseNetConfig or ResNetConfig, got {type(config).__name__}")
    if dev == torch.get_default_device():
        return cls(config)  # a device context would route every op of the build through __torch_function__
    # Building directly on the target device skips a CPU copy; meta builds cost no memory at all.
    with dev:
        return cls(config)
