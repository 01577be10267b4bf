"""A bounded pool of worker processes for heavy jobs (training, measured trades, big forward passes).

Page threads of one Streamlit process share one interpreter lock; a heavy job there stalls every
session. Here each job runs in a worker process (one torch thread each), identical requests (same
key: config, settings, seed) are computed once and shared by every session waiting on them, a job
nobody waits for any more is cancelled, and one owner (a session) may hold only a few jobs at once.

Job functions live in importable modules (a function defined in a page cannot be pickled) and take a
`progress` keyword: call `progress(fraction, text)` (or with a `partial` result every waiting session
may show), and `progress.check()` often (per batch, per layer) so a cancel stops the CPU at once. A job
that ignores a cancel or overruns its deadline has its worker process terminated and replaced.
No streamlit here: the app layer holds one pool per server process.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import sys
import threading
import time
import types
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from ..analysis.budget import cpu_count
from ..units import MIB, format_bytes

ENV_WORKERS = "DENSENET_VIZ_WORKERS"  # 0: run jobs in a thread of this process (no separate workers)
MAX_PER_OWNER = 3
WORKER_NICENESS = 10  # workers yield the CPU to the server process, which answers every session's sliders
CANCEL_GRACE_S = 1.0  # after a cancel, how long a job may take to notice before its worker is killed
KEEP_FINISHED = 32  # finished jobs kept for late readers; done ones answer identical requests at once
KEEP_FINISHED_BYTES = 128 * MIB  # and no more than this much of their results, once nobody waits for them
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"


class JobCancelled(Exception):
    """Raised inside a job by progress.check() once nobody wants its result (or its deadline passed)."""


class QueueFull(ValueError):
    """An owner asked for more jobs at once than the pool allows."""


class WorkerMemoryError(MemoryError):
    """A job needed more memory than its worker may use; the worker is replaced by a fresh one."""


def _vm_size() -> int:
    """This process's virtual memory size in bytes (what RLIMIT_AS limits)."""
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))


def _limit_memory(allowance: int | None) -> None:
    """Let this process's address space grow by at most `allowance` bytes from now on (Linux; elsewhere nothing)."""
    if not allowance:
        return
    with contextlib.suppress(ImportError, OSError, ValueError, StopIteration):
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = _vm_size() + allowance
        resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))


def _out_of_memory(exc: BaseException) -> bool:
    """Whether an exception says an allocation failed (Python's MemoryError, or torch's CPU allocator)."""
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))


def default_workers() -> int:
    """Workers for this machine: DENSENET_VIZ_WORKERS if set, else all the cores this process may use but one (at
    least one)."""
    text = os.environ.get(ENV_WORKERS, "").strip()
    if text:
        if not text.isdigit() or int(text) > 64:
            raise ValueError(f"{ENV_WORKERS} must be an integer in [0, 64], got {text!r}")
        return int(text)
    # One core stays with the server process, which answers every slider of every session.
    return max(1, cpu_count() - 1)


@dataclass(frozen=True)
class JobStatus:
    """What a waiting session can show: state, place in the queue, progress, partial and final results."""

    state: str
    position: int  # 1 = next to run, while queued; 0 otherwise
    fraction: float
    text: str
    partials: tuple = ()
    result: Any = None
    error: BaseException | None = None
    waiting: int = 0  # sessions waiting on this job (identical requests share it)

    @property
    def finished(self) -> bool:
        """Whether the job will change no more."""
        return self.state in (DONE, FAILED, CANCELLED)


class Progress:
    """Handed to a job function as `progress`: report progress, and check for a cancel."""

    def __init__(self, send: Callable[[tuple], None], cancel: Any) -> None:
        self._send, self._cancel = send, cancel

    def __call__(self, fraction: float, text: str = "", partial: Any = None) -> None:
        """Report progress (fraction in [0, 1]), with an optional partial result; also checks for a cancel."""
        self.check()
        self._send(("progress", min(max(float(fraction), 0.0), 1.0), text, partial))

    def check(self) -> None:
        """Raise JobCancelled if the job was cancelled."""
        if self._cancel.is_set():
            raise JobCancelled


