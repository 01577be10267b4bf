"""Heavy work as the pages see it: one worker pool per server process, the compute budget, and a wait that
shows every waiting session its place in the queue and the job's progress.

A page asks `run_job(key, fn, args)`: identical keys (same config, settings and seed) share one job. The
wait ends with the result, or with a message on the page (refused, failed, cancelled); a rerun, a Stop
press or the session closing interrupts the wait and releases the job, and a job nobody waits for is
cancelled in its worker.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Hashable
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from .. import markup
from ..analysis import budget, cost
from ..lab import jobs
from ..units import MIB

POLL_S = 0.25  # how often a waiting page redraws its progress (and notices a Stop or a rerun)
START_ALLOWANCE_S = 10.0  # a replaced worker imports torch again before its job starts


_frozen = False


def freeze_heap() -> None:
    """Once per process, after the heavy imports: move every object alive now out of the cyclic collector's way.

    A full collection (Python's own, now and then; Streamlit's `runner.postScriptGC` after every rerun, which
    .streamlit/config.toml switches off) over the objects of torch, pandas and plotly took ~0.15 s here. Frozen
    objects are never traversed again (they are freed as usual when their count drops), so a collection only
    walks what the sessions made.
    """
    global _frozen
    if _frozen:
        return
    import graphviz  # noqa: F401 - imported for its objects' sake: the pages need them, freeze them now
    import plotly.graph_objects  # noqa: F401

    from ..viz import charts, feature_charts, graphs, series  # noqa: F401

    gc.collect()
    gc.freeze()
    _frozen = True


VIEW, EXPERIMENT = "view", "experiment"  # the pool's two lanes
QUICK_VIEW_S = 1.0  # a view estimated above this runs on the experiment lane: the view lane stays quick for everyone


@st.cache_resource(max_entries=2, show_spinner=False, on_release=lambda pool: pool.shutdown())  # one per lane
def _lane_pool(lane: str) -> jobs.JobPool:
    workers = jobs.default_workers()
    # Twice a job's memory budget: the estimates that refuse bigger jobs up front are within 1.5x; past this limit a
    # worker's allocation fails and the pool replaces it, whatever a job did.
    memory = 2 * job_memory()
    if lane == EXPERIMENT:
        return jobs.JobPool(workers, start_now=False, memory_bytes=memory)
    return jobs.JobPool(min(1, workers), memory_bytes=memory)


def job_pool(lane: str = EXPERIMENT) -> jobs.JobPool:
    """The server's workers for one lane: EXPERIMENT (training, the measured trade) has DENSENET_VIZ_WORKERS of
    them (default: all cores but one), started at their first job (a training takes far longer than the start);
    VIEW (a page's model build, its feature maps) has one of its own, started now, so a student's view never
    waits for a worker to start nor queues behind a class's trainings (each view is bounded by the budget)."""
    if lane not in (VIEW, EXPERIMENT):
        raise ValueError(f"lane must be {VIEW!r} or {EXPERIMENT!r}, got {lane!r}")
    # st.cache_resource keys on the arguments as passed: job_pool() and job_pool(lane="experiment") would be two
    # pools. The lane goes on positionally, as one of the two constants, so each lane has exactly one.
    return _lane_pool(VIEW if lane == VIEW else EXPERIMENT)


job_pool.clear = _lane_pool.clear  # shut every lane's workers down (tests start fresh pools with it)


def start_pools() -> None:
    """Start both lanes' workers now: each imports torch, which takes a few seconds."""
    for lane in (VIEW, EXPERIMENT):
        job_pool(lane)


CALIBRATION_DELAY_S = 5.0  # let the first page of a fresh server finish before timing the references
_calibrated: list[cost.Calibration] = []
_calibration_started = threading.Lock()


def _calibrate_later() -> None:
    _calibrated.append(cost.calibrate(repeats=3))


def calibration() -> cost.Calibration:
    """This server's speed against the cost model. Measured once per process in the background (about 0.5 s of
    CPU, a few seconds after the first heavy view asks); until then the fitted weights as they are, which on
    the machines tried so far over-estimate by up to 1.8x (so a refusal errs on the safe side)."""
    if _calibrated:
        return _calibrated[0]
    if _calibration_started.acquire(blocking=False):  # the first caller starts it; the lock is never released
        timer = threading.Timer(CALIBRATION_DELAY_S, _calibrate_later)
        timer.daemon = True
        timer.start()
    return cost.Calibration()


def budget_s() -> float:
    """The compute budget per heavy view (DENSENET_VIZ_BUDGET_S); a bad setting falls back to the default."""
    try:
        return cost.budget_seconds()
    except ValueError as exc:
        st.warning(f"{markup.message(exc)}; using the default budget of {cost.DEFAULT_BUDGET_S:g} s.")
        return cost.DEFAULT_BUDGET_S


def job_memory() -> int:
    """The memory one heavy job may use (DENSENET_VIZ_JOB_MEMORY_MIB); a bad setting falls back to the default."""
    try:
        return budget.job_memory_bytes()
    except ValueError as exc:
        st.warning(f"{markup.message(exc)}; using the default of {budget.DEFAULT_JOB_MEMORY_MIB} MiB.")
        return budget.DEFAULT_JOB_MEMORY_MIB * MIB


def view_lane(estimate_s: float) -> str:
    """The lane a view estimated at estimate_s seconds runs on: VIEW when quick, else EXPERIMENT."""
    return VIEW if estimate_s <= QUICK_VIEW_S else EXPERIMENT


def deadline_s(estimate_s: float) -> float:
    """How long a job estimated at estimate_s may run before its worker is stopped (the estimate may be 2x off)."""
    return 2 * max(estimate_s, budget_s()) + START_ALLOWANCE_S


def refuse_over_budget(seconds: float, what: str, advice: str) -> None:
    """Stop the page with st.error, before anything runs, when `seconds` is over the compute budget."""
    try:
        cost.check_budget(seconds, what, advice, budget_s())
    except cost.OverBudget as exc:
        st.error(f"Not computed: {markup.message(exc)}")
        st.stop()


def _owner() -> Hashable:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "no-session"


def _label(status: jobs.JobStatus, what: str, workers: int) -> str:
    shared = f" · shared by {status.waiting} sessions" if status.waiting > 1 else ""
    if status.state == jobs.QUEUED:
        ahead = status.position - 1
        return (f"{what}: queued, {ahead} job(s) ahead of it on {workers} worker(s); it starts when one is free"
                f"{shared}")
    # A job's text may quote a student's file name; a progress label renders Markdown (an image there is fetched).
    return f"{what}: {markup.message(status.text)}{shared}"


def run_job(key: Hashable, fn: Callable, args: tuple, what: str, deadline: float | None = None,
            on_partial: Callable[[Any], None] | None = None, lane: str = EXPERIMENT) -> Any | None:
    """Run (or join) the job `key` in a lane of the pool and wait for it, showing its queue place and progress;
    its result, or None after saying on the page why there is none. on_partial gets each partial result in
    order."""
    pool, owner = job_pool(lane), _owner()
    try:
        status = pool.submit(key, fn, args, owner=owner, deadline_s=deadline)
    except jobs.QueueFull as exc:
        st.warning(f"Not started: {markup.message(exc)}.")
        return None
    bar = st.progress(0.0, text=_label(status, what, pool.size))
    seen = 0
    try:
        while True:
            if on_partial is not None:
                for partial in status.partials[seen:]:
                    on_partial(partial)
                seen = max(seen, len(status.partials))
            if status.finished:
                break
            bar.progress(status.fraction, text=_label(status, what, pool.size))  # also where a Stop lands
            # Progress at a fixed cadence, not a wake-up per change: a job reports every batch, and thirty
            # sessions redrawing at that rate would take the server's core from everyone else. The end of
            # the job wakes the wait at once.
            status = pool.wait(key, POLL_S) or status
    finally:
        pool.release(key, owner)  # a rerun, Stop or a closed session ends up here too
        bar.empty()
    if status.state == jobs.DONE:
        return status.result
    if isinstance(status.error, MemoryError):
        st.error(f"Not computed: {what} ran out of memory: {markup.message(status.error)}. Choose a smaller input "
                 "size, batch or model.")
        return None
    if status.state == jobs.FAILED:
        raise status.error if status.error is not None else RuntimeError(status.text)
    st.warning(f"{what} was {markup.message(status.text)}.")
    return None


def forward_cost(config: Any, input_size: int, build: bool) -> float:
    """Estimated seconds of one image through the model (float32, batch 1), plus its build if `build`."""
    calib = calibration()
    seconds = cost.forward_seconds(config, input_size, 1, calibration=calib)
    return seconds + (cost.build_seconds(config, calib) if build else 0.0)


def build_cost(config: Any) -> float:
    """Estimated seconds to build the model (its weight initialisers)."""
    return cost.build_seconds(config, calibration())


FORWARD_ADVICE = "Choose a smaller input size, fewer layers per block or a smaller growth rate."
