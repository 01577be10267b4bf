"""The one "does it fit" check: refuse work too big for the device before allocating, saying how much it needs."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..cores import CGROUP_ROOT, cpu_count, read_int
from ..units import MIB, format_bytes

__all__ = ["check_fits", "cpu_count", "free_memory_bytes", "job_memory_bytes"]

# Leave room for the app, the allocator's slack and the other sessions sharing the machine.
USABLE_FRACTION = 0.8
_ADVICE = "Choose a smaller growth rate, fewer layers, a smaller input or batch, or a lower-precision dtype."
MEMINFO = Path("/proc/meminfo")
# What one heavy job (a build, a forward pass, a measured trade) may take in a worker on the CPU, so that nothing a
# student asks for grows the server by more than this; a teacher's own machine can allow more.
ENV_JOB_MEMORY = "DENSENET_VIZ_JOB_MEMORY_MIB"
DEFAULT_JOB_MEMORY_MIB = 512
MAX_JOB_MEMORY_MIB = 1024 * 1024
# A forward pass in a worker grew its RSS by about 1.5x what analyze() counts as inference activations (DenseNet-121,
# -161 and -264 at 224 and 1024 pixels: the captured map, the allocator's slack), on top of the weights.
FORWARD_OVERHEAD = 1.6


def job_memory_bytes() -> int:
    """The memory one heavy job may use in a worker: DENSENET_VIZ_JOB_MEMORY_MIB MiB if set, else 512 MiB."""
    text = os.environ.get(ENV_JOB_MEMORY, "").strip()
    if not text:
        return DEFAULT_JOB_MEMORY_MIB * MIB
    if not text.isdigit() or not 64 <= int(text) <= MAX_JOB_MEMORY_MIB:
        raise ValueError(f"{ENV_JOB_MEMORY} must be a whole number of MiB in [64, {MAX_JOB_MEMORY_MIB}], got {text!r}")
    return int(text) * MIB


def cgroup_free_bytes(root: Path = CGROUP_ROOT) -> int | None:
    """What this process's memory cgroup still allows: limit minus usage (v2, else v1); None if unlimited.

    Inside a memory-limited container the host's MemAvailable can be far above the limit: the kernel
    kills a process that crosses the limit, however much the host has free.
    """
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
                                   ("memory.limit_in_bytes", "memory.usage_in_bytes")):
        limit = read_int(root / limit_file)
        # cgroup v1 says "no limit" with a huge number (a page-rounded 2**63 - 1)
        if limit is None or limit >= 2**62:
            continue
        return max(0, limit - (read_int(root / usage_file) or 0))
    return None


def _meminfo_available(meminfo: Path = MEMINFO) -> int | None:
    try:
        with meminfo.open(encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts kB (KiB)
    except OSError:
        return None
    return None


def free_memory_bytes(device: str, cgroup_root: Path = CGROUP_ROOT, meminfo: Path = MEMINFO) -> int | None:
    """Memory free for new tensors on a device: on the CPU the smaller of MemAvailable and what the memory
    cgroup still allows; the driver's count on CUDA/MPS.

    None when the platform does not say (the check then lets the build go ahead).
    """
    kind = torch.device(device).type
    if kind == "cpu":
        known = [n for n in (_meminfo_available(meminfo), cgroup_free_bytes(cgroup_root)) if n is not None]
        return min(known) if known else None
    if kind == "cuda" and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    mps = getattr(torch, "mps", None)
    if kind == "mps" and mps is not None and hasattr(mps, "recommended_max_memory"):
        return int(mps.recommended_max_memory() - mps.current_allocated_memory())
    return None


def check_fits(
    needed_bytes: int,
    device: str,
    what: str = "this model",
    free_bytes: int | None = None,
    budget_bytes: int | None = None,
) -> None:
    """Raise MemoryError, with the estimate and the free memory, if `needed_bytes` will not fit on device.

    `free_bytes` defaults to what free_memory_bytes(device) reads now; USABLE_FRACTION of it is usable.
    `budget_bytes`, if given, caps what is usable further (a job's own budget, e.g. a measurement's).
    """
    free = free_memory_bytes(device) if free_bytes is None else free_bytes
    if budget_bytes is not None and needed_bytes > budget_bytes:
        raise MemoryError(
            f"{what} needs about {format_bytes(needed_bytes)} on {device}, over its budget of "
            f"{format_bytes(budget_bytes)} there. " + _ADVICE
        )
    if free is None:
        return
    usable = int(free * USABLE_FRACTION)
    if needed_bytes > usable:
        raise MemoryError(
            f"{what} needs about {format_bytes(needed_bytes)} on {device}, but only {format_bytes(free)} is "
            f"free there ({int(USABLE_FRACTION * 100)}% of it usable: {format_bytes(usable)}). " + _ADVICE
        )

