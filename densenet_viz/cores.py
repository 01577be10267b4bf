"""The cores this process may use: one rule for the worker pools, `make serve` and the benchmarks.

Standard library only, so that deploy/serve.py (a supervisor that must not import torch) loads this file by its
path and sizes the replicas by the same rule.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def read_int(path: Path) -> int | None:
    """An integer file of the kernel's (None if absent, unreadable or 'max')."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def cpu_count(root: Path = CGROUP_ROOT) -> int:
    """The cores this process may use: its CPU affinity, capped by its cgroup's CPU quota (v2 `cpu.max`, else v1
    `cpu.cfs_quota_us`), rounded up; at least 1.

    os.cpu_count() is the host's count: a pod limited to 2 CPUs on a 64-core node would size a pool for 64.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota_text, period_text = (root / "cpu.max").read_text(encoding="ascii").split()[:2]
        quota, period = (int(quota_text) if quota_text.isdigit() else None), int(period_text)
    except (OSError, ValueError):
        quota = read_int(root / "cpu" / "cpu.cfs_quota_us") or read_int(root / "cpu.cfs_quota_us")  # -1: none
        period = read_int(root / "cpu" / "cpu.cfs_period_us") or read_int(root / "cpu.cfs_period_us")
    if quota and period:
        cores = min(cores, math.ceil(quota / period))
    return max(1, cores)
