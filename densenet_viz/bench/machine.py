"""The machine a benchmark ran on, as a reader needs it to compare tables from different machines.

Machines differ about 3x in speed per core; a table is judged by ratios measured in one run, and this line
says how fast the machine was: its CPU model, the cores this process may use, a fixed pure-Python loop and a
fixed torch matrix product, each timed here (best of three).
"""

from __future__ import annotations

import functools
import os
import platform
import time

LOOP_N = 10_000_000  # additions in the pure-Python loop
MATMUL_N, MATMUL_REPEATS = 512, 20  # 20 products of two float32 512x512 matrices, one thread


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what platform knows)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _best_of(runs: int, fn) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


LOOP = compile(f"total = 0\nfor i in range({LOOP_N}):\n    total += i\n", "<loop>", "exec")


def python_loop_seconds() -> float:
    """Seconds for a pure-Python loop of 10^7 additions written at module level, as a script's loop is (best of
    three)."""
    return _best_of(3, lambda: exec(LOOP, {}))


def matmul_seconds() -> float:
    """Seconds for 20 float32 512x512 matrix products on one torch thread (best of three)."""
    import torch

    a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _best_of(3, lambda: [a @ b for _ in range(MATMUL_REPEATS)])
    finally:
        torch.set_num_threads(threads)


@functools.lru_cache(maxsize=1)
def machine_line() -> str:
    """One line: CPU model, usable cores, the Python loop and the torch matmul in seconds."""
    from ..analysis.budget import cpu_count

    return (f"machine: {cpu_model()}, {cpu_count()} usable core(s) of {os.cpu_count()}; 10^7-addition Python loop "
            f"{python_loop_seconds():.2f} s; 20 float32 512² matmuls on one thread {matmul_seconds():.3f} s")
