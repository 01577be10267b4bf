"""The worker pool: identical jobs shared, queue places, the per-owner limit, failures passed on, and a
cancelled or overdue job that stops using CPU (read from /proc) within a second or two."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pool_jobs as pj
import pytest

from densenet_viz.lab import jobs

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process from /proc (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15 of stat)


def wait_done(pool: jobs.JobPool, key, timeout: float = 120) -> jobs.JobStatus:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status = pool.status(key)
        if status is not None and status.finished:
            return status
        time.sleep(0.05)
    pytest.fail(f"job {key!r} did not finish in {timeout} s")


def wait_running(pool: jobs.JobPool, key, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while pool.status(key).state != jobs.RUNNING:
        assert time.monotonic() < end, f"job {key!r} never started"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def pool():
    p = jobs.JobPool(workers=1, max_per_owner=2)
    yield p
    p.shutdown()


def test_identical_requests_share_one_job_and_its_result(pool):
    first = pool.submit("sq", pj.square, (12,), owner="a")
    second = pool.submit("sq", pj.square, (12,), owner="b")
    assert second.waiting == 2 or second.finished
    done = wait_done(pool, "sq")
    assert done.state == jobs.DONE and done.result == 144
    assert first.state in (jobs.QUEUED, jobs.RUNNING)
    again = pool.submit("sq", pj.square, (999,), owner="c")  # same key: the stored result, not a new run
    assert again.state == jobs.DONE and again.result == 144


def test_queue_places_the_per_owner_limit_and_a_cancel_that_stops_the_cpu(pool):
    pool.submit("busy", pj.spin, (60, True), owner="a")
    wait_running(pool, "busy")
    queued = pool.submit("next", pj.square, (3,), owner="b")
    assert queued.state == jobs.QUEUED and queued.position == 1
    assert pool.submit("later", pj.square, (4,), owner="c").position == 2
    pool.submit("more", pj.square, (5,), owner="a")
    with pytest.raises(jobs.QueueFull, match="at most 2 per session"):
        pool.submit("too many", pj.square, (6,), owner="a")
    pool.release("later", "c")  # nobody else wants it: dropped from the queue
    assert pool.status("later").state == jobs.CANCELLED and pool.status("next").position == 1

    (pid,) = pool.worker_pids()
    time.sleep(1.0)
    before = cpu_seconds(pid)
    time.sleep(2.0)
    assert cpu_seconds(pid) - before > 0.1  # it spins (on a shared machine, a share of a core)
    pool.release("busy", "a")
    assert wait_done(pool, "busy", 5).state == jobs.CANCELLED
    time.sleep(1.0)
    assert wait_done(pool, "next").result == 9  # the worker moved on to the next job
    assert wait_done(pool, "more").result == 25
    pool.release("more", "a")
    idle = cpu_seconds(pid)
    time.sleep(2.0)
    assert pool.worker_pids() == [pid] and cpu_seconds(pid) - idle < 0.05  # the same worker, idle


def test_a_job_that_ignores_its_cancel_loses_its_worker_and_the_pool_goes_on(pool):
    pool.submit("deaf", pj.spin, (120, False), owner="a")
    wait_running(pool, "deaf")
    (pid,) = pool.worker_pids()
    released = time.monotonic()
    pool.release("deaf", "a")
    status = wait_done(pool, "deaf", 10)
    assert status.state == jobs.CANCELLED and time.monotonic() - released < jobs.CANCEL_GRACE_S + 2
    assert cpu_seconds(pid) is None  # terminated: it uses no CPU at all
    pool.submit("after", pj.square, (7,), owner="a")
    assert wait_done(pool, "after").result == 49


def test_an_overdue_job_is_stopped_and_a_failure_reaches_the_waiters(pool):
    pool.submit("slow", pj.spin, (120, True), owner="a", deadline_s=1.0)
    status = wait_done(pool, "slow", 30)
    assert status.state == jobs.CANCELLED and "deadline" in status.text
    pool.submit("bad", pj.fail, owner="a")
    failed = wait_done(pool, "bad")
    assert failed.state == jobs.FAILED and isinstance(failed.error, ValueError) and "no good" in str(failed.error)


def test_a_worker_keeps_its_last_model_and_drops_it_after_an_out_of_memory_error(pool):
    import torch

    from densenet_viz import DenseNetConfig
    from densenet_viz.lab import features as fx
    from densenet_viz.lab import tasks

    config = DenseNetConfig(8, (2, 2), 16, stem="cifar", num_classes=10)
    x = torch.zeros(1, 3, 32, 32)
    for i, spec in enumerate(fx.selectable_layers(config, 32)[:2]):
        pool.submit(("maps", spec.path), tasks.random_feature_map, (config, "cpu", spec.path, x), owner="a")
        view = wait_done(pool, ("maps", spec.path)).result
        assert view.shape == (spec.out_channels, spec.height, spec.width) == view.maps.shape
        assert len(view.stats) == spec.out_channels and view.logits is None
        pool.submit(("kept", i), pj.models_kept, owner="a")
        assert wait_done(pool, ("kept", i)).result == 1  # one model, built once for both layers
    pool.submit("oom", pj.out_of_memory, owner="a")
    failed = wait_done(pool, "oom")
    assert failed.state == jobs.FAILED and isinstance(failed.error, torch.OutOfMemoryError)
    pool.submit(("kept", "after"), pj.models_kept, owner="a")
    assert wait_done(pool, ("kept", "after")).result == 0


def test_without_worker_processes_jobs_run_in_a_thread_and_still_cancel():
    pool = jobs.JobPool(workers=0)
    try:
        assert pool.worker_pids() == []
        pool.submit("sq", pj.square, (5,), owner="a")
        assert wait_done(pool, "sq").result == 25
        pool.submit("spin", pj.spin, (60, True), owner="a")
        wait_running(pool, "spin")
        pool.release("spin", "a")
        assert wait_done(pool, "spin", 5).state == jobs.CANCELLED
    finally:
        pool.shutdown()


def test_the_worker_count_setting(monkeypatch):
    monkeypatch.setenv(jobs.ENV_WORKERS, "3")
    assert jobs.default_workers() == 3
    monkeypatch.setenv(jobs.ENV_WORKERS, "many")
    with pytest.raises(ValueError, match="DENSENET_VIZ_WORKERS must be an integer"):
        jobs.default_workers()
    monkeypatch.delenv(jobs.ENV_WORKERS)
    assert jobs.default_workers() == max(1, (os.cpu_count() or 1) - 1)


def test_a_view_never_waits_behind_an_experiment():
    """The Build and Feature maps pages' jobs have a lane (and a worker) of their own: a class's trainings
    fill the experiment lane, and a student's model build still starts at once."""
    from densenet_viz.app import work

    work.job_pool.clear()  # fresh pools: the experiment lane starts its workers at its first job, the view lane now
    experiments, views = work.job_pool(work.EXPERIMENT), work.job_pool(work.VIEW)
    assert experiments is not views and views.size == 1
    time.sleep(0.5)
    assert experiments.worker_pids() == [] and len(views.worker_pids()) == 1
    for i in range(experiments.size + 1):  # every experiment worker busy, one more queued
        experiments.submit(("long", i), pj.spin, (60, True), owner=f"trainee {i}")
    try:
        views.submit("build", pj.square, (7,), owner="student")
        assert wait_done(views, "build", 30).result == 49
        queued = experiments.status(("long", experiments.size))
        assert queued.state == jobs.QUEUED and queued.position == 1
    finally:
        for i in range(experiments.size + 1):
            experiments.release(("long", i), f"trainee {i}")


