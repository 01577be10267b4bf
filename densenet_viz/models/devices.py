"""Which devices this machine offers, and checks before building on one."""

from __future__ import annotations

import torch


def available_devices() -> list[str]:
    """The devices a model can be built on here, CPU first ('cpu', then 'cuda', 'mps' where present)."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def check_device(device: str | torch.device) -> torch.device:
    """Return device as a torch.device, or raise ValueError if it is unknown or absent here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}; available: {', '.join(available_devices())}") from exc
    if dev.type == "meta":  # shape-only tensors, used by the analysis; always available
        return dev
    if dev.type not in available_devices():
        raise ValueError(
            f"device {dev.type!r} is not available on this machine; available: {', '.join(available_devices())}"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"cuda:{dev.index} does not exist; this machine has {torch.cuda.device_count()} GPU(s)")
    return dev
