"""Refusing a model too big for the device, with its estimated memory."""

import pytest

from densenet_viz.analysis.budget import check_fits, free_memory_bytes


def test_cpu_free_memory_is_read_from_meminfo():
    free = free_memory_bytes("cpu")
    assert free is None or free > 0


def test_a_model_over_the_budget_is_refused_with_both_numbers():
    with pytest.raises(MemoryError, match=r"needs about 8\.0 GiB on cpu, but only 1\.0 GiB is free"):
        check_fits(8 * 2**30, "cpu", free_bytes=2**30)
    check_fits(100 * 2**20, "cpu", free_bytes=2**30)  # fits: no error


def test_unknown_free_memory_lets_the_build_go_ahead(monkeypatch):
    monkeypatch.setattr("densenet_viz.analysis.budget.free_memory_bytes", lambda device: None)
    check_fits(10**18, "cpu")  # the platform does not say: no refusal
