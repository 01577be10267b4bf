"""Benchmark: what a hostile student can do to a class server, while a classmate only moves sliders.

`python -m densenet_viz.bench hostile [--cases a,b] [--quick]` starts the app as `make run` does (or
`--root DIR` runs another checkout's app.py, for before/after comparisons), then plays each hostile input
in headless Chromium (crafted images, markup in links, a huge text, crafted weights and lesson files, fast
clicks) while a bystander moves the growth-rate slider on the Build page over Streamlit's own websocket
protocol. Per input it prints: seconds until the page answered, the peak RSS growth of the server and its
workers, the bystander's p95 while it ran, whether the server survived, whether anything from the input was
rendered as a link or image (or fetched from outside), and what the page said.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import random
import statistics
import struct
import tempfile
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .classroom import GIB, ROOT, _healthy, _tree, proc_field_bytes, served_app
from .machine import machine_line
from .stream import RunResult, Session, run_sync
from .tables import markdown_table

OUTSIDE = "198.51.100.7"  # TEST-NET-2: nothing answers there; any request to it is content from the input
RUN_TIMEOUT_S = 90.0  # a page that has not answered by then has not answered
STEADY = '[data-testid="stApp"][data-test-script-state="notRunning"]'
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The hostile-input options, in their own group of the bench command line."""
    group = parser.add_argument_group("hostile")
    group.add_argument("--cases", default="", help=f"comma-separated subset of: {', '.join(c.name for c in CASES)}")
    group.add_argument("--root", default=str(ROOT), help="the checkout whose app.py to serve (before/after runs)")


# ---- crafted inputs --------------------------------------------------------------------------------


