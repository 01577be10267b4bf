"""Phones and projectors in a real browser: every page fits the screen, and a lesson link's controls sit in the page.

Two screens, emulated in the one Chromium of tests/conftest.py through the DevTools protocol (the same calls
Playwright's `is_mobile` device presets make):
- a phone: 390x844 CSS pixels, device pixel ratio 3, mobile viewport and touch events;
- a projector: a 1280x720 window at 150% browser zoom. Chromium's zoom lays a page out in the window's size
  divided by the zoom, at a device pixel ratio multiplied by it: 853x480 CSS pixels at ratio 1.5, which is what
  this test sets (the page cannot tell the two apart).
Screenshots of every page on both screens go to test-artifacts/ (mobile-*.png, zoom150-*.png).
"""

from __future__ import annotations

import base64
import contextlib
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from test_browser import PAGES, RUN_TIMEOUT_MS, no_exception, open_in_app, settle, train_one_epoch

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENS = {
    "mobile": {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True},
    "zoom150": {"width": round(1280 / 1.5), "height": round(720 / 1.5), "deviceScaleFactor": 1.5, "mobile": False},
}
LESSON = "/growth?preset=densenet_bc_100_12&show=k"  # k is the growth rate's URL key (settings.CONTROLS)
CURRENT_K = "gd => Array.from(gd._fullData.find(t => t.name.includes('current')).y)"

# Every text plotly draws that a student must read, and where it sits: its box, its chart's box, the viewport.
TEXT_BOXES = """() => {
  const out = [];
  for (const chart of document.querySelectorAll('.js-plotly-plot')) {
    const c = chart.getBoundingClientRect();
    for (const e of chart.querySelectorAll('.gtitle, .xtitle, .ytitle, .annotation-text, .legendtext')) {
      const r = e.getBoundingClientRect();
      if (r.width) out.push({text: e.textContent.slice(0, 60), kind: e.getAttribute('class').split(' ')[0],
                             left: r.left, right: r.right, top: r.top, bottom: r.bottom,
                             chart: {left: c.left, right: c.right, top: c.top, bottom: c.bottom}});
    }
  }
  return out;
}"""
# A display formula that does not fit its box is cut at the box's edge.
CUT_FORMULAS = """() => [...document.querySelectorAll('.katex-display')].filter(box => {
  const f = box.querySelector('.katex-html').getBoundingClientRect(), b = box.getBoundingClientRect();
  return f.right > b.right + 0.5 || f.right > window.innerWidth;
}).map(box => box.textContent.slice(0, 60))"""


