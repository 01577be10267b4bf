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


def seeded_model(config: DenseNetConfig | ResNetConfig, seed: int) -> nn.Module:
    """A model on the CPU whose initial weights depend only on the seed (the global random stream is untouched: the
    app's sessions share one process)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(config, device="cpu")


def frozen(model: nn.Module, device: str | torch.device = "cpu") -> nn.Module:
    """The model on device, in eval mode, with no parameter asking for gradients: safe to run for a page or share."""
    model = model.to(device).eval()
    model.requires_grad_(False)
    return model
