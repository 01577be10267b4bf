"""Refuse a model too big for the device before building it, saying how much memory it would need."""

from __future__ import annotations

import torch

from ..viz.style import format_bytes

# Leave room for the app, the allocator's slack and the other sessions sharing the machine.
USABLE_FRACTION = 0.8


def free_memory_bytes(device: str) -> int | None:
    """Memory free for new tensors on a device: MemAvailable on the CPU, the driver's count on CUDA/MPS.

    None when the platform does not say (the check then lets the build go ahead).
    """
    kind = torch.device(device).type
    if kind == "cpu":
        try:
            with open("/proc/meminfo", encoding="ascii") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024  # the file counts kB (KiB)
        except OSError:
            return None
        return None
    if kind == "cuda" and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    mps = getattr(torch, "mps", None)
    if kind == "mps" and mps is not None and hasattr(mps, "recommended_max_memory"):
        return int(mps.recommended_max_memory() - mps.current_allocated_memory())
    return None


def check_fits(needed_bytes: int, device: str, what: str = "this model", free_bytes: int | None = None) -> None:
    """Raise MemoryError, with the estimate and the free memory, if `needed_bytes` will not fit on device.

    `free_bytes` defaults to what free_memory_bytes(device) reads now.
    """
    free = free_memory_bytes(device) if free_bytes is None else free_bytes
    if free is None:
        return
    usable = int(free * USABLE_FRACTION)
    if needed_bytes > usable:
        raise MemoryError(
            f"{what} needs about {format_bytes(needed_bytes)} on {device}, but only {format_bytes(free)} is "
            f"free there ({int(USABLE_FRACTION * 100)}% of it usable: {format_bytes(usable)}). "
            "Choose a smaller growth rate, fewer layers, a smaller input or batch, or a lower-precision dtype."
        )
