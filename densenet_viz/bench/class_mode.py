"""Benchmark of class mode: a teacher's projector and N students' phones on the Class page, over Streamlit's own
websocket protocol (`python -m densenet_viz.bench classroom --class-mode [--students N ...]`).

The bench starts a class in the store the server uses (`--store`, default $DENSENET_VIZ_STORE or the
SQLite file), opens the teacher's link, then N students arrive within `--arrival` s on the student link
(each joins anonymously) and keep polling as their browser would (the page's fragment asks for a rerun
every POLL_S). Each student sends one answer at a moment uniform within `--answer-window` s; then everyone
keeps polling `--poll-seconds` more, while the server's CPU is measured: the refresh cost per student.

Send → teacher: the teacher's screen shows "n of N students answered"; the j-th answer sent (in sending
order) counts as seen when the teacher's screen first shows n ≥ j. With `--url` the bench drives a running
deployment (`make serve`, two replicas: students spread over them by the balancer's cookie) and reports CPU
only when `--serve-state` names the serve.py state directory (its replicas.json lists the replica pids).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from ..classroom import store as cs
from .machine import machine_line
from .stream import FINISHED, ForwardMsg, Session, WidgetState, run_sync, user_key_from_element_id
from .tables import markdown_table, percentile

PAGE = "classroom"
LESSON = "01-channels-into-a-layer"  # step 1 asks a number (256)
SEND_KEY = "class_send"
COUNT = re.compile(r"(\d+) of (\d+) students answered")
POLL_S = 1.0  # the app's poll (app/classroom.py POLL_S); the fragment's auto_rerun message says it too
# The capacity budget of a process (one core for every session's page work): a class polling must leave at
# least half of it for the reruns students cause, so 120 students may cost 0.5 core, 4.2 ms per student per s.
BUDGET_STUDENTS, BUDGET_CORE_SHARE = 120, 0.5
BUDGET_MS = 1000 * BUDGET_CORE_SHARE / BUDGET_STUDENTS
FRAGMENT_OF: dict[int, dict[str, str]] = {}  # id(session) -> {widget key: the fragment that drew it}
SENT_SHOWN: dict[int, asyncio.Event] = {}  # id(session) -> set when the page shows "Sent: ..."


def add_arguments(group: argparse._ArgumentGroup) -> None:
    """Class mode's options, in the classroom group."""
    group.add_argument("--class-mode", action="store_true",
                       help="class mode: a teacher and --students students polling the Class page and answering")
    group.add_argument("--answer-window", type=float, default=10.0,
                       help="with --class-mode: every student answers within this many s (default 10)")
    group.add_argument("--poll-seconds", type=float, default=10.0,
                       help="with --class-mode: everyone keeps polling this long after the answers (CPU measured)")
    group.add_argument("--store", default=None,
                       help="with --class-mode: the class store the server uses (redis://..., sqlite:///path; "
                            "default $DENSENET_VIZ_STORE, else a fresh SQLite file for a server the bench starts)")
    group.add_argument("--serve-state", type=Path, default=None,
                       help="with --class-mode --url: serve.py's state directory, to measure its replicas' CPU")


@dataclass
class ClassOptions:
    """One class-mode run."""

    students: int = 120
    arrival: float = 10.0
    answer_window: float = 10.0
    poll_seconds: float = 10.0
    url: str | None = None
    store: str | None = None
    serve_state: Path | None = None
    seed: int = 0
    timeout: float = 120.0


@dataclass
class Observed:
    """What the run saw: the moments answers were sent, what the teacher's screen showed when, CPU and polls."""

    sends: list[float] = field(default_factory=list)
    teacher: list[tuple[float, int]] = field(default_factory=list)  # (time, students answered on the screen)
    polls: int = 0
    failed: int = 0
    send_reruns: list[float] = field(default_factory=list)  # Send → the student's own page finished
    exceptions: list[str] = field(default_factory=list)


def _on_message(session: Session, raw: bytes, seen: Observed | None = None) -> int | None:
    """Handle one ForwardMsg as the browser would; the finish status of a run, if it finished one."""
    msg = ForwardMsg()
    msg.ParseFromString(raw)
    kind = msg.WhichOneof("type")
    if kind == "delta" and msg.delta.HasField("new_element"):
        element = msg.delta.new_element
        which = element.WhichOneof("type")
        body = getattr(element, which, None) if which else None
        element_id = getattr(body, "id", "") if body is not None else ""
        if isinstance(element_id, str) and element_id and user_key_from_element_id(element_id):
            key = user_key_from_element_id(element_id)
            session.widget_ids[key] = element_id
            FRAGMENT_OF.setdefault(id(session), {})[key] = msg.delta.fragment_id
        if which == "alert" and element.alert.body.startswith("Sent:"):
            SENT_SHOWN.get(id(session), asyncio.Event()).set()
        if which == "markdown" and seen is not None:
            found = COUNT.search(element.markdown.body)
            if found:
                seen.teacher.append((time.perf_counter(), int(found.group(1))))
        elif which == "exception" and seen is not None:
            seen.exceptions.append(f"{element.exception.type}: {element.exception.message}"[:300])
    elif kind == "script_finished":
        return msg.script_finished
    else:
        session.note_page(msg)
    return None