def strip_png(width: int, height: int) -> bytes:
    """A valid 8-bit grayscale PNG of width x height black pixels, a kilobyte or so whatever its size."""
    raw = zlib.compress(b"".join(b"\x00" + bytes(width) for _ in range(height)), 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def photo_png(size: int = 64) -> bytes:
    """An ordinary small RGB image."""
    from PIL import Image

    buf = io.BytesIO()
    Image.effect_mandelbrot((size, size), (-2, -1.5, 1, 1.5), 60).convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def claiming_state_dict(blocks: int = 2, layers: int = 512, k: int = 512) -> bytes:
    """A torchvision-format state dict of a few KB that claims a DenseNet far beyond the app's limits: every
    tensor is a stride-0 view of one number, so torch.save stores one element per tensor."""
    import torch

    def t(*shape: int) -> torch.Tensor:
        return torch.zeros(1).expand(*shape)

    sd = {"features.conv0.weight": t(64, 3, 7, 7), "classifier.weight": t(1000, 1024)}
    channels = 64
    for b in range(1, blocks + 1):
        for i in range(1, layers + 1):
            sd[f"features.denseblock{b}.denselayer{i}.conv1.weight"] = t(4 * k, channels + (i - 1) * k, 1, 1)
            sd[f"features.denseblock{b}.denselayer{i}.conv2.weight"] = t(k, 4 * k, 3, 3)
        if b < blocks:
            out = channels + layers * k
            sd[f"features.transition{b}.conv.weight"] = t(out // 2, out, 1, 1)
            channels = out // 2
    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.getvalue()


def many_tensors_state_dict(count: int = 100_000) -> bytes:
    """A state dict of `count` one-number tensors: a few MB that take seconds and much memory to unpickle."""
    import torch

    buf = io.BytesIO()
    torch.save({f"t{i}": torch.zeros(1) for i in range(count)}, buf)
    return buf.getvalue()


def heavy_lesson(steps: int = 30) -> bytes:
    """A valid lesson of `steps` steps, each on the largest model the sidebar allows, each asking a question whose
    answer needs the whole network."""
    blocks = "-".join(["128"] * 8)
    parts = ['title = "Big"', ""]
    for i in range(steps):
        settings = f'settings = {{ k = {120 + i % 8}, blocks = "{blocks}", k0 = 512, size = 1024 }}'
        parts += ["[[steps]]", f'text = "Step {i}"', settings, "[steps.question]", 'kind = "choice"',
                  'prompt = "Which pooling?"', 'quantity = "transition_pooling"',
                  'options = ["average pooling", "max pooling"]', ""]
    return "\n".join(parts).encode()


def markup_lesson() -> bytes:
    """A lesson whose texts carry links, an image and HTML pointing outside."""
    return (f'title = "Click [here](http://{OUTSIDE}/t)"\nsummary = "![x](http://{OUTSIDE}/s.png)"\n'
            f'[[steps]]\ntext = "<img src=http://{OUTSIDE}/h.png> see http://{OUTSIDE}/u and [a](http://{OUTSIDE}/a)"\n'
            ).encode()  # fmt: skip


# ---- the browser side ------------------------------------------------------------------------------


@dataclass
class Seen:
    """What the page showed after an input."""

    seconds: float
    answered: bool
    said: str = ""
    rendered: int = 0  # links or images from the input in the DOM
    fetched: int = 0  # requests the browser made to the input's outside address
    sent_s: float | None = None  # a file's transfer to the server, before `seconds` starts


async def _settle(page: Any, timeout_s: float = RUN_TIMEOUT_S) -> bool:
    """Wait until the script run has ended (twice: a rerun may follow at once); False if it never did."""
    try:
        for _ in range(2):
            await page.wait_for_selector(STEADY, timeout=timeout_s * 1000)
            await page.wait_for_timeout(300)
        await page.wait_for_selector(STEADY, timeout=timeout_s * 1000)
        return True
    except Exception:  # Playwright's TimeoutError, or the page went away with the server
        return False


async def _said(page: Any) -> str:
    """The texts of the page's alert and exception boxes, one line."""
    texts = []
    for selector in ('[data-testid="stAlert"]', '[data-testid="stException"]'):
        for box in await page.locator(selector).all():
            try:
                texts.append(" ".join((await box.inner_text(timeout=2000)).split()))
            except Exception:  # a box that went away meanwhile
                continue
    return " | ".join(texts)


async def _observe(page: Any, requests: list[str], start: float, answered: bool, sent_s: float | None = None) -> Seen:
    """What the page shows now; `seconds` counts from start (after a file's transfer, which sent_s says)."""
    seconds = time.perf_counter() - start
    rendered = await page.locator(f'a[href*="{OUTSIDE}"], img[src*="{OUTSIDE}"]').count()
    return Seen(seconds, answered, await _said(page), rendered, sum(urlsplit(r).hostname == OUTSIDE for r in requests),
                sent_s)


async def _upload_case(ctx: Ctx, widget_key: str, name: str, data: bytes, mime: str) -> Seen:
    """Upload a file (the hostile step starts as it is sent) and observe the page from its arrival on."""
    ctx.mark()
    sent_s = await _upload(ctx.page, widget_key, name, data, mime)
    start = time.perf_counter()
    return await _observe(ctx.page, ctx.requests, start, await _settle(ctx.page), sent_s)


async def _open(page: Any, url: str) -> bool:
    await page.goto(url, timeout=RUN_TIMEOUT_S * 1000)
    return await _settle(page)


async def _upload(page: Any, widget_key: str, name: str, data: bytes, mime: str) -> float:
    """Send a file through the uploader and wait until it has reached the server; returns the seconds that took
    (a browser on loopback sends a 27 MB file in tens of seconds through Playwright, a LAN in one or two)."""
    start = time.perf_counter()
    chooser = page.locator(f".st-key-{widget_key} input[type=file]")
    if len(data) < 40 * 2**20:
        await chooser.set_input_files(files=[{"name": name, "mimeType": mime, "buffer": data}])
    else:
        with tempfile.TemporaryDirectory() as folder:  # Playwright takes larger files from disk only
            path = Path(folder) / name
            path.write_bytes(data)
            await chooser.set_input_files(str(path))
    # The page reruns once the file has reached the server: a large one takes a while to get there.
    box = page.locator(f".st-key-{widget_key}")
    with contextlib.suppress(Exception):
        await box.locator('[data-testid="stFileChipName"]').first.wait_for(timeout=RUN_TIMEOUT_S * 1000)
        await box.locator('[data-testid="stFileChipIconSpinner"]').first.wait_for(state="detached",
                                                                                   timeout=RUN_TIMEOUT_S * 1000)
    return time.perf_counter() - start


async def _choose(page: Any, label: str) -> None:
    """Click the radio option with this label and wait for the rerun."""
    await page.get_by_text(label, exact=True).first.click()
    await _settle(page)


# ---- the cases ------------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What a case needs: the app's URL, a fresh tab whose outside requests are recorded, and the server's process,
    whose memory (with its workers') counts from the moment the case marks, right before its hostile step."""

    url: str
    page: Any
    pid: int
    requests: list[str] = field(default_factory=list)
    marked: float = float("inf")
    baseline: int = 0
    peak: int = 0

    def mark(self) -> float:
        """The hostile step starts now: memory and the bystander's reruns count from here; returns the time."""
        self.baseline = self.peak = tree_rss(self.pid)
        self.marked = time.perf_counter()
        return self.marked


async def _image_case(ctx: Ctx, data: bytes, size: int, name: str = "strip.png") -> Seen:
    await _open(ctx.page, f"{ctx.url}/features?size={size}")
    await _choose(ctx.page, "Upload")
    return await _upload_case(ctx, "fm_upload", name, data, "image/png")


async def _url_case(ctx: Ctx, path_and_query: str) -> Seen:
    start = ctx.mark()
    answered = await _open(ctx.page, f"{ctx.url}/{path_and_query}")
    return await _observe(ctx.page, ctx.requests, start, answered)


async def _weights_case(ctx: Ctx, data: bytes, name: str = "weights.pth") -> Seen:
    await _open(ctx.page, f"{ctx.url}/features")
    await _choose(ctx.page, "Loaded state dict")
    return await _upload_case(ctx, "fm_weights_file", name, data, "application/octet-stream")


async def _lesson_case(ctx: Ctx, data: bytes, name: str = "lesson.toml") -> Seen:
    await _open(ctx.page, f"{ctx.url}/lessons")
    await ctx.page.get_by_text("Teachers: open your own lesson file").first.click()
    return await _upload_case(ctx, "lesson_upload", name, data, "application/toml")


async def _long_text_case(ctx: Ctx) -> Seen:
    await _open(ctx.page, ctx.url)
    box = ctx.page.locator(".st-key-block_config input")
    text = "-".join(["1"] * 50_000)  # 99,999 characters
    start = ctx.mark()
    await box.fill(text)
    await box.press("Enter")
    return await _observe(ctx.page, ctx.requests, start, await _settle(ctx.page))


async def _fast_clicks_case(ctx: Ctx) -> Seen:
    """A session that asks for a new model every 20 ms for 10 s (a held-down arrow key, a script)."""
    session = await Session.open(ctx.url, "", timeout=RUN_TIMEOUT_S)
    try:
        await session.rerun("build", timeout=RUN_TIMEOUT_S)
        rng = random.Random(1)
        start = ctx.mark()
        while time.perf_counter() - start < 10:
            session.slider("growth_rate", rng.randint(1, 128))
            await session._send("build")
            await asyncio.sleep(0.02)
        session.slider("growth_rate", 40)
        last = await session.rerun("build", timeout=RUN_TIMEOUT_S)
        return Seen(time.perf_counter() - start - 10, last.finished, "; ".join(last.exceptions))
    finally:
        await session.close()


EVIL = f"http://{OUTSIDE}"


@dataclass(frozen=True)
class Case:
    """One hostile input: a short name, what the table calls it, how to play it, whether `make test` runs it."""

    name: str
    what: str
    play: Callable[[Ctx], Awaitable[Seen]]
    quick: bool = False


CASES: tuple[Case, ...] = (
    Case("strip224", "Feature maps, Upload: a 1 KB PNG of 100,000×10 pixels, input 224",
         lambda c: _image_case(c, strip_png(100_000, 10), 224), quick=True),
    Case("strip512", "the same file at input 512", lambda c: _image_case(c, strip_png(100_000, 10), 512)),
    Case("thin512", "a PNG of 60,000×3 pixels at input 512", lambda c: _image_case(c, strip_png(60_000, 3), 512)),
    Case("thin1024", "the same at input 1024", lambda c: _image_case(c, strip_png(60_000, 3), 1024)),
    Case("square", "a PNG of 4,000×4,000 pixels at input 1024 (the largest ordinary photo)",
         lambda c: _image_case(c, strip_png(4000, 4000), 1024)),
    Case("name", f"an ordinary image named `[x]({EVIL}/n).png`",
         lambda c: _image_case(c, b"not an image", 224, name=f"[x]({EVIL}/n).png"), quick=True),
    Case("url_link", f"`/?k=[click here]({EVIL}/k)`", lambda c: _url_case(c, f"?k=[click here]({EVIL}/k)"),
         quick=True),
    Case("url_image", f"`/?preset=![t]({EVIL}/p.png)`", lambda c: _url_case(c, f"?preset=![t]({EVIL}/p.png)"),
         quick=True),
    Case("url_key", f"`/?[Session expired: log in again]({EVIL})=1`",
         lambda c: _url_case(c, f"?[Session expired: log in again]({EVIL})=1"), quick=True),
    Case("url_html", f"`/?show=<img src={EVIL}/h.png>`", lambda c: _url_case(c, f"?show=<img src={EVIL}/h.png>"),
         quick=True),
    Case("url_lesson", f"`/lessons?lesson=[x]({EVIL}/l)&step=![s]({EVIL}/s.png)`",
         lambda c: _url_case(c, f"lessons?lesson=[x]({EVIL}/l)&step=![s]({EVIL}/s.png)"), quick=True),
    Case("url_keys", "a link with 5,000 unknown keys", lambda c: _url_case(c, "?" + "&".join(
        f"x{i}=1" for i in range(5000)))),
    Case("long_text", "100,000 characters typed into 'Layers per dense block'", _long_text_case),
    Case("claiming_weights", "a 0.7 MB state dict claiming 2 blocks × 512 layers at k = 512",
         lambda c: _weights_case(c, claiming_state_dict())),
    Case("many_tensors", "a 27 MB state dict of 100,000 tiny tensors",
         lambda c: _weights_case(c, many_tensors_state_dict())),
    Case("weights_name", f"a broken weights file named `![w]({EVIL}/w.png).pth`",
         lambda c: _weights_case(c, b"junk", name=f"![w]({EVIL}/w.png).pth"), quick=True),
    Case("heavy_lesson", "a lesson of 30 steps, each on the largest model the sidebar allows",
         lambda c: _lesson_case(c, heavy_lesson())),
    Case("markup_lesson", "a lesson whose title, summary and text carry links, an image and HTML",
         lambda c: _lesson_case(c, markup_lesson(), name=f"[l]({EVIL}).toml"), quick=True),
    Case("fast_clicks", "a session asking for a new model every 20 ms for 10 s", _fast_clicks_case),
)


# ---- measuring -------------------------------------------------------------------------------------


def tree_rss(pid: int) -> int:
    """Summed VmRSS of a process and its live descendants, in bytes."""
    return sum(proc_field_bytes(f"/proc/{p}/status", "VmRSS:") for p in _tree(pid))


async def _sample_peak(ctx: Ctx, stop: asyncio.Event) -> None:
    while not stop.is_set():
        ctx.peak = max(ctx.peak, await asyncio.to_thread(tree_rss, ctx.pid))
        await asyncio.sleep(0.05)


async def _bystander(url: str, stop: asyncio.Event, results: list[tuple[float, RunResult]]) -> None:
    """A classmate on the Build page moving the growth-rate slider every 0.5-1.5 s to a model not seen yet."""
    session = await Session.open(url, "k0=63", timeout=RUN_TIMEOUT_S)
    rng = random.Random(7)
    try:
        await session.rerun("build", timeout=RUN_TIMEOUT_S)
        ks = [k for k in range(8, 129) if k != 32]
        rng.shuffle(ks)
        i = 0
        while not stop.is_set():
            await asyncio.sleep(rng.uniform(0.5, 1.5))
            session.slider("growth_rate", ks[i % len(ks)])
            i += 1
            started = time.perf_counter()
            results.append((started, await session.rerun("build", timeout=RUN_TIMEOUT_S)))
    finally:
        await session.close()


@dataclass
class Outcome:
    """One case played: what the page showed, the memory it cost, the bystander's reruns meanwhile, the server."""

    case: Case
    seen: Seen
    growth_bytes: int
    bystander: list[RunResult]
    survived: bool

    @property
    def bystander_p95(self) -> float | None:
        """The 95th percentile of the bystander's finished reruns while the case ran (None without any)."""
        done = sorted(r.seconds for r in self.bystander if r.finished)
        if not done:
            return None
        return done[0] if len(done) == 1 else statistics.quantiles(done, n=100, method="inclusive")[94]

    def row(self) -> list[str]:
        """The table's row."""
        seen, p95 = self.seen, self.bystander_p95
        unfinished = sum(not r.finished for r in self.bystander)
        bystander = "-" if p95 is None else (f"{p95:.2f} ({len(self.bystander) - unfinished}"
                                             f"{f', {unfinished} unfinished' if unfinished else ''})")
        answer = f"{seen.seconds:.1f}" if seen.answered else f"no answer ({seen.seconds:.0f} s)"
        if seen.sent_s is not None:
            answer += f" (sent in {seen.sent_s:.1f})"
        said = " ".join(seen.said.split())
        said = said[:160] + ("…" if len(said) > 160 else "")
        return [self.case.what, answer, f"{self.growth_bytes / GIB:+.2f}", bystander,
                "yes" if self.survived else "**no**", f"{seen.rendered} rendered, {seen.fetched} fetched",
                said or "(nothing)"]


async def _play(url: str, pid: int, cases: list[Case], warm_up: bool = True) -> list[Outcome]:
    from playwright.async_api import async_playwright

    outcomes = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            if warm_up:  # a server that has served these pages before (the test suite's) needs none
                warm = await browser.new_page(reduced_motion="reduce")
                await _open(warm, url)  # the server's first page pays its imports, not the first case
                await _open(warm, f"{url}/features")
                await warm.close()
            for case in cases:
                if not _healthy(url):
                    outcomes.append(Outcome(case, Seen(float("nan"), False, "server down before the case"), 0, [],
                                            False))
                    continue
                page = await browser.new_page(reduced_motion="reduce")  # no CSS animations: they cost CPU
                ctx = Ctx(url, page, pid)
                page.on("request", lambda r, ctx=ctx: ctx.requests.append(r.url))
                stop, bystander = asyncio.Event(), []
                sampler = asyncio.create_task(_sample_peak(ctx, stop))
                watcher = asyncio.create_task(_bystander(url, stop, bystander))
                try:
                    seen = await asyncio.wait_for(case.play(ctx), RUN_TIMEOUT_S * 3)
                except Exception as exc:  # a case that could not even be played (the server went away)
                    seen = Seen(float("nan"), False, f"not played: {type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(1.0)  # the bystander's move after the answer, and the memory settling
                stop.set()
                await asyncio.gather(sampler, watcher, return_exceptions=True)
                await page.close()
                meanwhile = [r for started, r in bystander if started >= ctx.marked]
                growth = ctx.peak - ctx.baseline if ctx.baseline else 0  # nothing counted if the step never came
                outcomes.append(Outcome(case, seen, growth, meanwhile, _healthy(url)))
        finally:
            await browser.close()
    return outcomes


def play(cases: list[Case], root: Path = ROOT) -> tuple[list[Outcome], tuple[float, float]]:
    """Serve the app from `root` as `make run` does, play the cases one after another; the outcomes and the load
    average at the start and the end."""
    with served_app(root) as (url, process):
        load = os.getloadavg()[0]
        outcomes = run_sync(_play(url, process.pid, cases))
        return outcomes, (load, os.getloadavg()[0])


def measure(cases: list[Case], root: Path = ROOT) -> str:
    """The table of the cases played against the app at `root`, with the machine's speed and load."""
    outcomes, (load, load_end) = play(cases, root)
    header = ["input", "answered after (s; a file from its arrival)", "server + workers RSS growth (GiB)",
              "bystander p95 s (reruns)", "server survived", "markup from the input", "what the page said"]
    table = markdown_table(header, [o.row() for o in outcomes])
    return f"{machine_line()}; load average {load:.2f} at the start, {load_end:.2f} at the end\n\n{table}"


def run(quick: bool, args: argparse.Namespace | None = None) -> str:
    """The hostile-input table for the chosen cases (all by default; --quick: the make-test subset)."""
    wanted = [n.strip() for n in (getattr(args, "cases", "") or "").split(",") if n.strip()]
    unknown = sorted(set(wanted) - {c.name for c in CASES})
    if unknown:
        raise SystemExit(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(c.name for c in CASES)}")
    cases = [c for c in CASES if (c.name in wanted if wanted else not quick or c.quick)]
    return measure(cases, Path(getattr(args, "root", None) or ROOT))
