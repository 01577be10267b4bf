"""`make serve` end to end: deploy/serve.py with two replicas behind HAProxy, driven as a class would use it.

Checked through the balancer only: fresh browsers are spread over both replicas and each keeps its
replica (the SERVERID cookie, counted in HAProxy's own per-server statistics); a real Chromium uploads an
image on the Feature maps page and sees its maps (uploads are what affinity exists for); one replica is
killed mid-lesson and its student reconnects to the other, keeps the model the URL names, is told the
upload is gone, and can upload again there, while the other student's session goes on untouched; the
killed replica is started again and takes new sessions; SIGTERM leaves nothing running or listening.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from conftest import ARTIFACTS, CHROMIUM_ARGS, CONTEXT_OPTIONS, ROOT, free_port, record
from PIL import Image
from test_browser import POLL_MS

pytestmark = [pytest.mark.slow]

START_TIMEOUT_S = 180  # two replicas importing torch at once on a loaded 2-core machine
# A killed replica stays down this long before the supervisor starts it again: its students must be
# redispatched to the other one meanwhile.
RESTART_DELAY_S = 20
RUN_TIMEOUT_MS = 120_000
# A small CIFAR DenseNet-BC, named by the URL as a lesson link would: 3 layers per block.
QUERY = "preset=densenet_bc_100_12&blocks=3-3-3"
READY = '[data-testid="stApp"][data-test-script-state="notRunning"]'
EXCEPTION = '[data-testid="stException"]'
GONE = "no longer on the server"


class Served:
    """A running deploy/serve.py: its URL, state directory (replicas.json, stats socket) and process."""

    def __init__(self, process: subprocess.Popen, url: str, state_dir: Path) -> None:
        self.process, self.url, self.state_dir = process, url, state_dir

    def state(self) -> dict:
        return json.loads((self.state_dir / "replicas.json").read_text())

    def replica(self, name: str) -> dict:
        return next(r for r in self.state()["replicas"] if r["name"] == name)

    def stats(self) -> dict[str, dict[str, str]]:
        """HAProxy's `show stat` for the replicas, by server name (status, stot = sessions served, ...)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.state_dir / "haproxy.sock"))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        return {r["svname"]: r for r in rows if r["pxname"] == "replicas" and r["svname"] != "BACKEND"}

    def wait_all_up(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"serve.py exited with {self.process.returncode}")
            try:
                if all(r["status"] == "UP" for r in self.stats().values()):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        pytest.fail(f"the replicas were not all UP in {timeout_s} s: {self.stats()}")


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Served:
    """deploy/serve.py --replicas 2 on a free port, until the module ends (or a test stops it)."""
    state_dir = tmp_path_factory.mktemp("serve")
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "serve.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "deploy/serve.py", "--replicas", "2", "--port", str(port), "--state-dir", str(state_dir),
             "--restart-delay", str(RESTART_DELAY_S)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = Served(process, f"http://127.0.0.1:{port}", state_dir)
    deadline = time.monotonic() + 30
    while not (state_dir / "haproxy.sock").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        server.wait_all_up()
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)


def get(url: str, cookie: str | None = None) -> tuple[int, str | None]:
    """(status, the SERVERID the response sets or None) of one GET with an optional Cookie header."""
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(request, timeout=30) as r:
        set_cookie = r.headers.get("Set-Cookie") or ""
        server = set_cookie.split("SERVERID=", 1)[1].split(";", 1)[0] if "SERVERID=" in set_cookie else None
        return r.status, server


def served_counts(served: Served) -> dict[str, int]:
    return {name: int(row["stot"]) for name, row in served.stats().items()}


def test_fresh_browsers_spread_over_the_replicas_and_each_keeps_its_own(served):
    first = get(f"{served.url}/")
    second = get(f"{served.url}/")
    assert first[0] == second[0] == 200
    assert {first[1], second[1]} == {"r1", "r2"}, (first, second)  # leastconn: two idle replicas take turns
    for name in ("r1", "r2"):
        before = served_counts(served)
        for _ in range(5):
            status, reset = get(f"{served.url}/_stcore/health", cookie=f"SERVERID={name}")
            assert status == 200 and reset is None  # cookie honoured: not set again
        after = served_counts(served)
        other = "r2" if name == "r1" else "r1"
        assert after[name] - before[name] == 5 and after[other] == before[other], (before, after)


def png_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def chromium(playwright_manager):
    """Debian's Chromium through Playwright; each test opens its own contexts (own cookies = own students)."""
    manager, executable = playwright_manager
    try:
        browser = manager.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
    except Exception as exc:  # Playwright raises its own Error type for every launch failure
        pytest.skip(f"Playwright could not launch {executable}: {exc}")
    try:
        yield browser
    finally:
        browser.close()