class _Reader:
    """Reads one session's messages in the background, as the browser does, noting when a full run finishes."""

    def __init__(self, session: Session, seen: Observed | None) -> None:
        self.session, self.seen = session, seen
        self.finished = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                status = _on_message(self.session, await self.session.ws.recv(), self.seen)
                if status in FINISHED:
                    self.finished.set()
        except Exception:  # the socket closed: the session is over
            self.finished.set()

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def _poll_until(session: Session, end: float, counts: Observed, stop: asyncio.Event | None = None) -> None:
    """Ask for the page's polling fragment every interval it asked for, until `end` (or `stop`), as a browser tab
    does: without waiting for the last one (a fragment run the server drops while another run goes on is missed)."""
    due = time.perf_counter() + min(session.fragments.values(), default=POLL_S)
    while due <= end and not (stop is not None and stop.is_set()):
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        for fragment in list(session.fragments):
            await session.send(PAGE, fragment_id=fragment)
            counts.polls += 1
        due += min(session.fragments.values(), default=POLL_S)


async def _teacher(url: str, query: str, stop: asyncio.Event, seen: Observed, opts: ClassOptions) -> None:
    session = await Session.open(url, query, timeout=opts.timeout)
    reader = _Reader(session, seen)
    try:
        await session.send(PAGE)
        await asyncio.wait_for(reader.finished.wait(), opts.timeout)
        await _poll_until(session, float("inf"), seen, stop)
    finally:
        await reader.close()
        await session.close()


async def _student(url: str, code: str, index: int, delay: float, answer_at: float, end: float, seen: Observed,
                   opts: ClassOptions) -> None:
    await asyncio.sleep(delay)
    try:
        session = await Session.open(url, f"class={code}", timeout=opts.timeout)
    except (OSError, TimeoutError):
        seen.failed += 1
        return
    reader = _Reader(session, None)
    SENT_SHOWN[id(session)] = shown = asyncio.Event()
    try:
        await session.send(PAGE)  # joins: the URL gains &me=<anonymous id>
        key = f"class_answer_{code}_0"
        with suppress(TimeoutError):
            await asyncio.wait_for(reader.finished.wait(), opts.timeout)
        if key not in session.widget_ids:
            seen.failed += 1
            return
        await _poll_until(session, answer_at, seen)
        state = WidgetState()
        state.double_value = 200.0 + index % 100  # a spread of predictions around the answer
        session.set_widget(key, state)
        sent = time.perf_counter()
        seen.sends.append(sent)
        # Send sits in the answer box's fragment: the browser reruns only that fragment, and so does this.
        await session.send(PAGE, press=SEND_KEY, fragment_id=FRAGMENT_OF.get(id(session), {}).get(SEND_KEY, ""),
                           auto=False)
        try:
            await asyncio.wait_for(shown.wait(), opts.timeout)
            seen.send_reruns.append(time.perf_counter() - sent)
        except TimeoutError:
            seen.failed += 1
        await _poll_until(session, end, seen)
    finally:
        await reader.close()
        await session.close()
        FRAGMENT_OF.pop(id(session), None)
        SENT_SHOWN.pop(id(session), None)


def latencies(sends: list[float], screen: list[tuple[float, int]]) -> list[float]:
    """Seconds from the j-th answer sent until the teacher's screen first showed at least j answers."""
    screen = sorted(screen)
    out = []
    for j, sent in enumerate(sorted(sends), start=1):
        shown = next((t for t, n in screen if n >= j and t >= sent), None)
        if shown is not None:
            out.append(shown - sent)
    return out


async def _class(url: str, code: str, token: str, opts: ClassOptions, cpu: callable) -> dict:
    rng = random.Random(opts.seed)
    seen = Observed()
    stop = asyncio.Event()
    teacher = asyncio.create_task(_teacher(url, f"class={code}&teacher={token}", stop, seen, opts))
    start = time.perf_counter()
    answers_from = start + opts.arrival  # everyone has arrived; the question is asked
    poll_from = answers_from + opts.answer_window + 2.0  # the last answers have landed
    end = poll_from + opts.poll_seconds
    marks: dict[str, float] = {}

    async def measure_polling() -> None:
        await asyncio.sleep(max(0.0, poll_from - time.perf_counter()))
        marks["cpu0"], marks["t0"], marks["polls0"] = cpu(), time.perf_counter(), seen.polls
        await asyncio.sleep(max(0.0, end - 0.2 - time.perf_counter()))
        marks["cpu1"], marks["t1"], marks["polls1"] = cpu(), time.perf_counter(), seen.polls

    students = [_student(url, code, i, rng.uniform(0, opts.arrival), answers_from + rng.uniform(0, opts.answer_window),
                         end, seen, opts) for i in range(opts.students)]
    await asyncio.gather(measure_polling(), *students)
    await asyncio.sleep(POLL_S * 2)
    stop.set()
    await teacher
    return {"seen": seen, "marks": marks, "wall": time.perf_counter() - start}


