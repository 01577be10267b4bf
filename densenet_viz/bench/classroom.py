"""Benchmark: a class using one server at once, driven over Streamlit's websocket protocol (no browser).

`python -m densenet_viz.bench classroom [--students N --changes C ...]` starts the app as `make run`
does (its own free port; `.streamlit/config.toml` applies), or drives a running deployment with
`--url URL` (behind a balancer too: the page's affinity cookie goes with the websocket). Students
arrive uniformly within `--arrival` s; each opens one of the chosen pages (student i gets page
i mod P) from a link with its own k₀ (`?k0=...`), then moves the growth-rate slider `--changes` times,
thinking uniform [think-min, think-max] s before each move, to a k it has not used: every run is a model
the server has not seen. Each rerun is timed from the BackMsg to `script_finished`.
`--train` instead has every student open the training page and press Train at the same moment
(`--train-distinct K`: K different epoch counts), timing each until the training curves are shown,
while `--slider-student` keeps one more student moving the slider meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from websockets.exceptions import InvalidHandshake

from . import class_mode
from .machine import machine_line
from .stream import RunResult, Session, run_sync
from .tables import markdown_table
from .tables import percentile as _percentile

ROOT = Path(__file__).resolve().parents[2]  # where app.py and .streamlit/ live
PAGES = {  # URL page name -> title, the six analysis pages in teaching order
    "build": "Build",
    "connectivity": "Connectivity",
    "growth": "Channel growth",
    "memory": "Parameters & memory",
    "tradeoffs": "Trade-offs",
    "features": "Feature maps",
}
TRAIN_PAGE, TRAIN_BUTTON, EPOCHS_SLIDER, RESULT_KEY = "training", "train_start", "train_epochs", "train_curves"
DEFAULT_EPOCHS = 3  # the training page's slider default
SLIDER_KEY = "growth_rate"
K_CHOICES = [k for k in range(12, 65) if k != 32]  # around the default k = 32, never the default itself
SHARED_KS = (12, 16, 24, 40, 48, 20, 28, 36)  # with --shared N: the class moves among the first N (32 is the link's)
FLOOR_APP = ROOT / "densenet_viz" / "bench" / "floor_app.py"
FIRST_K0 = 64  # student i opens ?k0=FIRST_K0+1+i: no two students share a model
START_TIMEOUT_S = 180
GIB = 2**30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The classroom options, in their own group of the bench command line."""
    group = parser.add_argument_group("classroom")
    group.add_argument("--students", type=int, default=60, help="students (trainees with --train); default 60")
    group.add_argument("--arrival", type=float, default=10.0, help="students arrive uniformly within this many s")
    group.add_argument("--changes", type=int, default=6, help="slider changes per student")
    group.add_argument("--think-min", type=float, default=2.5, help="shortest think time before a change, s")
    group.add_argument("--think-max", type=float, default=7.5, help="longest think time before a change, s")
    group.add_argument("--pages", default=",".join(PAGES), help=f"comma-separated, any of {','.join(PAGES)}")
    group.add_argument("--train", action="store_true", help="the Train rush instead of slider students")
    group.add_argument("--train-distinct", type=int, default=1, help="with --train: this many different settings")
    group.add_argument("--slider-student", action="store_true", help="with --train: one student moves sliders")
    group.add_argument("--url", help="drive this running deployment instead of starting the app")
    group.add_argument("--timeout", type=float, default=600.0, help="a rerun not finished after this is unfinished")
    group.add_argument("--seed", type=int, default=0, help="seed of arrivals, think times and k choices")
    group.add_argument("--shared", type=int, default=0, metavar="N",
                       help="the class shares N configs: every student opens one lesson link (show=k) and moves k "
                            f"among the first N of {', '.join(map(str, SHARED_KS))} (default 0: every change new)")
    group.add_argument("--profile", metavar="PATH",
                       help="sample the app's server with py-spy during the run; collapsed stacks to PATH")
    group.add_argument("--no-floor", action="store_true",
                       help="skip the same students against Streamlit's floor (bench/floor_app.py)")
    class_mode.add_arguments(group)