def _worker_main(conn: Any, cancel: Any, threads: int, memory_bytes: int | None = None) -> None:
    """A worker process: set the torch thread count first, then run jobs until told to stop, its memory growth
    limited to `memory_bytes` past what its imports took (a job past it fails, and the pool replaces the worker)."""
    import torch

    from . import tasks  # imported now: what the jobs need counts as the base, not against the limit

    torch.set_num_threads(threads)
    with contextlib.suppress(OSError, AttributeError):  # not every platform lets a process lower its priority
        os.nice(WORKER_NICENESS)
    _limit_memory(memory_bytes)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        fn, args, kwargs = task
        progress = Progress(conn.send, cancel)
        try:
            conn.send(("done", fn(*args, progress=progress, **kwargs)))
        except JobCancelled:
            conn.send(("cancelled",))
        except BaseException as exc:  # every failure goes back to the sessions waiting
            if isinstance(exc, torch.OutOfMemoryError):  # the next job must not meet this one's leftovers
                tasks.release_models()
            elif _out_of_memory(exc):
                exc = WorkerMemoryError(f"it needed more than the {format_bytes(memory_bytes)} a worker may use on "
                                        "this server" if memory_bytes else str(exc))
            try:
                conn.send(("failed", exc))
            except Exception:  # an exception that cannot be pickled: send its text
                conn.send(("failed", RuntimeError(f"{type(exc).__name__}: {exc}")))


def _worker_context() -> Any:
    """Where workers come from: a fork server that has imported torch and the jobs' modules once, so a new or
    replaced worker starts in milliseconds instead of importing torch anew (about 2 CPU-s each). The server is a
    fresh process that never runs a job, so no worker inherits torch's threads or a model; spawn where there is none.
    """
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    context = mp.get_context("forkserver")
    context.set_forkserver_preload([f"{__package__}.tasks"])  # takes effect when the first worker starts it
    return context


@dataclass(eq=False)
class _Job:
    key: Hashable
    fn: Callable
    args: tuple
    kwargs: dict
    deadline_s: float | None
    owners: set = field(default_factory=set)
    state: str = QUEUED
    fraction: float = 0.0
    text: str = "waiting for a free worker"
    partials: list = field(default_factory=list)
    result: Any = None
    error: BaseException | None = None
    unwanted: bool = False  # nobody waits any more: cancel it
    started: float = 0.0  # time.monotonic() when a worker took it
    nbytes: int = 0  # size of the result as it came from the worker (0 when run in a thread)