def test_one_pool_per_lane_however_the_lane_is_passed(monkeypatch):
    """st.cache_resource keys on the arguments as passed: job_pool(), job_pool("experiment") and
    job_pool(lane="experiment") must still be one pool, or a page would start a second set of workers."""
    from densenet_viz.app import work

    monkeypatch.setenv(jobs.ENV_WORKERS, "0")  # thread pools: nothing to start
    work.job_pool.clear()
    try:
        default = work.job_pool()
        assert default is work.job_pool(work.EXPERIMENT) is work.job_pool("experiment")
        assert default is work.job_pool(lane="experiment") is work.job_pool(lane="".join(["experi", "ment"]))
        assert work.job_pool(work.VIEW) is work.job_pool(lane="view") is not default
        with pytest.raises(ValueError, match="lane must be"):
            work.job_pool("other")
    finally:
        work.job_pool.clear()


def test_loaded_weights_run_in_a_worker_that_keeps_them_and_refuses_a_mismatch(pool):
    import io

    import numpy as np
    import torch

    from densenet_viz import DenseNetConfig, build_model
    from densenet_viz.lab import features as fx
    from densenet_viz.lab import tasks
    from densenet_viz.lab.weights import WeightsFile, WeightsNotHeld, load_weights

    config = DenseNetConfig(8, (2, 2), 16, stem="cifar", num_classes=10)
    torch.manual_seed(3)
    buf = io.BytesIO()
    torch.save(build_model(config).state_dict(), buf)
    source = WeightsFile.from_upload(buf.getvalue(), "small.pth")
    x = torch.randn(1, 3, 32, 32)
    here = load_weights(config, source.state_dict())  # the second method: the same weights, in this process
    by_key = WeightsFile(source.name, source.key)  # what a session sends once the worker holds the bytes
    for i, spec in enumerate(fx.selectable_layers(config, 32)[:2]):
        pool.submit(("loaded", spec.path), tasks.loaded_feature_map, (config, "cpu", source if i == 0 else by_key,
                                                                      spec.path, x), owner="a")
        view = wait_done(pool, ("loaded", spec.path)).result
        expected, expected_logits = fx.compute_feature_map(here, x, config, spec, with_logits=True)
        groups = fx.channel_groups(spec, config.growth_rate)
        np.testing.assert_allclose(view.maps, fx.grid_maps(expected, list(range(len(expected)))), rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(view.stats["mean"], expected.reshape(len(expected), -1).mean(1), rtol=1e-5,
                                   atol=1e-6)
        assert view.summary["channels"].sum() == len(expected) == sum(g.size for g in groups)
        np.testing.assert_allclose(view.logits, expected_logits, rtol=1e-5, atol=1e-6)
    pool.submit("loaded models", pj.weights_loaded, owner="a")
    assert wait_done(pool, "loaded models").result == 1  # loaded once for both layers
    pool.submit("held", pj.weights_held, owner="a")
    assert wait_done(pool, "held").result == 1  # the file's tensors, once
    unknown = WeightsFile("gone.pth", "sha256:" + "0" * 64)  # its key alone, and no worker has it
    pool.submit("gone", tasks.loaded_feature_map, (config, "cpu", unknown, "features.conv0", x), owner="a")
    gone = wait_done(pool, "gone")
    assert gone.state == jobs.FAILED and isinstance(gone.error, WeightsNotHeld)
    other = DenseNetConfig(12, (2, 2), 16, stem="cifar", num_classes=10)
    pool.submit("mismatch", tasks.loaded_feature_map, (other, "cpu", source, "features.conv0", x), owner="a")
    failed = wait_done(pool, "mismatch")
    assert failed.state == jobs.FAILED and isinstance(failed.error, ValueError) and "do not fit" in str(failed.error)


def test_a_job_past_the_workers_memory_limit_fails_with_a_message_and_gets_a_fresh_worker():
    limit = 256 * 2**20
    pool = jobs.JobPool(workers=1, memory_bytes=limit)
    try:
        pool.submit("within", pj.allocate, (64 * 2**20,), owner="a")
        assert wait_done(pool, "within").result == 64 * 2**20
        before = pool.worker_pids()
        pool.submit("past", pj.allocate, (4 * limit,), owner="a")
        failed = wait_done(pool, "past")
        assert failed.state == jobs.FAILED and isinstance(failed.error, MemoryError)
        assert "256.0 MiB a worker may use" in str(failed.error)
        pool.submit("after", pj.square, (3,), owner="a")  # the pool goes on, with a new worker
        assert wait_done(pool, "after").result == 9
        assert pool.worker_pids() and pool.worker_pids() != before
    finally:
        pool.shutdown()


def test_a_result_too_large_to_keep_reaches_its_waiter_and_goes_once_released(pool):
    size = jobs.KEEP_FINISHED_BYTES + 2**20
    pool.submit("large", pj.big_result, (size,), owner="a")
    done = wait_done(pool, "large")
    assert done.state == jobs.DONE and len(done.result) == size
    pool.submit("small", pj.square, (4,), owner="b")  # another job finishing does not drop one still waited for
    assert wait_done(pool, "small").result == 16 and pool.status("large") is not None
    pool.release("large", "a")
    assert pool.status("large") is None
    assert pool.status("small").result == 16  # a small result stays for identical requests


def test_a_jobs_progress_text_quoting_a_file_name_shows_as_plain_text():
    """A loaded-weights job says the file's name while it runs; the progress bar renders Markdown, so a name that is
    an image link must reach it escaped (on a slow machine the bar is on screen long enough for a fetch)."""
    import torch
    from apptest_helpers import shown

    from densenet_viz import DenseNetConfig
    from densenet_viz.app import work
    from densenet_viz.lab import tasks
    from densenet_viz.lab.weights import WeightsFile
    from densenet_viz.markup import outside_references

    name = "![w](http://198.51.100.7/w.png).pth"
    said: list[str] = []

    def progress(fraction: float, text: str = "", partial: object = None) -> None:
        said.append(text)

    progress.check = lambda: None  # type: ignore[attr-defined]
    broken = WeightsFile.from_upload(b"not a state dict", name)
    config = DenseNetConfig(8, (2, 2), 16, stem="cifar", num_classes=10)
    with pytest.raises(ValueError):
        tasks.loaded_feature_map(config, "cpu", broken, "features.conv0", torch.zeros(1, 3, 32, 32), progress=progress)
    assert name in said[0]
    label = work._label(jobs.JobStatus(jobs.RUNNING, 0, 0.0, said[0]), "Loading the weights", workers=1)
    assert outside_references(label) == [] and "](" not in label
    assert shown(label).replace("\N{WORD JOINER}", "") == f"Loading the weights: {said[0]}"
