"""The analysis benchmark's quick run: one tiny case, measured in fresh processes, as a markdown table."""

import pytest

from densenet_viz.bench import analysis as bench_analysis


@pytest.mark.slow
def test_quick_run_returns_the_table():
    text = bench_analysis.run(quick=True)
    machine, _, *lines = text.splitlines()
    assert machine.startswith("machine: ") and "Python loop" in machine and "matmul" in machine
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[:6] == [
        "model", "input", "batch", "analysis, cold (s)", "torchinfo.summary (s)", "speed-up",
    ]  # fmt: skip
    assert "analysis peak RSS (MiB)" in header and "torchinfo peak RSS (MiB)" in header
    rows = [line for line in lines[2:] if line.startswith("|")]
    assert len(rows) == len(bench_analysis.QUICK) * len(bench_analysis.QUICK_BATCHES)
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert cells[:3] == ["DenseNet-BC (L=100, k=12)", "32x32", "2"]
    assert float(cells[3]) < 1.0 and float(cells[4]) > 0 and cells[5].endswith("x")
    assert "fresh Python process" in text
