"""A classroom at once: 8 browser sessions on one server, each with its own model, changing controls.

Every session must keep seeing its own numbers (no cross-talk through st.cache_* or shared models), no
exception box may appear, and the server's memory must stay bounded after 50+ different configs.
Browser pages against the real server (started as `make run` does) are used rather than AppTest instances in
threads: AppTest swaps a process-wide Runtime singleton on every run, so it is not thread-safe.
"""

from __future__ import annotations

import ast
import contextlib
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import ARTIFACTS, ROOT, record, rss_bytes
from test_browser import EXCEPTION, METRIC_VALUES, POLL_MS, settle

from densenet_viz import DenseNetConfig, count_params
from densenet_viz.settings import config_from_settings, settings_from_query

N_SESSIONS = 8
MIN_CONFIGS = 50
MAX_SECONDS = 150  # stop changing controls after this even short of MIN_CONFIGS (the assertion then says so)
RSS_LIMIT = 3 * 2**30  # the server after 50+ configs; it starts near 0.6 GiB with torch loaded
INPUT = 64  # a small input keeps every run quick on a 2-core machine


def _cache_calls(path: Path) -> list[tuple[str, int, set[str]]]:
    """(decorator name, line, keyword names) of every st.cache_data/st.cache_resource/lru_cache in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for dec in node.decorator_list:
            call = dec if isinstance(dec, ast.Call) else None
            target = dec.func if call else dec
            name = ast.unparse(target)
            if name.split(".")[-1] in ("cache_data", "cache_resource", "lru_cache", "cache"):
                keywords = {k.arg: ast.unparse(k.value) for k in call.keywords} if call else {}
                args = [ast.unparse(a) for a in call.args] if call else []
                found.append((f"{path.relative_to(ROOT)}:{node.lineno} {node.name} @{name}", keywords, args))
    return found


def test_every_cache_is_bounded():
    """st.cache_* need max_entries or ttl; functools caches need a maxsize (a classroom would fill them)."""
    files = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "densenet_viz").rglob("*.py"))]
    unbounded, seen = [], 0
    for path in files:
        for where, keywords, args in _cache_calls(path):
            seen += 1
            kind = where.rsplit("@", 1)[1].split(".")[-1]
            if kind in ("cache_data", "cache_resource"):
                ok = keywords.get("max_entries", "None") != "None" or keywords.get("ttl", "None") != "None"
            elif kind == "lru_cache":
                maxsize = keywords.get("maxsize", args[0] if args else "128")
                ok = maxsize != "None"
            else:  # functools.cache is unbounded by definition
                ok = False
            if not ok:
                unbounded.append(where)
    record("caches_checked", seen)
    assert seen >= 20, f"the scan found only {seen} caches: has the package's layout changed under it?"
    assert not unbounded, f"unbounded caches: {unbounded}"


def _session_config(i: int, k: int) -> DenseNetConfig:
    """Session i's model: its own block layout (so no two sessions ever share a config) and growth rate k."""
    return DenseNetConfig(growth_rate=k, block_config=(1 + i, 2, 2, 1), num_init_features=64)


def _blocks_text(i: int) -> str:
    return "-".join(map(str, _session_config(i, 1).block_config))


def _shown(page) -> tuple[str, str]:
    """(the Parameters metric, the URL query) a session shows now."""
    value = page.evaluate(f"label => {METRIC_VALUES}(label)[0] || ''", "Parameters")
    return value, page.url


def _click_slider(page, key: str, value: int) -> None:
    """Click the slider's track at `value` (one widget change, one rerun); the exact value may differ by one."""
    thumb = page.locator(f'.st-key-{key} input[type="range"]')
    low, high = int(thumb.get_attribute("min")), int(thumb.get_attribute("max"))
    box = page.locator(f'.st-key-{key} [data-testid="stSlider"] div[style*="touch-action"]').first.bounding_box()
    page.mouse.click(box["x"] + box["width"] * (value - low) / (high - low), box["y"] + box["height"] / 2)


# Done (the run ended showing `want` as Parameters) or broken (an exception box): checked in the page, where it
# costs the browser little, instead of several round trips from here every 200 ms per session.
DONE_OR_BROKEN = f"""([want, exception]) => document.querySelector(exception) !== null || (
  document.querySelector('[data-testid="stApp"]')?.getAttribute('data-test-script-state') === 'notRunning' &&
  {METRIC_VALUES}('Parameters').includes(want))"""