def emulate(page, screen: dict):
    """Make this tab the screen (size, pixel ratio, mobile viewport, touch); returns the DevTools session."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setDeviceMetricsOverride", screen)
    cdp.send("Emulation.setTouchEmulationEnabled", {"enabled": screen["mobile"], "maxTouchPoints": 5})
    return cdp


def open_path(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector('[data-testid="stApp"]', timeout=RUN_TIMEOUT_MS)
    page.wait_for_selector("h1", timeout=RUN_TIMEOUT_MS)
    settle(page)


def draw_every_chart(page) -> None:
    """Scroll each chart into view so plotly lays it out at this width (then back to the top)."""
    for selector in ('[data-testid="stPlotlyChart"] .js-plotly-plot', '[data-testid="stGraphVizChart"] svg'):
        charts = page.locator(selector)
        for i in range(charts.count()):
            charts.nth(i).scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]')?.scrollTo(0, 0)")


def screenshot(page, cdp, screen: dict, path: Path) -> None:
    """The whole page in CSS pixels: Streamlit scrolls inside its main section, so grow the screen first."""
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll('section, div')].map(e => e.scrollHeight))")
    tall = {**screen, "height": min(height + 40, 12_000)}
    cdp.send("Emulation.setDeviceMetricsOverride", tall)
    page.wait_for_timeout(700)  # plotly re-lays out on resize
    clip = {"x": 0, "y": 0, "width": tall["width"], "height": tall["height"], "scale": 1 / screen["deviceScaleFactor"]}
    shot = cdp.send("Page.captureScreenshot", {"format": "png", "clip": clip})
    path.write_bytes(base64.b64decode(shot["data"]))
    # Back to the screen's size; nothing is checked after a screenshot before the next page opens (and lays out anew).
    cdp.send("Emulation.setDeviceMetricsOverride", screen)


def misplaced_text(page) -> list[str]:
    """Chart texts that leave the viewport sideways, and titles that leave their own chart."""
    width = page.evaluate("() => window.innerWidth")
    problems = []
    for box in page.evaluate(TEXT_BOXES):
        if box["left"] < -0.5 or box["right"] > width + 0.5:
            problems.append(f"{box['kind']} {box['text']!r} spans x {box['left']:.0f}..{box['right']:.0f} of {width}")
        chart = box["chart"]
        if box["kind"] in ("gtitle", "xtitle", "ytitle") and not (
            chart["left"] - 0.5 <= box["left"] and box["right"] <= chart["right"] + 0.5
            and chart["top"] - 0.5 <= box["top"] and box["bottom"] <= chart["bottom"] + 0.5
        ):
            problems.append(f"{box['kind']} {box['text']!r} is cut at its chart's edge")
    return problems


@pytest.mark.parametrize("screen_name", list(SCREENS))
def test_every_page_fits_the_screen(browser_context, app_url, artifacts, screen_name):
    screen = SCREENS[screen_name]
    page = browser_context.new_page()
    try:
        cdp = emulate(page, screen)
        problems = {}
        for i, (script, title) in enumerate(PAGES):
            stem = Path(script).stem
            if i == 0:
                open_path(page, f"{app_url}/{stem}")
            else:  # each page laid out anew at this screen, without loading the frontend again
                open_in_app(page, f"/{stem}")
                page.wait_for_selector("h1", timeout=RUN_TIMEOUT_MS)
            assert page.evaluate("() => [innerWidth, devicePixelRatio]") == [screen["width"],
                                                                            screen["deviceScaleFactor"]]
            if stem == "training":  # train (a few seconds on digits) so the page's charts exist
                train_one_epoch(page)
            no_exception(page, f"{title} on {screen_name}")
            draw_every_chart(page)
            scroll = page.evaluate("() => [document.scrollingElement.scrollWidth, innerWidth]")
            found = misplaced_text(page) + [f"formula cut: {t!r}" for t in page.evaluate(CUT_FORMULAS)]
            if scroll[0] > scroll[1]:
                found.append(f"the page scrolls sideways: {scroll[0]} px wide in {scroll[1]}")
            screenshot(page, cdp, screen, artifacts / f"{screen_name}-{stem}.png")
            if found:
                problems[title] = found
        assert not problems, problems
    finally:
        page.close()


@pytest.mark.parametrize("screen_name", list(SCREENS))
def test_a_lesson_links_slider_in_the_page_drives_the_chart_and_the_url(browser_context, app_url, artifacts,
                                                                        screen_name):
    screen = SCREENS[screen_name]
    page = browser_context.new_page()
    try:
        cdp = emulate(page, screen)
        open_path(page, app_url + LESSON)
        no_exception(page, "lesson link")
        assert page.locator('[data-testid="stSidebar"] .st-key-growth_rate').count() == 0
        thumb = page.locator('[data-testid="stMain"] .st-key-lesson_box .st-key-growth_rate input[type="range"]')
        with contextlib.suppress(Exception):  # a loaded machine's browser may draw it after the run ended
            thumb.first.wait_for(state="attached", timeout=30_000)
        assert thumb.count() == 1 and thumb.input_value() == "12"
        chart = page.locator(".st-key-channel_chart .js-plotly-plot")
        # Right above the figure it drives.
        assert thumb.bounding_box()["y"] < chart.bounding_box()["y"]
        before = chart.evaluate(CURRENT_K)
        assert before[1] - before[0] == 12  # DenseNet-BC (L=100, k=12): +k per layer

        thumb.focus()
        thumb.press("ArrowRight")
        settle(page)
        no_exception(page, "after moving the lesson's slider")
        assert thumb.input_value() == "13"
        after = chart.evaluate(CURRENT_K)
        assert after[1] - after[0] == 13 and after[0] == before[0]  # same k0, the new k
        query = parse_qs(urlparse(page.url).query)
        assert query.get("k") == ["13"] and query.get("show") == ["k"], page.url
        screenshot(page, cdp, screen, artifacts / f"{screen_name}-lesson-growth.png")
    finally:
        page.close()