@dataclass
class Options:
    """One classroom run: who comes when, what they do, and where the app is."""

    students: int = 60
    arrival: float = 10.0
    changes: int = 6
    think_min: float = 2.5
    think_max: float = 7.5
    pages: tuple[str, ...] = tuple(PAGES)
    train: bool = False
    train_distinct: int = 1
    slider_student: bool = False
    url: str | None = None
    timeout: float = 600.0
    seed: int = 0
    shared: int = 0  # 0: every change a config nobody has used; N: the class moves among N configs
    floor: bool = True  # also play the same students against Streamlit's floor page, in the same run
    profile: str | None = None  # py-spy's collapsed stacks of the app's server go here

    def __post_init__(self) -> None:
        unknown = [p for p in self.pages if p not in PAGES]
        if unknown or not self.pages:
            raise ValueError(f"unknown page(s) {unknown or self.pages}; choose from {', '.join(PAGES)}")
        if self.students < 1 or self.changes < 0 or self.arrival < 0:
            raise ValueError("students must be ≥ 1, changes ≥ 0 and arrival ≥ 0")
        if not 0 <= self.think_min <= self.think_max:
            raise ValueError(f"think time [{self.think_min}, {self.think_max}] must satisfy 0 ≤ min ≤ max")
        if not 1 <= self.train_distinct <= 20 - DEFAULT_EPOCHS + 1:
            raise ValueError(f"--train-distinct must be in [1, {20 - DEFAULT_EPOCHS + 1}] (epochs 3..20)")
        if not 0 <= self.shared <= len(SHARED_KS):
            raise ValueError(f"--shared must be in [0, {len(SHARED_KS)}]")


QUICK = Options(students=3, arrival=1.0, changes=2, think_min=0.2, think_max=0.5, pages=("growth", "memory", "build"))


# ---- the server ------------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


@contextmanager
def served_app(root: Path = ROOT, script: Path | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """`make run`'s server (of the checkout at `root`), or `streamlit run script` with the same settings, on a free
    loopback port, healthy; stopped (with its process group) at the end."""
    port = _free_port()
    start = ["densenet_viz.app.launch"] if script is None else ["streamlit", "run", str(script)]
    cmd = [sys.executable, "-m", *start, "--server.address", "127.0.0.1", "--server.port", str(port)]
    # The server's log goes to a file, not a pipe: a pipe nobody reads during the run fills up (64 KiB of log lines,
    # e.g. Streamlit's note on every dropped fragment rerun) and then blocks the server on its next log line.
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below, after the server has stopped)
    started = time.monotonic()
    process = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=log,
                               start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"streamlit exited with {process.returncode}: {log.read().decode(errors='replace')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not answer /_stcore/health in {START_TIMEOUT_S} s")
            time.sleep(0.05)
        process.healthy_after = time.monotonic() - started  # type: ignore[attr-defined]
        process.started = started  # type: ignore[attr-defined]
        yield url, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 15)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()
        log.close()