class _Worker:
    """One worker process (or, with processes=False, the dispatcher's own thread) and its cancel flag."""

    def __init__(self, context: Any, threads: int, processes: bool, memory_bytes: int | None) -> None:
        self.context, self.threads, self.processes, self.memory_bytes = context, threads, processes, memory_bytes
        self.process: Any = None
        self.conn: Any = None
        self.cancel: Any = context.Event() if processes else threading.Event()
        self.job: _Job | None = None  # the job it runs now

    def ensure_started(self) -> None:
        if not self.processes or (self.process is not None and self.process.is_alive()):
            return
        parent, child = self.context.Pipe()
        self.process = self.context.Process(target=_worker_main,
                                            args=(child, self.cancel, self.threads, self.memory_bytes),
                                            daemon=True, name="densenet-viz-worker")
        # A new worker re-imports the parent's __main__; under Streamlit that is whichever page script runs now,
        # which must not run again in a worker. The child only needs this module.
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            self.process.start()
        finally:
            if main is not None:
                sys.modules["__main__"] = main
        child.close()
        self.conn = parent

    def kill(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.join(1.0)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(1.0)
            self.conn.close()
        self.process, self.conn = None, None

    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class JobPool:
    """A bounded pool of workers running keyed jobs, shared by every session of a server process."""

    def __init__(self, workers: int | None = None, threads: int = 1, max_per_owner: int = MAX_PER_OWNER,
                 start_now: bool = True, memory_bytes: int | None = None) -> None:
        workers = default_workers() if workers is None else workers
        if workers < 0 or threads < 1 or max_per_owner < 1:
            raise ValueError(f"need workers >= 0, threads, max_per_owner >= 1; got {workers, threads, max_per_owner}")
        self.processes = workers > 0
        self.max_per_owner = max_per_owner
        context = _worker_context()
        self._workers = [_Worker(context, threads, self.processes, memory_bytes) for _ in range(max(1, workers))]
        self._lock = threading.Condition()
        self._queue: list[_Job] = []
        self._active: dict[Hashable, _Job] = {}
        self._finished: OrderedDict[Hashable, _Job] = OrderedDict()
        self._closed = False
        self._threads = [threading.Thread(target=self._dispatch, args=(w, start_now), daemon=True,
                                          name="densenet-viz-jobs") for w in self._workers]
        for thread in self._threads:
            thread.start()

    @property
    def size(self) -> int:
        """How many jobs run at once."""
        return len(self._workers)

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (empty without processes)."""
        return [pid for w in self._workers if (pid := w.pid()) is not None]

    # ---- what sessions call ------------------------------------------------------------------------

    def submit(self, key: Hashable, fn: Callable, args: tuple = (), kwargs: dict | None = None, owner: Hashable = None,
               deadline_s: float | None = None) -> JobStatus:
        """Ask for the job `key` on behalf of `owner`: join the identical job if one is queued, running or
        done, else queue a new one. Raises QueueFull when the owner already waits on too many jobs."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the job pool is shut down")
            job = self._active.get(key)
            if job is None:
                done = self._finished.get(key)
                if done is not None and done.state == DONE:
                    self._finished.move_to_end(key)
                    return self._status(done)
                held = [j for j in self._active.values() if owner in j.owners]
                if len(held) >= self.max_per_owner:
                    raise QueueFull(
                        f"you already have {len(held)} jobs queued or running (at most {self.max_per_owner} per "
                        "session); wait for one to finish or stop one")
                job = _Job(key, fn, tuple(args), dict(kwargs or {}), deadline_s)
                self._active[key] = job
                self._queue.append(job)
                self._lock.notify_all()
            job.owners.add(owner)
            job.unwanted = False
            return self._status(job)

    def status(self, key: Hashable) -> JobStatus | None:
        """The job's status now (None if the pool does not know the key)."""
        with self._lock:
            job = self._active.get(key) or self._finished.get(key)
            return None if job is None else self._status(job)

    def wait(self, key: Hashable, timeout: float) -> JobStatus | None:
        """The job's status once it has finished or after `timeout` s, whichever comes first (None if unknown).

        Progress reports do not end the wait, so a waiter redraws at its own pace but hears of the end at once.
        """
        with self._lock:
            self._lock.wait_for(lambda: key not in self._active, timeout)
            return self.status(key)  # the pool's lock is reentrant

    def release(self, key: Hashable, owner: Hashable) -> None:
        """`owner` no longer waits for `key`; a job nobody waits for is dropped from the queue or cancelled."""
        with self._lock:
            job = self._active.get(key)
            if job is None:
                done = self._finished.get(key)
                if done is not None and owner in done.owners:
                    done.owners.discard(owner)
                    self._evict()  # a large result is kept only while someone waits for it
                return
            job.owners.discard(owner)
            if job.owners:
                return
            if job.state == QUEUED:
                self._queue.remove(job)
                self._finish(job, CANCELLED, "cancelled: nobody waits for it")
            else:
                job.unwanted = True
                for worker in self._workers:  # tell its worker now, not at the dispatcher's next look
                    if worker.job is job:
                        worker.cancel.set()

    def shutdown(self) -> None:
        """Cancel everything and stop the workers."""
        with self._lock:
            self._closed = True
            for job in list(self._active.values()):
                job.owners.clear()
                job.unwanted = True
            for job in self._queue:
                self._finish(job, CANCELLED, "cancelled: the server is stopping")
            self._queue.clear()
            self._lock.notify_all()
        for worker in self._workers:
            worker.cancel.set()
        for thread in self._threads:
            thread.join(CANCEL_GRACE_S + 2)
        for worker in self._workers:
            worker.kill()

    # ---- inside ------------------------------------------------------------------------------------

    def _status(self, job: _Job) -> JobStatus:
        position = self._queue.index(job) + 1 if job.state == QUEUED else 0
        return JobStatus(job.state, position, job.fraction, job.text, tuple(job.partials), job.result, job.error,
                         len(job.owners))

    def _finish(self, job: _Job, state: str, text: str, result: Any = None, error: BaseException | None = None) -> None:
        """Record the outcome (lock held) and wake every waiter."""
        job.state, job.text, job.result, job.error = state, text, result, error
        job.partials = []  # the result holds everything; a finished job keeps no per-epoch copies
        job.args, job.kwargs = (), {}  # nor its arguments (an uploaded state dict, an image)
        if state == DONE:
            job.fraction = 1.0
        if self._active.get(job.key) is job:
            del self._active[job.key]
        self._finished[job.key] = job
        self._finished.move_to_end(job.key)
        self._evict()
        self._lock.notify_all()

    def _evict(self) -> None:
        """Drop the oldest finished jobs nobody waits for until at most KEEP_FINISHED, KEEP_FINISHED_BYTES remain."""
        total = sum(j.nbytes for j in self._finished.values())
        for key, job in list(self._finished.items()):
            if len(self._finished) <= KEEP_FINISHED and total <= KEEP_FINISHED_BYTES:
                break
            if not job.owners:
                del self._finished[key]
                total -= job.nbytes

    def _dispatch(self, worker: _Worker, start_now: bool) -> None:
        if start_now:  # importing torch takes a worker a second or two; else at its first job
            with contextlib.suppress(Exception):
                worker.ensure_started()
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                job = self._queue.pop(0)
                job.state, job.text = RUNNING, "starting"
                worker.job = job
                worker.cancel.clear()
                self._lock.notify_all()
            try:
                if worker.processes:
                    self._run_in_process(worker, job)
                else:
                    self._run_in_thread(worker, job)
            except Exception as exc:  # e.g. no worker could start: the waiters must hear of it
                with self._lock:
                    if job.state not in (DONE, FAILED, CANCELLED):
                        self._finish(job, FAILED, f"failed: {exc}", error=exc)
            finally:
                worker.job = None

    def _on_message(self, job: _Job, message: tuple) -> None:
        with self._lock:
            kind = message[0]
            if kind == "progress":
                _, job.fraction, job.text, partial = message
                if partial is not None:
                    job.partials.append(partial)
                self._lock.notify_all()
            elif kind == "done":
                self._finish(job, DONE, "done", result=message[1])
            elif kind == "failed":
                self._finish(job, FAILED, f"failed: {message[1]}", error=message[1])
            else:
                self._finish(job, CANCELLED, "cancelled: " + ("deadline passed" if self._overdue(job) else
                                                              "nobody waits for it"))

    @staticmethod
    def _overdue(job: _Job) -> bool:
        return job.deadline_s is not None and time.monotonic() - job.started > job.deadline_s

    def _run_in_process(self, worker: _Worker, job: _Job) -> None:
        worker.ensure_started()
        job.started = time.monotonic()
        cancelled_at = None
        try:
            worker.conn.send((job.fn, job.args, job.kwargs))
            while job.state == RUNNING:
                if worker.conn.poll(0.05):
                    data = worker.conn.recv_bytes()
                    message = pickle.loads(data)
                    job.nbytes = len(data)
                    self._on_message(job, message)
                    continue
                if cancelled_at is None and (job.unwanted or self._overdue(job)):
                    worker.cancel.set()
                    cancelled_at = time.monotonic()
                elif cancelled_at is not None and time.monotonic() - cancelled_at > CANCEL_GRACE_S:
                    # The job did not notice the cancel: stop its CPU use by replacing the worker.
                    worker.kill()
                    with self._lock:
                        self._finish(job, CANCELLED, "cancelled: " + ("deadline passed" if self._overdue(job)
                                                                      else "nobody waits for it"))
                    worker.ensure_started()
            if isinstance(job.error, WorkerMemoryError):  # a fresh worker: the allocator keeps what it grew to
                worker.kill()
                worker.ensure_started()
        except (EOFError, OSError) as exc:  # the worker died (killed, out of memory)
            worker.kill()
            with self._lock:
                if job.state == RUNNING:
                    self._finish(job, FAILED, "failed: the worker process stopped",
                                 error=RuntimeError(f"the worker process stopped ({exc or 'no reply'})"))
            worker.ensure_started()

    def _run_in_thread(self, worker: _Worker, job: _Job) -> None:
        job.started = time.monotonic()
        stop = threading.Event()

        def watch() -> None:  # cooperative only: a thread cannot be killed
            while not stop.wait(0.05):
                if job.unwanted or self._overdue(job):
                    worker.cancel.set()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        progress = Progress(lambda m: self._on_message(job, m), worker.cancel)
        try:
            result = job.fn(*job.args, progress=progress, **job.kwargs)
            self._on_message(job, ("done", result))
        except JobCancelled:
            self._on_message(job, ("cancelled",))
        except Exception as exc:  # every failure goes back to the sessions waiting
            self._on_message(job, ("failed", exc))
        finally:
            stop.set()
