"""Shared fixtures: the real Streamlit server, a headless Chromium, and the robustness report.

The server and browser fixtures are session-scoped so the browser and load suites pay for one
app server (started as `make run` does) and one Chromium. Numbers the robustness tests measure (configs fuzzed, uploads
tried, sessions held, peak RSS) go to test-artifacts/robustness.json through `record`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
REPORT = ARTIFACTS / "robustness.json"

# The flags Debian's Chromium needs in a container without a display or network; Playwright adds --headless.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # The tabs of one context share one renderer process, whose compiled frontend they reuse: a page load then
    # costs the browser about a quarter less CPU (4.3 to 3.4 CPU-s on the development machine), and 8 tabs moving
    # sliders together 30% less. Separate contexts (class mode's phones) still get their own processes.
    "--process-per-site",
]
# Every tab's context: no CSS animations. Streamlit animates while a page waits, and an idle tab cost ~6% of a
# core with them (0.28 CPU-s in 5 s, 0.05 without): the suite's browsers are most of its CPU on a slow machine.
CONTEXT_OPTIONS = {"reduced_motion": "reduce"}
SERVER_START_TIMEOUT_S = 90
# pytest-xdist's name for this worker process ("gw0", "gw1", ...), "" without xdist: each worker starts its own
# server and browser, and names what it writes alone after itself.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if WORKER:
    # Two test processes share the cores, and what they run in-process (AppTest, the library's models) used torch's
    # default of one OpenMP thread per core each: a thread waiting for a descheduled partner spins. On one thread the
    # torch-heavy tests took 27 instead of 39 CPU-s under a 0.7-CPU quota. The app's workers use one thread too.
    import torch

    torch.set_num_threads(1)


def chromium_path() -> str | None:
    """Debian's Chromium: /usr/bin/chromium, else whatever `chromium` is on PATH."""
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def record(key: str, value: object) -> None:
    """Merge one measured number into test-artifacts/robustness.json (what the README reports)."""
    ARTIFACTS.mkdir(exist_ok=True)
    # Under pytest-xdist (`make test`) the workers write the report at the same time: one at a time.
    with open(ARTIFACTS / "robustness.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = {}
        if REPORT.exists():
            try:
                data = json.loads(REPORT.read_text())
            except ValueError:
                data = {}
        data[key] = value
        REPORT.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def pytest_sessionstart(session) -> None:
    """Start each run with an empty report, so it only holds what this run measured (xdist: before any worker)."""
    if not WORKER:
        REPORT.unlink(missing_ok=True)


def pytest_sessionfinish(session, exitstatus) -> None:
    """Render robustness.json as robustness.md (one line per measured number) beside it (xdist: once all the
    workers are done)."""
    if WORKER or not REPORT.exists():
        return
    data = json.loads(REPORT.read_text())
    lines = ["# What the robustness suites tried (this run)", "", "| measure | value |", "|---|---|"]
    lines += [f"| {key} | {json.dumps(value)} |" for key, value in sorted(data.items())]
    (ARTIFACTS / "robustness.md").write_text("\n".join(lines) + "\n")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process in bytes, from /proc/<pid>/status."""
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


@dataclass
class Server:
    """A running app as `make run` starts it (densenet_viz.app.launch): its base URL, process and log file."""

    url: str
    process: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        """True while the server process runs and answers its health check."""
        if self.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _start_server(log_name: str) -> Server:
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / log_name
    cmd = [
        sys.executable, "-m", "densenet_viz.app.launch",  # as `make run` starts it
        "--server.address", "127.0.0.1",
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with open(log, "wb") as out:
        # Its own process group, so the teardown ends streamlit and anything it started, and nothing else.
        process = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode} at start-up:\n{server.log_text()}")
        if server.alive():
            return server
        time.sleep(0.25)
    _stop_server(server)
    raise RuntimeError(f"streamlit did not answer /_stcore/health in {SERVER_START_TIMEOUT_S} s:\n{server.log_text()}")


def _stop_server(server: Server) -> None:
    if server.process.poll() is not None:
        return
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=15)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def app_server() -> Iterator[Server]:
    """The app as `make run` starts it, on 127.0.0.1 and a free port, up until the session ends."""
    server = _start_server(f"streamlit-server{'-' + WORKER if WORKER else ''}.log")
    try:
        yield server
    finally:
        _stop_server(server)
    # Whatever this process's tests did with it (tests/test_load.py checks the same while they run), the server
    # logged no uncaught exception: Streamlit logs each one.
    log = server.log_text()
    assert "Uncaught app exception" not in log and "Uncaught app execution" not in log, log[-5000:]
    assert "Traceback" not in log, log[-5000:]


@pytest.fixture(scope="session")
def app_url(app_server: Server) -> str:
    """The served app's base URL, e.g. http://127.0.0.1:43123."""
    return app_server.url


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """test-artifacts/ (gitignored): screenshots, the server log and robustness.json."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def _playwright_or_skip():
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium: /usr/bin/chromium is missing and `chromium` is not on PATH (.ci/run installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - requirements-dev.txt pins playwright
        pytest.skip(f"playwright for Python is not installed: {exc}")
    return executable, sync_playwright


@pytest.fixture(scope="session")
def playwright_manager():
    """The one Playwright of the test session (its sync API allows one per process) and Chromium's path."""
    executable, sync_playwright = _playwright_or_skip()
    manager = sync_playwright().start()
    try:
        yield manager, executable
    finally:
        manager.stop()


@pytest.fixture(scope="session")
def browser_context(playwright_manager):
    """A headless Chromium (Debian's, through Playwright) with a fresh temporary profile."""
    manager, executable = playwright_manager
    profile = tempfile.mkdtemp(prefix="densenet-viz-chromium-")
    try:
        try:
            context = manager.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 1000},
                **CONTEXT_OPTIONS,
            )
        except Exception as exc:  # Playwright raises its own Error type for every launch failure
            pytest.skip(f"Playwright could not launch {executable}: {exc}")
        context.set_default_timeout(60_000)
        try:
            yield context
        finally:
            context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_context):
    """A fresh tab (a fresh Streamlit session) per test, closed afterwards."""
    tab = browser_context.new_page()
    try:
        yield tab
    finally:
        tab.close()


@pytest.fixture
def in_process_pool(monkeypatch):
    """A job pool without worker processes: its jobs run in a thread of this process, where a test's patches apply
    (a worker's result or exception reaches the page the same way)."""
    from densenet_viz.app import work

    monkeypatch.setenv("DENSENET_VIZ_WORKERS", "0")
    work.job_pool.clear()
    yield
    work.job_pool.clear()  # back to worker processes for the tests after this one


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """Debian's redis-server on loopback and a free port, no persistence, until the session ends (class mode's
    store); skipped where redis-server is missing (.ci/run installs it)."""
    executable = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.access("/usr/bin/redis-server",
                                                                                       os.X_OK) else None)
    if executable is None:
        pytest.skip("no redis-server (Debian's redis-server package; .ci/run installs it)")
    folder = tmp_path_factory.mktemp("redis")
    port = free_port()
    process = subprocess.Popen(
        [executable, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start (exit code {process.poll()})")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
