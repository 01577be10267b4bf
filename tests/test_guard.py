"""Refusing a model too big for the device, with its estimated memory."""

from pathlib import Path

import pytest

from densenet_viz.analysis.budget import ENV_JOB_MEMORY, check_fits, free_memory_bytes, job_memory_bytes


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="no /proc/meminfo: not Linux")
def test_cpu_free_memory_is_what_the_kernel_says_is_available_or_less():
    lines = Path("/proc/meminfo").read_text().splitlines()
    available = int(next(line for line in lines if line.startswith("MemAvailable:")).split()[1]) * 1024
    free = free_memory_bytes("cpu")
    assert free is not None and 0 < free <= available * 1.1  # read a moment apart; a cgroup limit only lowers it


def test_the_memory_one_job_may_use_and_its_setting(monkeypatch):
    monkeypatch.delenv(ENV_JOB_MEMORY, raising=False)
    assert job_memory_bytes() == 512 * 2**20
    monkeypatch.setenv(ENV_JOB_MEMORY, "2048")
    assert job_memory_bytes() == 2**31
    for bad in ("lots", "-1", "16", "1.5"):
        monkeypatch.setenv(ENV_JOB_MEMORY, bad)
        with pytest.raises(ValueError, match="DENSENET_VIZ_JOB_MEMORY_MIB must be a whole number of MiB in"):
            job_memory_bytes()


def test_a_model_over_the_budget_is_refused_with_both_numbers():
    with pytest.raises(MemoryError, match=r"needs about 8\.0 GiB on cpu, but only 1\.0 GiB is free"):
        check_fits(8 * 2**30, "cpu", free_bytes=2**30)
    check_fits(100 * 2**20, "cpu", free_bytes=2**30)  # fits: no error


def test_unknown_free_memory_lets_the_build_go_ahead(monkeypatch):
    monkeypatch.setattr("densenet_viz.analysis.budget.free_memory_bytes", lambda device: None)
    check_fits(10**18, "cpu")  # the platform does not say: no refusal


def _fake_cgroup(root, files: dict[str, str]):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _meminfo(path, available_kib: int):
    path.write_text(f"MemTotal:       {4 * available_kib} kB\nMemAvailable:   {available_kib} kB\n")
    return path


def test_a_cgroup_v2_limit_caps_the_free_memory(tmp_path):
    # The host says 64 GiB available, the container may use 2 GiB and already uses 512 MiB: 1.5 GiB is free.
    meminfo = _meminfo(tmp_path / "meminfo", 64 * 2**20)
    root = _fake_cgroup(tmp_path / "cg", {"memory.max": f"{2 * 2**30}\n", "memory.current": f"{2**29}\n"})
    assert free_memory_bytes("cpu", cgroup_root=root, meminfo=meminfo) == 3 * 2**29
    with pytest.raises(MemoryError, match=r"only 1\.5 GiB is free"):
        check_fits(2 * 2**30, "cpu", free_bytes=free_memory_bytes("cpu", cgroup_root=root, meminfo=meminfo))


def test_a_cgroup_v1_limit_caps_the_free_memory(tmp_path):
    meminfo = _meminfo(tmp_path / "meminfo", 64 * 2**20)
    root = _fake_cgroup(tmp_path / "cg", {"memory/memory.limit_in_bytes": str(2**30),
                                          "memory/memory.usage_in_bytes": str(2**28)})
    assert free_memory_bytes("cpu", cgroup_root=root, meminfo=meminfo) == 3 * 2**28


def test_an_unlimited_cgroup_leaves_memavailable_in_charge(tmp_path):
    meminfo = _meminfo(tmp_path / "meminfo", 2**20)  # 1 GiB available on the host
    v2 = _fake_cgroup(tmp_path / "v2", {"memory.max": "max\n", "memory.current": "123\n"})
    v1 = _fake_cgroup(tmp_path / "v1", {"memory.limit_in_bytes": "9223372036854771712\n"})  # v1's "no limit"
    for root in (v2, v1, tmp_path / "none"):
        assert free_memory_bytes("cpu", cgroup_root=root, meminfo=meminfo) == 2**30
    # and a container limit above what the host has left does not raise the figure
    big = _fake_cgroup(tmp_path / "big", {"memory.max": str(2**40), "memory.current": "0"})
    assert free_memory_bytes("cpu", cgroup_root=big, meminfo=meminfo) == 2**30


def test_the_cores_a_pool_is_sized_for_honour_the_cgroup_cpu_quota(tmp_path):
    import os

    from densenet_viz.analysis.budget import cpu_count

    mine = len(os.sched_getaffinity(0))
    assert cpu_count(tmp_path / "none") == mine  # no cgroup files: the CPU affinity
    assert cpu_count(_fake_cgroup(tmp_path / "v2", {"cpu.max": "max 100000\n"})) == mine  # no quota
    assert cpu_count(_fake_cgroup(tmp_path / "v2q", {"cpu.max": "150000 100000\n"})) == min(mine, 2)  # 1.5 -> 2
    assert cpu_count(_fake_cgroup(tmp_path / "v1", {"cpu/cpu.cfs_quota_us": "100000\n",
                                                   "cpu/cpu.cfs_period_us": "100000\n"})) == 1
    assert cpu_count(_fake_cgroup(tmp_path / "v1n", {"cpu/cpu.cfs_quota_us": "-1\n",
                                                    "cpu/cpu.cfs_period_us": "100000\n"})) == mine
