"""End to end in a real browser: the app as `make run` starts it, driven through Debian's Chromium with Playwright.

Every page of the navigation is opened from the sidebar, the growth rate and a block's layer count are
changed through the real widgets, and the tests check what a student would see: charts drawn as SVG,
numbers that equal an independent count for the new model, a shared link that reopens its model, and
no Streamlit exception box anywhere. Screenshots of every page go to test-artifacts/.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import ROOT, record

from densenet_viz import PRESETS, DenseNetConfig, count_params
from densenet_viz import settings as us
from densenet_viz.app import keys
from densenet_viz.lessons import shipped_lessons

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The pages app.py lists (title by script), in its order; a page whose file is missing is not served.
_APP = (ROOT / "app.py").read_text()
PAGES = [
    (script, title)
    for script, title in re.findall(r'\("(pages/\w+\.py)",\s*"([^"]+)"', _APP)
    if (ROOT / script).exists()
]
RUN_TIMEOUT_MS = 120_000  # one script run on a loaded 2-core machine (the first one imports torch)
# A training epoch runs in a worker at a lower priority than everything else: on a machine whose CPU the browsers and
# the other test process use up (a 0.7-CPU quota), it once took longer than a script run may.
TRAIN_TIMEOUT_MS = 300_000
# How often a wait_for_function checks its condition in the page. Playwright's default, every animation frame, keeps
# Chromium at ~11% of a core per waiting tab (3% at 100 ms): CPU a slow machine's server needs for the run waited on.
POLL_MS = 100

EXCEPTION = '[data-testid="stException"]'
PLOTLY = '[data-testid="stPlotlyChart"]'
GRAPHVIZ = '[data-testid="stGraphVizChart"]'


def settle(page, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    """Wait until the app's script run has finished (checked twice: a rerun may start right after)."""
    for _ in range(2):
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_ms)
        page.wait_for_timeout(400)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_ms)


def open_url(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector('[data-testid="stApp"]', timeout=RUN_TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stSidebarNavLink"]', timeout=RUN_TIMEOUT_MS)
    settle(page)


# Goes to a path of the app as its own back and forward buttons do, and notes in the page when the run that this
# starts has ended: the script state's next change to "notRunning".
NAVIGATE = """p => {
  window.__navigated = false;
  const state = () => document.querySelector('[data-testid="stApp"]')?.getAttribute('data-test-script-state');
  const watch = new MutationObserver(() => {
    if (state() === 'notRunning') { window.__navigated = true; watch.disconnect(); }
  });
  watch.observe(document, {subtree: true, attributes: true, attributeFilter: ['data-test-script-state']});
  history.pushState({}, '', p);
  dispatchEvent(new PopStateEvent('popstate', {state: {}}));
}"""
# Or, should that change never show (React may batch a quick run's start and end into one update): the sidebar marks
# the new page as the current one, and nothing runs.
NAVIGATED = """() => window.__navigated || (
  document.querySelector('[data-testid="stApp"]')?.getAttribute('data-test-script-state') === 'notRunning' &&
  new URL(document.querySelector('[data-testid="stSidebarNavLink"][aria-current="page"]')?.href ?? location.origin)
    .pathname === location.pathname)"""


def open_in_app(page, path: str) -> None:
    """Go to `path` of the app this tab shows, as its own back and forward buttons do (history, then popstate): the
    page runs in the same session without Streamlit's frontend loading again, which costs the browser 3.5-5.5 CPU-s
    a load, about three times a page change."""
    page.evaluate(NAVIGATE, path)
    page.wait_for_function(NAVIGATED, polling=POLL_MS, timeout=RUN_TIMEOUT_MS)
    settle(page)


def no_exception(page, where: str) -> None:
    """No exception box on the page, and no "Page not found" dialog for the path it was opened at."""
    boxes = page.locator(EXCEPTION)
    if boxes.count():
        pytest.fail(f"{where}: Streamlit exception box:\n{boxes.first.inner_text()[:3000]}")
    if page.get_by_text("Page not found").count():
        pytest.fail(f"{where}: Streamlit's 'Page not found' dialog for {page.url}")


def metric(page, label: str) -> str:
    """The value text of the st.metric with this label."""
    box = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=label)
    )
    return box.first.locator('[data-testid="stMetricValue"]').inner_text().strip()