def _tree(pid: int) -> list[int]:
    """The process and all its live descendants (a worker pool's processes included)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def cpu_split(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of a process itself, and of its live descendants and the children it has reaped
    (the app's workers, which build and run the real models)."""
    own, others, tick = 0.0, 0.0, os.sysconf("SC_CLK_TCK")
    for i, p in enumerate(_tree(pid)):
        try:
            with open(f"/proc/{p}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[11:15] = utime, stime, cutime, cstime; reaped children count once, through the root only
        if i == 0:
            own += (int(fields[11]) + int(fields[12])) / tick
            others += (int(fields[13]) + int(fields[14])) / tick
        else:
            others += (int(fields[11]) + int(fields[12])) / tick
    return own, others


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a process, its live descendants and the children it has reaped."""
    return sum(cpu_split(pid))


def proc_field_bytes(path: str, field: str) -> int:
    """A `Name:  N kB` field of a /proc file, in bytes (0 if the process or the field is gone)."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return next((int(line.split()[1]) * 1024 for line in f if line.startswith(field)), 0)
    except OSError:
        return 0


def rss_bytes(pid: int) -> tuple[int, int]:
    """(VmRSS of the process, summed PSS of its live descendants) in bytes. The workers are forked from one fork
    server and share its pages: their proportional set sizes count each shared page once, where RSS would count it
    in every worker."""
    root, *descendants = _tree(pid)
    return (proc_field_bytes(f"/proc/{root}/status", "VmRSS:"),
            sum(proc_field_bytes(f"/proc/{p}/smaps_rollup", "Pss:") for p in descendants))


# ---- the students ----------------------------------------------------------------------------------


async def _slider_student(url: str, index: int, page: str, opts: Options, rng: random.Random,
                          results: list[RunResult], stop: asyncio.Event | None = None, script_page: str | None = None
                          ) -> None:
    """Open `page` from a link with this student's k₀ (or the class's lesson link), then move the growth rate to new
    values (or among the class's shared ones). `script_page` is the page name sent, when not `page` (the floor
    page has one page only)."""
    start = time.perf_counter()
    sent = page if script_page is None else script_page
    link = "show=k" if opts.shared else f"k0={FIRST_K0 + 1 + index}"
    try:
        session = await Session.open(url, link, timeout=opts.timeout)
    except (OSError, TimeoutError, InvalidHandshake) as exc:  # a server too busy to accept is a failed page
        results.append(RunResult(f"{page} (first)", time.perf_counter() - start, False, missing=type(exc).__name__))
        return
    try:
        first = await session.rerun(sent, timeout=opts.timeout)
        first.page = f"{page} (first)"
        results.append(first)
        if first.finished and SLIDER_KEY not in session.widget_ids:
            # The page ran without app.py's sidebar (Streamlit's pages/-folder mode, which a fresh process
            # can use until its first st.navigation call): a student reloads, so rerun once more.
            first.missing = SLIDER_KEY
            first = await session.rerun(sent, timeout=opts.timeout)
            results.append(first)
            if SLIDER_KEY not in session.widget_ids:
                first.missing, first.finished = SLIDER_KEY, False
        shared = SHARED_KS[: opts.shared]
        ks = rng.sample(K_CHOICES, len(K_CHOICES))
        change, k = 0, 32
        while first.finished and (change < opts.changes if stop is None else not stop.is_set()):
            await asyncio.sleep(rng.uniform(opts.think_min, opts.think_max))
            k = rng.choice([s for s in shared if s != k]) if shared else ks[change % len(ks)]
            session.slider(SLIDER_KEY, k)
            change += 1
            result = await session.rerun(sent, timeout=opts.timeout)
            result.page = page
            results.append(result)
            if not result.finished:
                break
    finally:
        await session.close()


async def _classroom(url: str, opts: Options, script_page: str | None = None) -> tuple[list[RunResult], float]:
    rng = random.Random(opts.seed)
    results: list[RunResult] = []

    async def student(i: int, delay: float, own: random.Random) -> None:
        await asyncio.sleep(delay)
        await _slider_student(url, i, opts.pages[i % len(opts.pages)], opts, own, results, script_page=script_page)

    start = time.perf_counter()
    await asyncio.gather(*(student(i, rng.uniform(0, opts.arrival), random.Random(rng.random()))
                           for i in range(opts.students)))  # fmt: skip
    return results, time.perf_counter() - start


async def _press_train(session: Session, timeout: float) -> RunResult:
    """Press Train and wait until the training curves are shown (a page without the button fails)."""
    if TRAIN_BUTTON not in session.widget_ids:
        return RunResult(TRAIN_PAGE, 0.0, False, missing=TRAIN_BUTTON)
    return await session.rerun(TRAIN_PAGE, press=TRAIN_BUTTON, until_key=RESULT_KEY, timeout=timeout)


async def _train_rush(url: str, opts: Options) -> tuple[list[RunResult], list[RunResult], float]:
    """All trainees load the training page, then press Train at once; optionally one slider student."""
    sessions = await asyncio.gather(*(Session.open(url, timeout=opts.timeout) for _ in range(opts.students)))
    await asyncio.gather(*(s.rerun(TRAIN_PAGE, timeout=opts.timeout) for s in sessions))
    for i, session in enumerate(sessions):
        if EPOCHS_SLIDER in session.widget_ids:
            session.slider(EPOCHS_SLIDER, DEFAULT_EPOCHS + i % opts.train_distinct)
    slider_results: list[RunResult] = []
    stop = asyncio.Event()
    rng = random.Random(opts.seed)
    slider = (asyncio.create_task(_slider_student(url, opts.students, opts.pages[0], opts, rng, slider_results, stop))
              if opts.slider_student else None)
    start = time.perf_counter()
    try:
        trained = await asyncio.gather(*(_press_train(s, opts.timeout) for s in sessions))
    finally:
        stop.set()
        if slider is not None:
            await slider
        for session in sessions:
            await session.close()
    return list(trained), slider_results, time.perf_counter() - start


# ---- the table -------------------------------------------------------------------------------------


def _stats(results: list[RunResult]) -> list[str]:
    done = [r.seconds for r in results if r.finished]
    if not done:
        return [str(len(results)), "-", "-", "-"]
    return [str(len(results)), f"{_percentile(done, 0.5):.2f}", f"{_percentile(done, 0.95):.2f}", f"{max(done):.2f}"]


def _server_cells(server: dict[str, float] | None) -> list[str]:
    """Server CPU seconds (process + children), the server's RSS and its workers' RSS at the end, or n/a for a
    deployment given by --url."""
    if server is None:
        return ["n/a", "n/a", "n/a"]
    workers = f"{server['child_rss'] / GIB:.2f} in {int(server['children'])}" if server["children"] else "0"
    return [f"{server['cpu']:.1f}", f"{server['rss'] / GIB:.2f}", workers]


def report(opts: Options, results: list[RunResult], wall: float, load: tuple[tuple[float, ...], tuple[float, ...]],
           server: dict[str, float] | None, slider: list[RunResult] | None = None) -> str:
    """The markdown tables: the load and what went wrong, then p50/p95/max per page and overall."""
    every = results + (slider or [])
    exceptions = [e for r in every for e in r.exceptions]
    if opts.train:
        who = f"{opts.students} press Train ({opts.train_distinct} setting{'s' * (opts.train_distinct > 1)})"
        arrival, think = "at once", "-"
    else:
        who = f"{opts.students} x {opts.changes} changes"
        arrival, think = f"{opts.arrival:g} s", f"{opts.think_min:g}-{opts.think_max:g} s"
    summary = markdown_table(
        ["students", "arrival", "think", "reruns", "reruns/s", "exception boxes", "failed/unfinished",
         "no sidebar", "server CPU s", "server RSS GiB", "workers PSS GiB", "load avg start", "load avg end"],
        [[who, arrival, think, str(len(results)), f"{sum(r.finished for r in results) / wall:.2f}",
          str(len(exceptions)), str(sum(not r.finished for r in every)),
          str(sum(r.missing == SLIDER_KEY for r in every)), *_server_cells(server),
          " ".join(f"{x:.2f}" for x in load[0]), " ".join(f"{x:.2f}" for x in load[1])]],
    )
    rows = []
    if opts.train:
        rows.append(["Train → curves shown", *_stats(results)])
        if slider is not None:  # its changes while the class trains, not its first page
            rows.append(["slider student meanwhile", *_stats([r for r in slider if "(first)" not in r.page])])
    else:
        names = [p for page in opts.pages for p in (f"{page} (first)", page)]
        for name in names:
            chosen = [r for r in results if r.page == name]
            if chosen:
                title = PAGES[name.split(" ")[0]] + (" (first page)" if "(first)" in name else "")
                rows.append([title, *_stats(chosen)])
        rows.append(["first page of a new session", *_stats([r for r in results if "(first)" in r.page])])
        rows.append(["all reruns", *_stats(results)])
    table = markdown_table(["page", "reruns", "p50 s", "p95 s", "max s"], rows)
    lines = [summary, "", table]
    if exceptions:
        lines += ["", "first exception box: " + exceptions[0]]
    return "\n".join(lines)


@dataclass
class Played:
    """One scenario played against one server: every rerun, how long it took, and what the server spent."""

    results: list[RunResult]
    wall: float
    load: tuple[tuple[float, ...], tuple[float, ...]]
    server: dict[str, float] | None
    slider: list[RunResult] | None = None
    cold: tuple[float, float] | None = None  # s from the server's start until healthy, until its first page was shown

    def cpu_per_rerun(self, part: str = "cpu") -> float | None:
        """Server CPU seconds per finished rerun: "cpu" all of it, "own" the server process's (its pages), "workers"
        its workers' (the real models)."""
        done = sum(r.finished for r in self.results)
        return self.server[part] / done if self.server and done else None


@contextmanager
def _sampled(pid: int, path: str | None) -> Iterator[None]:
    """py-spy recording the process `pid` while the body runs: 100 samples a second of the thread holding the
    interpreter lock (the one core every session's page shares)."""
    if path is None:
        yield
        return
    beside = Path(sys.executable).with_name("py-spy")  # the virtual environment's, where requirements-dev puts it
    command = [str(beside) if beside.exists() else "py-spy", "record", "--pid", str(pid), "--rate", "100", "--gil",
               "--format", "raw", "--output", path, "--nonblocking"]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.send_signal(2)  # py-spy writes what it sampled on SIGINT
        spy.wait(timeout=60)


def _play(opts: Options, script: Path | None = None) -> Played:
    """Serve the app (or `script`), unless opts.url names a running one, and play the scenario against it."""
    with (served_app(script=script) if opts.url is None else _nothing(opts.url)) as (url, process), \
            _sampled(process.pid if process else 0, opts.profile if process and script is None else None):
        cold = run_sync(_first_page(url, process, opts.pages[0])) if process is not None and script is None else None
        load_start = os.getloadavg()
        cpu_start = cpu_split(process.pid) if process else (0.0, 0.0)
        slider = None
        if opts.train:
            results, slider, wall = run_sync(_train_rush(url, opts))
            slider = slider if opts.slider_student else None
        else:
            results, wall = run_sync(_classroom(url, opts, script_page=None if script is None else ""))
        server = None
        if process is not None:
            rss, child_rss = rss_bytes(process.pid)
            own, workers = (end - start for end, start in zip(cpu_split(process.pid), cpu_start, strict=True))
            server = {"cpu": own + workers, "own": own, "workers": workers, "wall": wall, "rss": rss,
                      "child_rss": child_rss, "children": len(_tree(process.pid)) - 1}  # fmt: skip
        return Played(results, wall, (load_start, os.getloadavg()), server, slider, cold)


async def _first_page(url: str, process: subprocess.Popen, page: str) -> tuple[float, float]:
    """Cold start: one browser's first page on the server just started (s since the process started, until it
    answered its health check and until that page was shown)."""
    session = await Session.open(url, timeout=START_TIMEOUT_S)
    try:
        await session.rerun(page, timeout=START_TIMEOUT_S)
    finally:
        await session.close()
    return process.healthy_after, time.monotonic() - process.started


def floor_table(app: Played, floor: Played) -> str:
    """The app against Streamlit's floor page, the same students in the same run: CPU per rerun and its ratio, in
    all, and of the server process alone (its pages; the rest is the workers' real models)."""
    rows = []
    for name, played in (("the app", app), ("Streamlit's floor (bench/floor_app.py)", floor)):
        done = [r.seconds for r in played.results if r.finished]
        cells = [f"{x:.3f}" if (x := played.cpu_per_rerun(part)) is not None else "n/a"
                 for part in ("cpu", "own", "workers")]
        rows.append([name, str(len(done)), f"{played.server['cpu']:.1f}" if played.server else "n/a", *cells,
                     *_stats(played.results)[1:]])
    floor_per = floor.cpu_per_rerun() or float("inf")
    ratio, own_ratio = ((app.cpu_per_rerun(part) or 0) / floor_per for part in ("cpu", "own"))
    return (markdown_table(["server", "finished reruns", "server CPU s", "CPU s per rerun", "of it the pages",
                            "of it the workers", "p50 s", "p95 s", "max s"], rows)
            + f"\n\nserver CPU per rerun, app ÷ floor: **{ratio:.2f}x** (the pages alone, without the workers' real "
              f"models: **{own_ratio:.2f}x**)")


def measure(opts: Options) -> str:
    """Run one classroom scenario against `opts.url` or a freshly started app (then, unless told not to, the same
    students against Streamlit's floor page), and return its report with the machine's speed."""
    app = _play(opts)
    text = f"{machine_line()}\n\n" + report(opts, app.results, app.wall, app.load, app.server, app.slider)
    if app.cold is not None:
        text += (f"\n\ncold start: the server answered its health check {app.cold[0]:.1f} s after it started, and "
                 f"showed a first page ({PAGES[opts.pages[0]]}) {app.cold[1]:.1f} s after it started")
    if opts.floor and opts.url is None and not opts.train:
        text += "\n\n" + floor_table(app, _play(opts, FLOOR_APP))
    return text


@contextmanager
def _nothing(url: str) -> Iterator[tuple[str, None]]:
    yield url.rstrip("/"), None


def options_from_args(args: argparse.Namespace, quick: bool) -> Options:
    """The run the command line asked for; --quick is a few students, a couple of quick changes."""
    if quick:
        chosen = {"url": args.url, "train": args.train, "slider_student": args.slider_student,
                  "shared": getattr(args, "shared", 0), "floor": not getattr(args, "no_floor", False)}
        return Options(**{**QUICK.__dict__, **chosen})
    return Options(students=args.students, arrival=args.arrival, changes=args.changes, think_min=args.think_min,
                   think_max=args.think_max, pages=tuple(p.strip() for p in args.pages.split(",") if p.strip()),
                   train=args.train, train_distinct=args.train_distinct, slider_student=args.slider_student,
                   url=args.url, timeout=args.timeout, seed=args.seed, shared=getattr(args, "shared", 0),
                   floor=not getattr(args, "no_floor", False), profile=getattr(args, "profile", None))  # fmt: skip


def run(quick: bool, args: argparse.Namespace | None = None) -> str:
    """The classroom table for the command line's options (the defaults: the 60-student goal pattern)."""
    if args is None:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args([])
    if getattr(args, "class_mode", False):
        return class_mode.measure(class_mode.options_from_args(args, quick))
    return measure(options_from_args(args, quick))
