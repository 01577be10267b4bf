"""Benchmark: the closed-form analysis against torchinfo.summary, each in a fresh process (time, peak RSS).

`python -m densenet_viz.bench analysis [--quick]` prints the table. Every measurement runs in its own
subprocess so that its peak RSS (`ru_maxrss`) is its own and no cache or warm allocator carries over.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ..units import MIB

FULL = [("densenet121", 224), ("densenet201", 224), ("densenet264", 224)]
QUICK = [("densenet_bc_100_12", 32)]
FULL_BATCHES = (1, 64)
QUICK_BATCHES = (2,)
COLD_REPEATS = 5  # cold-cache analyses per process; the table gives the median and the first
TORCHINFO_REPEATS, TORCHINFO_BUDGET_S = 3, 20.0


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _analysis_worker(name: str, size: int, batch: int) -> dict[str, float]:
    from densenet_viz import PRESETS
    from densenet_viz.analysis import closed_form as analysis

    imported_rss = _peak_rss()
    times = []
    for _ in range(COLD_REPEATS):
        analysis.clear_cache()
        start = time.perf_counter()
        report = analysis.analyze(PRESETS[name], size, batch)
        times.append(time.perf_counter() - start)
    return {
        "first_s": times[0],
        "median_s": statistics.median(times),
        "rss": _peak_rss(),
        "imported_rss": imported_rss,
        "saved_bytes": report.memory.train_plain_bytes,
    }


def _torchinfo_worker(name: str, size: int, batch: int) -> dict[str, float]:
    import torchinfo

    from densenet_viz import PRESETS, build_model

    imported_rss = _peak_rss()
    config = PRESETS[name]
    model = build_model(config)  # real weights on the CPU: torchinfo runs the real forward pass
    times: list[float] = []
    # The best of a few calls, so that a neighbour's load on a shared machine flatters torchinfo, not us.
    while len(times) < TORCHINFO_REPEATS and sum(times) < TORCHINFO_BUDGET_S:
        start = time.perf_counter()
        stats = torchinfo.summary(model, input_size=(batch, config.in_channels, size, size), device="cpu", verbose=0)
        times.append(time.perf_counter() - start)
    return {
        "first_s": times[0],
        "median_s": min(times),
        "rss": _peak_rss(),
        "imported_rss": imported_rss,
        "saved_bytes": stats.total_output_bytes,  # torchinfo's "Forward/backward pass size"
    }


def _measure(tool: str, name: str, size: int, batch: int) -> dict[str, float]:
    """Run one worker in a fresh interpreter and return its JSON."""
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "densenet_viz.bench.analysis", tool, name, str(size), str(batch)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> str:
    """Time the analysis and torchinfo.summary for each case; return a markdown table."""
    from ..models.config import PRESET_TITLES
    from .machine import machine_line
    from .tables import markdown_table

    cases, batches = (QUICK, QUICK_BATCHES) if quick else (FULL, FULL_BATCHES)
    headers = ["model", "input", "batch", "analysis, cold (s)", "torchinfo.summary (s)", "speed-up",
               "analysis peak RSS (MiB)", "torchinfo peak RSS (MiB)", "saved for backward (MiB)",
               "torchinfo F/B pass size (MB)"]
    rows = []
    baseline, load = None, os.getloadavg()
    for name, size in cases:
        for batch in batches:
            ours = _measure("analysis", name, size, batch)
            theirs = _measure("torchinfo", name, size, batch)
            baseline = baseline or ours["imported_rss"]
            cold = max(ours["first_s"], ours["median_s"])
            rows.append([
                PRESET_TITLES[name], f"{size}x{size}", str(batch), f"{cold:.4f}", f"{theirs['median_s']:.2f}",
                f"{theirs['median_s'] / cold:,.0f}x", f"{ours['rss'] / MIB:,.0f}", f"{theirs['rss'] / MIB:,.0f}",
                f"{ours['saved_bytes'] / MIB:,.1f}", f"{theirs['saved_bytes'] / 1e6:,.1f}",
            ])
    lines = [machine_line(), "", markdown_table(headers, rows)]
    lines.append("")
    lines.append(
        f"Each cell is its own fresh Python process. Analysis: the slower of the first call and the median of "
        f"{COLD_REPEATS} calls with the cache cleared. torchinfo: the fastest of up to {TORCHINFO_REPEATS} "
        f"`summary` calls (until {TORCHINFO_BUDGET_S:.0f} s are spent) with real CPU tensors, model construction not "
        f"timed. Importing torch, pandas and densenet_viz alone peaks at {baseline / MIB:,.0f} MiB RSS. "
        f"{os.cpu_count()} CPUs, load average {load[0]:.1f} at the start and {os.getloadavg()[0]:.1f} at the end."
    )
    return "\n".join(lines)


def _main(argv: list[str]) -> None:
    tool, name, size, batch = argv
    worker = {"analysis": _analysis_worker, "torchinfo": _torchinfo_worker}[tool]
    print(json.dumps(worker(name, int(size), int(batch))))  # the parent reads this line


if __name__ == "__main__":
    _main(sys.argv[1:])