# In the page: the value texts of every st.metric labelled `label` (a JavaScript function of the label).
METRIC_VALUES = """(label => [...document.querySelectorAll('[data-testid="stMetric"]')]
  .filter(m => m.querySelector('[data-testid="stMetricLabel"]')?.innerText.trim() === label)
  .map(m => m.querySelector('[data-testid="stMetricValue"]')?.innerText.trim()))"""


def wait_for_metric(page, label: str, expected: str, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    """Wait until the metric shows `expected` (the app reruns after a widget change)."""
    try:
        page.wait_for_function(
            f"([label, expected]) => {METRIC_VALUES}(label).includes(expected)",
            arg=[label, expected],
            timeout=timeout_ms,
            polling=POLL_MS,
        )
    except Exception:
        no_exception(page, f"waiting for {label} = {expected}")
        pytest.fail(f"{label} shows {metric(page, label)!r}, expected {expected!r}")
    settle(page)


def set_slider(page, key: str, value: int) -> None:
    """Move the slider with widget key `key` to `value` as a user would: click the track near the value, then
    step with the arrow keys, one key per script run (tests/test_fast_clicks.py presses faster on purpose)."""
    thumb = page.locator(f'.st-key-{key} input[type="range"]')
    low, high = int(thumb.get_attribute("min")), int(thumb.get_attribute("max"))
    track = page.locator(f'.st-key-{key} [data-testid="stSlider"] div[style*="touch-action"]').first
    box = track.bounding_box()
    x = box["x"] + box["width"] * (value - low) / (high - low)
    page.mouse.click(x, box["y"] + box["height"] / 2)
    settle(page)
    for _ in range(10):
        now = int(thumb.input_value())
        if now == value:
            break
        thumb.focus()
        thumb.press("ArrowRight" if now < value else "ArrowLeft")
        settle(page)
    assert thumb.input_value() == str(value)


def train_one_epoch(page) -> None:
    """On the training page: one epoch (enough to draw every chart), Train, and wait until its curves are drawn."""
    epochs = page.locator('.st-key-train_epochs input[type="range"]')
    epochs.focus()
    epochs.press("Home")
    settle(page)
    assert epochs.input_value() == "1"
    page.locator(".st-key-train_start button").click()
    page.locator(".st-key-train_curves").wait_for(timeout=TRAIN_TIMEOUT_MS)
    settle(page)


def set_text(page, key: str, text: str) -> None:
    box = page.locator(f".st-key-{key} input")
    box.fill(text)
    box.press("Enter")


def charts_drawn(page, where: str) -> dict[str, int]:
    """Every plotly chart on the page has drawn its SVG and every graphviz chart its svg; returns the counts."""
    n_plotly, n_graphviz = page.locator(PLOTLY).count(), page.locator(GRAPHVIZ).count()
    for i in range(n_plotly):
        chart = page.locator(PLOTLY).nth(i)
        chart.scroll_into_view_if_needed()
        chart.locator(".js-plotly-plot svg.main-svg").first.wait_for(state="attached", timeout=30_000)
        assert chart.locator(".js-plotly-plot .plot-container").count() == 1, f"{where}: plotly chart {i} not drawn"
    for i in range(n_graphviz):
        chart = page.locator(GRAPHVIZ).nth(i)
        chart.scroll_into_view_if_needed()
        chart.locator("svg").first.wait_for(state="attached", timeout=30_000)
        assert chart.locator("svg g.node").count() > 0, f"{where}: graphviz chart {i} has no nodes"
    return {"plotly": n_plotly, "graphviz": n_graphviz}


def screenshot(page, artifacts: Path, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main section, so grow the viewport to its height first."""
    size = page.viewport_size
    height = page.evaluate(
        """() => Math.max(...[...document.querySelectorAll('[data-testid="stMain"], section, div')]
                            .map(e => e.scrollHeight))"""
    )
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(height + 40, 12_000))})
    page.wait_for_timeout(500)  # plotly re-lays out on resize
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


def nav_links(page) -> list[tuple[str, str]]:
    return page.eval_on_selector_all(
        '[data-testid="stSidebarNavLink"]', "els => els.map(e => [e.href, e.innerText.split('\\n').pop().trim()])"
    )


def open_page(page, title: str) -> None:
    """Click the sidebar navigation link titled `title` and wait for the page's run to finish."""
    link = page.locator('[data-testid="stSidebarNavLink"]').filter(has_text=title).first
    link.click()
    page.wait_for_function(
        "t => [...document.querySelectorAll('h1')].length > 0 && "
        'document.querySelector(\'[data-testid="stSidebarNavLink"][aria-current="page"]\')?.innerText.includes(t)',
        arg=title,
        timeout=RUN_TIMEOUT_MS,
        polling=POLL_MS,
    )
    settle(page)


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


DEFAULT = PRESETS["densenet121"]


@pytest.fixture(scope="module")
def nav_tab(browser_context, app_url):
    """One tab that opens the app once; the page tests then reach every page from its sidebar link, as a student
    does (a click costs Chromium about a third of a page load, which starts Streamlit's frontend again)."""
    page = browser_context.new_page()
    try:
        open_url(page, app_url)
        yield page
    finally:
        page.close()


@pytest.fixture(scope="module")
def nav(nav_tab) -> dict[str, str]:
    """The sidebar navigation of the served app: {page title: URL}, read from the links themselves."""
    return dict((title, href) for href, title in nav_links(nav_tab))


def test_the_navigation_lists_every_page(nav):
    assert list(nav) == [t for _, t in PAGES]
    assert len(nav) == len(PAGES) >= 5


@pytest.mark.parametrize(("script", "title"), PAGES, ids=[Path(s).stem for s, _ in PAGES])
def test_every_page_draws_without_an_exception(nav_tab, nav, artifacts, script, title):
    page = nav_tab
    open_page(page, title)
    current = page.locator('[data-testid="stSidebarNavLink"][aria-current="page"]').inner_text()
    assert title in current
    assert urlparse(page.url).path == urlparse(nav[title]).path  # the page its link names
    if script == "pages/training.py":  # train for real (a few seconds on digits) so its charts exist
        train_one_epoch(page)
    no_exception(page, title)
    expected = {
        "pages/connectivity.py": ("graphviz", 2),
        "pages/growth.py": ("plotly", 2),
        "pages/memory.py": ("plotly", 2),
        "pages/tradeoffs.py": ("plotly", 1),
        "pages/features.py": ("plotly", 1),
        "pages/training.py": ("plotly", 2),
        "pages/accuracy.py": ("plotly", 3),
    }
    if script in expected:  # on a loaded machine the browser may still be placing them once the run has ended
        kind, at_least = expected[script]
        with contextlib.suppress(Exception):  # Playwright's TimeoutError: the count is asserted below
            page.wait_for_function("([sel, n]) => document.querySelectorAll(sel).length >= n",
                                   arg=[PLOTLY if kind == "plotly" else GRAPHVIZ, at_least], timeout=30_000,
                                   polling=POLL_MS)
    counts = charts_drawn(page, title)
    screenshot(page, artifacts, f"page-{slug(title)}")
    assert page.locator("h1").count() >= 1
    if script in expected:
        assert counts[kind] >= at_least, f"{title}: {counts}"
    if script == "pages/build.py":
        assert metric(page, "Parameters") == f"{count_params(DEFAULT):,}"
    if script == "pages/features.py":
        image = page.locator('[data-testid="stImage"] img').first
        image.wait_for(timeout=30_000)
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    record(f"browser_page_{Path(script).stem}", counts)


def test_growth_rate_and_layers_change_what_every_page_shows(page, app_url, artifacts):
    open_url(page, app_url)
    wait_for_metric(page, "Parameters", f"{count_params(DEFAULT):,}")

    # Growth rate k: 32 -> 12 with the slider's keyboard handling.
    set_slider(page, "growth_rate", 12)
    k12 = replace(DEFAULT, growth_rate=12)
    wait_for_metric(page, "Parameters", f"{count_params(k12):,}")
    no_exception(page, "after k = 12")

    # Layers in block 3: 24 -> 4 by typing in the blocks box.
    set_text(page, "block_config", "6, 12, 4, 16")
    changed = replace(k12, block_config=(6, 12, 4, 16))
    wait_for_metric(page, "Parameters", f"{count_params(changed):,}")
    no_exception(page, "after blocks 6, 12, 4, 16")
    screenshot(page, artifacts, "changed-build")

    # The URL now carries the model, so the link can be shared.
    query = parse_qs(urlparse(page.url).query)
    assert query.get("k") == ["12"] and query.get("blocks") == ["6-12-4-16"], page.url

    # Channel growth: the saw-tooth ends at the new model's final width, +12 per layer.
    open_page(page, "Channel growth")
    no_exception(page, "Channel growth after the change")
    charts_drawn(page, "Channel growth")
    ys = page.locator(".st-key-channel_chart .js-plotly-plot").evaluate(
        "gd => Array.from(gd._fullData.find(t => t.name.includes('current')).y)"
    )
    assert ys[-1] == changed.num_features
    assert ys[1] - ys[0] == 12
    screenshot(page, artifacts, "changed-growth")

    # Connectivity of block 3 (4 layers): L(L+1)/2 = 10 connections, drawn as a graph.
    open_page(page, "Connectivity")
    page.locator(".st-key-conn_block").click()
    page.get_by_role("option", name=re.compile(r"Block 3 \(4 layers\)")).click()
    page.get_by_text(re.compile(r"Block 3 has 10 connections into its 4 layers")).wait_for(timeout=RUN_TIMEOUT_MS)
    settle(page)
    no_exception(page, "Connectivity, block 3")
    assert charts_drawn(page, "Connectivity")["graphviz"] >= 2
    screenshot(page, artifacts, "changed-connectivity")


def test_a_shared_link_opens_its_model(page, app_url, artifacts):
    config = replace(DEFAULT, growth_rate=20, block_config=(4, 8, 8, 4), num_init_features=40)
    open_url(page, f"{app_url}/?preset=densenet121&k=20&blocks=4-8-8-4&k0=40")
    no_exception(page, "shared link")
    wait_for_metric(page, "Parameters", f"{count_params(config):,}")
    assert page.locator('.st-key-growth_rate input[type="range"]').input_value() == "20"
    assert page.locator(".st-key-block_config input").input_value() == "4, 8, 8, 4"
    assert not page.locator('[data-testid="stAlert"]').filter(has_text="problem").count()
    screenshot(page, artifacts, "shared-link")

    # A link straight to another page, with a CIFAR preset.
    bc = PRESETS["densenet_bc_100_12"]
    open_url(page, f"{app_url}/growth?preset=densenet_bc_100_12")
    no_exception(page, "shared link to Channel growth")
    assert page.get_by_text("DenseNet-BC (L=100, k=12)").count() >= 1
    ys = page.locator(".st-key-channel_chart .js-plotly-plot").evaluate(
        "gd => Array.from(gd._fullData.find(t => t.name.includes('current')).y)"
    )
    assert isinstance(bc, DenseNetConfig) and ys[-1] == bc.num_features == 342


def test_a_broken_link_warns_and_the_app_keeps_serving(page, app_url, app_server, artifacts):
    open_url(page, f"{app_url}/?k=NaN&blocks=%F0%9F%92%A5&size=-5&theta=inf&zzz=1&k0={'9' * 500}")
    no_exception(page, "broken link")
    text = "\n".join(a.inner_text() for a in page.locator('[data-testid="stAlert"]').all())
    for said in ("k=", "blocks=", "size=", "theta=", "zzz", "k0="):
        assert said in text, f"the warning does not mention {said}: {text}"
    wait_for_metric(page, "Parameters", f"{count_params(DEFAULT):,}")  # the defaults stand in
    screenshot(page, artifacts, "broken-link")
    assert app_server.alive()


def test_fast_key_presses_on_a_slider_end_in_one_consistent_model(browser_context, app_url, artifacts):
    # Three fresh sessions (tests/test_fast_clicks.py presses fast in lesson boxes and after page clicks too).
    for attempt in range(3):
        page = browser_context.new_page()
        try:
            open_url(page, app_url)
            thumb = page.locator('.st-key-growth_rate input[type="range"]')
            thumb.focus()
            thumb.press("Home")
            for _ in range(11):  # as fast as a student holding the arrow key
                thumb.press("ArrowRight")
            # The last press's value reaches the URL (every run the presses started is settled below); a timeout
            # (Playwright's TimeoutError) is no failure by itself: what the page shows then is checked below.
            with contextlib.suppress(Exception):
                page.wait_for_function("() => new URLSearchParams(location.search).get('k') === '12'", timeout=1500,
                                       polling=POLL_MS)
            settle(page)
            shown = int(thumb.input_value())
            k_url = int(parse_qs(urlparse(page.url).query).get("k", ["32"])[0])
            params = metric(page, "Parameters")
            if not (shown == 12 and k_url == 12 and params == f"{count_params(replace(DEFAULT, growth_rate=12)):,}"):
                screenshot(page, artifacts, "fast-slider-inconsistent")
                pytest.fail(f"attempt {attempt}: slider shows {shown}, URL k={k_url}, Parameters {params} (want 12)")
        finally:
            page.close()


def shown_controls(page) -> set[str]:
    """The settings controls drawn: a lesson link's in the page's lesson box, everyone else's in the sidebar
    (the bottleneck toggle stands for bn_size)."""
    lesson = page.locator('[data-testid="stMain"] .st-key-lesson_box').count() > 0
    where = '[data-testid="stMain"] .st-key-lesson_box' if lesson else '[data-testid="stSidebar"]'
    shown = set()
    for control in us.CONTROLS:
        key = keys.BOTTLENECK if control.name == "bn_size" else control.name
        if page.locator(f"{where} .st-key-{key}").count():
            shown.add(control.name)
    return shown


def test_every_lesson_step_link_opens_its_page_with_only_its_controls(browser_context, page, app_url, artifacts):
    # One step's link followed from the Lessons page itself: a new tab, the step's page, only its controls.
    open_url(page, f"{app_url}/lessons?lesson=01-channels-into-a-layer&step=2")
    no_exception(page, "Lessons")
    screenshot(page, artifacts, "lesson-step")
    with browser_context.expect_page() as opened:
        page.locator(".st-key-lesson_link_2 a").first.click()
    tab = opened.value
    try:
        tab.wait_for_selector('[data-testid="stSidebarNavLink"]', timeout=RUN_TIMEOUT_MS)
        settle(tab)
        assert urlparse(tab.url).path.endswith("/growth"), tab.url
        assert shown_controls(tab) == {"growth_rate"}
        assert tab.locator('.st-key-growth_rate input[type="range"]').input_value() == "12"
    finally:
        tab.close()

    # A step's link for each page and set of controls, opened as a student would open it from a slide (which
    # settings every step's link names, and which controls it shows, tests/test_lessons.py checks for each one).
    links = {}
    for lesson in shipped_lessons():
        for step in lesson.steps:
            if step.page is not None:
                links.setdefault((step.page, None if step.show is None else frozenset(step.show)),
                                 (us.query_string(step.query), step))
    for (target, _), (query, step) in links.items():
        open_url(page, f"{app_url}/{target}?{query}")
        no_exception(page, f"lesson link {target}?{query}")
        expected = set(us.BY_NAME) - {"efficient_impl"} if step.show is None else set(step.show)
        assert shown_controls(page) == expected, f"{target}?{query}"
        current = page.locator('[data-testid="stSidebarNavLink"][aria-current="page"]').get_attribute("href")
        assert urlparse(current).path.endswith(f"/{target}"), current
    record("browser_lesson_links", len(links))