def student(chromium, served: Served, replica: str | None = None):
    """A new browser profile (a student); pinned to `replica` by presetting its affinity cookie."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000}, **CONTEXT_OPTIONS)
    context.set_default_timeout(RUN_TIMEOUT_MS)
    if replica:
        context.add_cookies([{"name": "SERVERID", "value": replica, "url": served.url}])
    return context


def affinity(context) -> str:
    return next(c["value"] for c in context.cookies() if c["name"] == "SERVERID")


def settle(page) -> None:
    for _ in range(2):
        page.wait_for_selector(READY, timeout=RUN_TIMEOUT_MS)
        page.wait_for_timeout(400)
    page.wait_for_selector(READY, timeout=RUN_TIMEOUT_MS)


def wait_for_text(page, text: str, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    """Wait until the page shows `text` (in HTML or a chart's SVG); on timeout, a screenshot and what it shows."""
    try:
        page.wait_for_function("t => document.body.innerText.includes(t) || "
                               "[...document.querySelectorAll('svg text')].some(e => e.textContent.includes(t))",
                               arg=text, timeout=timeout_ms, polling=POLL_MS)
    except Exception:  # Playwright's TimeoutError
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "serve-timeout.png"), full_page=True)
        shown = page.locator("body").inner_text()[:3000]
        pytest.fail(f"{text!r} not shown in {timeout_ms} ms; the page says:\n{shown}")


def no_exception(page) -> None:
    boxes = page.locator(EXCEPTION)
    assert boxes.count() == 0, boxes.first.inner_text()[:2000]


def upload_and_see_maps(page, seed: int) -> None:
    """Upload a PNG on the Feature maps page and wait for its channel grid to be drawn."""
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        {"name": f"photo{seed}.png", "mimeType": "image/png", "buffer": png_bytes(seed)}
    )
    wait_for_text(page, "Block 1 output")
    settle(page)
    no_exception(page)
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 1


def move_channels_slider(page) -> None:
    """One step right on "Channels to draw" (16 -> 17): a widget change, so a rerun."""
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="Channels to draw").get_by_role("slider")
    slider.focus()
    slider.press("ArrowRight")


def open_upload_page(page, served: Served) -> None:
    page.goto(f"{served.url}/features?{QUERY}")
    settle(page)
    page.locator('[data-testid="stRadio"]').filter(has_text="Image").get_by_text("Upload", exact=True).click()
    wait_for_text(page, "Upload an image")
    settle(page)


@pytest.mark.browser
def test_a_browser_uploads_an_image_through_the_balancer_and_sees_its_maps(served, chromium):
    context = student(chromium, served)
    try:
        page = context.new_page()
        open_upload_page(page, served)
        upload_and_see_maps(page, seed=1)
        assert affinity(context) in {"r1", "r2"}
    finally:
        context.close()


@pytest.mark.browser
def test_a_killed_replica_moves_its_students_and_comes_back(served, chromium):
    victim_ctx, bystander_ctx = student(chromium, served, "r1"), student(chromium, served, "r2")
    try:
        victim, bystander = victim_ctx.new_page(), bystander_ctx.new_page()
        for page, seed in ((victim, 2), (bystander, 3)):
            open_upload_page(page, served)
            upload_and_see_maps(page, seed)
        assert (affinity(victim_ctx), affinity(bystander_ctx)) == ("r1", "r2")
        sockets = []
        victim.on("websocket", lambda ws: sockets.append(ws))
        before = served.replica("r1")
        os.killpg(before["pid"], signal.SIGKILL)  # the replica and anything it started, at once
        killed_at = time.monotonic()

        # The victim's tab reconnects its websocket through HAProxy (r1 is gone: redispatched to r2, a new
        # session there). Streamlit's frontend keeps the page as it was and reruns at the next interaction:
        # that run keeps the URL's model and says the upload is gone instead of failing.
        while not sockets and time.monotonic() - killed_at < RUN_TIMEOUT_MS / 1000:
            victim.wait_for_timeout(250)
        assert sockets, "the victim's tab did not reconnect"
        record("serve_reconnect_seconds", round(time.monotonic() - killed_at, 1))
        settle(victim)
        move_channels_slider(victim)
        wait_for_text(victim, GONE)
        settle(victim)
        no_exception(victim)
        query = parse_qs(urlparse(victim.url).query)
        assert query.get("preset") == ["densenet_bc_100_12"] and query.get("blocks") == ["3-3-3"], victim.url
        upload_and_see_maps(victim, seed=4)  # r2 accepts the upload: same cookie secret, XSRF token valid
        assert affinity(victim_ctx) == "r2"

        # The other student noticed nothing: a widget change reruns on r2 with the image still there.
        move_channels_slider(bystander)
        wait_for_text(bystander, "17 of")
        settle(bystander)
        no_exception(bystander)
        assert GONE not in bystander.locator("body").inner_text()

        # The supervisor starts r1 again, the health checks bring it back, and it takes sessions.
        deadline = time.monotonic() + START_TIMEOUT_S
        while served.replica("r1")["pid"] == before["pid"] and time.monotonic() < deadline:
            time.sleep(0.5)
        served.wait_all_up()
        record("serve_rejoin_seconds", round(time.monotonic() - killed_at, 1))
        after = served.replica("r1")
        assert after["pid"] != before["pid"] and after["restarts"] == before["restarts"] + 1
        counts = served_counts(served)
        assert get(f"{served.url}/_stcore/health", cookie="SERVERID=r1") == (200, None)
        assert served_counts(served)["r1"] == counts["r1"] + 1
    finally:
        victim_ctx.close()
        bystander_ctx.close()


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_stops_everything_and_nothing_listens(served):
    state = served.state()
    port = int(urlparse(state["url"]).port)
    ports = [port] + [r["port"] for r in state["replicas"]]
    pids = [state["haproxy_pid"]] + [r["pid"] for r in state["replicas"]]
    assert all(listening(p) for p in ports) and all(alive(p) for p in pids)
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=60) == 0
    assert not [p for p in ports if listening(p)]
    assert not [p for p in pids if alive(p)]