def _replica_pids(state_dir: Path) -> list[int]:
    data = json.loads((state_dir / "replicas.json").read_text())
    return [r["pid"] for r in data["replicas"] if r.get("pid")]


@contextmanager
def _server(opts: ClassOptions) -> Iterator[tuple[str, callable, str]]:
    """(url, a CPU-seconds reading of the server, the store setting): a fresh app, or the deployment at --url."""
    from .classroom import cpu_seconds, served_app

    if opts.url:
        setting = opts.store if opts.store is not None else os.environ.get(cs.STORE_ENV, "")
        pids = _replica_pids(opts.serve_state) if opts.serve_state else []
        yield opts.url.rstrip("/"), (lambda: sum(cpu_seconds(p) for p in pids)) if pids else None, setting
        return
    import tempfile

    folder = tempfile.mkdtemp(prefix="densenet-viz-class-bench-")
    setting = opts.store if opts.store is not None else os.environ.get(cs.STORE_ENV) or f"sqlite://{folder}/c.db"
    before = os.environ.get(cs.STORE_ENV)
    os.environ[cs.STORE_ENV] = setting  # the server the bench starts inherits it
    try:
        with served_app() as (url, process):
            yield url, lambda: cpu_seconds(process.pid), setting
    finally:
        if before is None:
            os.environ.pop(cs.STORE_ENV, None)
        else:
            os.environ[cs.STORE_ENV] = before


def measure(opts: ClassOptions) -> str:
    """Run one class and return its table with the machine line and the load."""
    with _server(opts) as (url, cpu, setting):
        store = cs.store_from_env(setting)
        new = store.create_class(LESSON)
        load_start = os.getloadavg()
        result = run_sync(_class(url, new.state.code, new.token, opts, cpu or (lambda: 0.0)))
        load_end = os.getloadavg()
        joined, answered = store.student_count(new.state.code), store.count(new.state.code, 0)
        where = cs.describe(store)
    seen: Observed = result["seen"]
    marks = result["marks"]
    lat = latencies(seen.sends, seen.teacher)
    cells = ["-", "-", "-"] if not lat else [f"{percentile(lat, 0.5):.2f}", f"{percentile(lat, 0.95):.2f}",
                                            f"{max(lat):.2f}"]
    refresh = "n/a"
    if cpu is not None and marks.get("t1"):
        seconds = marks["t1"] - marks["t0"]
        per = 1000 * (marks["cpu1"] - marks["cpu0"]) / ((opts.students + 1) * seconds)
        refresh = f"{per:.1f} ({'within' if per <= BUDGET_MS else 'OVER'} {BUDGET_MS:.1f})"
    sends = seen.send_reruns
    server = "this bench's own app process" if not opts.url else opts.url
    table = markdown_table(
        ["students", "joined / answered (store)", "answers seen by the teacher", "send → teacher p50 / p95 / max s",
         "Send rerun p50 / p95 s", "refresh CPU ms per student per s (budget)", "polls", "failed",
         "exception boxes", "load avg start", "load avg end"],
        [[f"{opts.students} within {opts.arrival:g} s, answering within {opts.answer_window:g} s",
          f"{joined} / {answered}", str(len(lat)), " / ".join(cells),
          "-" if not sends else f"{percentile(sends, 0.5):.2f} / {percentile(sends, 0.95):.2f}", refresh,
          str(seen.polls), str(seen.failed), str(len(seen.exceptions)),
          " ".join(f"{x:.2f}" for x in load_start), " ".join(f"{x:.2f}" for x in load_end)]],
    )
    lines = [machine_line(), "", f"server: {server}; store: {where}", "", table]
    if seen.exceptions:
        lines += ["", "first exception box: " + seen.exceptions[0]]
    return "\n".join(lines)


def options_from_args(args: argparse.Namespace, quick: bool) -> ClassOptions:
    """Class mode's run from the command line (--quick: 5 students, a few seconds)."""
    if quick:
        return ClassOptions(students=5, arrival=2.0, answer_window=2.0, poll_seconds=3.0, url=args.url,
                            store=args.store, serve_state=args.serve_state)
    students = args.students if args.students != 60 else 120  # the classroom default is 60; a class here is 120
    return ClassOptions(students=students, arrival=args.arrival, answer_window=args.answer_window,
                        poll_seconds=args.poll_seconds, url=args.url, store=args.store, serve_state=args.serve_state,
                        seed=args.seed)