def _wait_own_numbers(page, i: int, k: int, deadline: float) -> None:
    """Wait until session i shows its own model's parameter count and URL; fail on anything else."""
    want = f"{count_params(_session_config(i, k)):,}"
    while True:
        with contextlib.suppress(Exception):  # Playwright's TimeoutError: what the page shows is judged below
            page.wait_for_function(DONE_OR_BROKEN, arg=[want, EXCEPTION], polling=2 * POLL_MS,
                                   timeout=max(1.0, (deadline - time.monotonic()) * 1000))
        if page.locator(EXCEPTION).count():
            text = page.locator(EXCEPTION).first.inner_text()
            (ARTIFACTS / f"load-exception-session-{i}.txt").write_text(f"{page.url}\n{text}")
            page.screenshot(path=str(ARTIFACTS / f"load-exception-session-{i}.png"))
            pytest.fail(f"session {i} at {page.url}: exception box: {text[:3000]}")
        shown, url = _shown(page)
        # The URL the app keeps in step with the sidebar must describe this session's model too.
        in_url = config_from_settings(settings_from_query(parse_qs(urlparse(url).query)).settings)
        running = page.get_attribute('[data-testid="stApp"]', "data-test-script-state") != "notRunning"
        if not running and shown == want and in_url == _session_config(i, k):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"session {i} (k={k}, blocks {_blocks_text(i)}) shows {shown!r} at {url}, expected {want}")
        page.wait_for_timeout(200)


@pytest.mark.browser
@pytest.mark.slow
def test_eight_sessions_each_see_their_own_model(browser_context, app_url, app_server, artifacts):
    pages = [browser_context.new_page() for _ in range(N_SESSIONS)]
    try:
        k = {i: 8 + i for i in range(N_SESSIONS)}
        for i, page in enumerate(pages):  # open all first: the server runs them concurrently
            page.goto(f"{app_url}/?k={k[i]}&blocks={_blocks_text(i)}&size={INPUT}")
        for i, page in enumerate(pages):
            settle(page)
            _wait_own_numbers(page, i, k[i], time.monotonic() + 120)
        rss_start, _ = rss_bytes(app_server.pid)
        configs = {(i, k[i]) for i in range(N_SESSIONS)}

        start, rounds = time.monotonic(), 0
        elapsed = 0.0
        while elapsed < MAX_SECONDS and len(configs) < MIN_CONFIGS:
            rounds += 1
            for i, page in enumerate(pages):  # every session changes its growth rate at about the same time
                target = 4 + (7 * rounds + 5 * i) % 60
                _click_slider(page, "growth_rate", target)
            for i, page in enumerate(pages):
                page.wait_for_timeout(50)
                k[i] = int(page.locator('.st-key-growth_rate input[type="range"]').input_value())
                _wait_own_numbers(page, i, k[i], time.monotonic() + 120)
                configs.add((i, k[i]))
            elapsed = time.monotonic() - start
            assert app_server.alive(), "the server stopped answering its health check"

        # Cross-check at the end: every session still shows its own model (not the last one computed).
        for i, page in enumerate(pages):
            _wait_own_numbers(page, i, k[i], time.monotonic() + 30)
        for i, page in enumerate(pages[:2]):
            page.screenshot(path=str(artifacts / f"load-session-{i}.png"))
        rss_end, rss_peak = rss_bytes(app_server.pid)
        record(
            "load",
            {
                "sessions": N_SESSIONS,
                "rounds": rounds,
                "seconds": round(elapsed, 1),
                "distinct_configs": len(configs),
                "server_rss_before_mib": round(rss_start / 2**20),
                "server_rss_after_mib": round(rss_end / 2**20),
                "server_peak_rss_mib": round(rss_peak / 2**20),
            },
        )
        assert len(configs) >= MIN_CONFIGS, f"only {len(configs)} configs in {elapsed:.0f} s"
        assert rss_end < RSS_LIMIT, f"server RSS {rss_end / 2**20:.0f} MiB after {len(configs)} configs"
    finally:
        for page in pages:
            page.close()


def test_zz_server_log_has_no_traceback(app_server):
    """Whatever the browser suites did, the server logged no uncaught exception (Streamlit logs each one)."""
    log = app_server.log_text()
    assert "Uncaught app exception" not in log and "Uncaught app execution" not in log, log[-5000:]
    assert "Traceback" not in log, log[-5000:]
