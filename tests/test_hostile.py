"""Hostile input in the browser: nothing a student sends becomes a link, an image, HTML or math on any page, and the
quick subset of `python -m densenet_viz.bench hostile` meets the robustness goal (answered, survived, bounded)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from conftest import record
from test_browser import PAGES, no_exception, open_url, slug

from densenet_viz.bench import hostile
from densenet_viz.bench.stream import run_sync

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OUTSIDE = hostile.OUTSIDE
PAYLOADS = {
    "k": f"[click here](http://{OUTSIDE}/link)",
    "preset": f"![t](http://{OUTSIDE}/image.png)",
    f"[Session expired: log in again](http://{OUTSIDE}/key)": "1",
    "show": f"<img src=http://{OUTSIDE}/html.png><b id=injected>bold</b>",
    "hide": f"<http://{OUTSIDE}/autolink> http://{OUTSIDE}/bare www.{OUTSIDE}.example me@{OUTSIDE}.example",
    "theta": f"$\\href{{http://{OUTSIDE}/tex}}{{x}}$ $$x^2$$",
    "blocks": "\u202egnp.exe\u0000\n# heading " + "6" * 5000,
    "lesson": f"[x](http://{OUTSIDE}/lesson)",
    "step": f"![s](http://{OUTSIDE}/step.png)",
}
QUERY = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in PAYLOADS.items())


@pytest.mark.parametrize(("script", "title"), PAGES, ids=[slug(t) for _, t in PAGES])
def test_no_link_image_html_or_math_from_a_hostile_link_on_any_page(browser_context, app_url, script, title):
    page = browser_context.new_page()
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if urlsplit(r.url).hostname == OUTSIDE else None)
    try:
        # A new visit to the page's own path (Streamlit names it after its file): the app reads a link once, when
        # the session starts.
        open_url(page, f"{app_url}/{Path(script).stem}?{QUERY}")
        no_exception(page, title)  # and no "Page not found": this page ran, not the default one
        alerts = page.locator('[data-testid="stAlert"]')
        assert "The link had problems" in " ".join(alerts.all_inner_texts()), title
        assert page.locator(f'a[href*="{OUTSIDE}"], img[src*="{OUTSIDE}"], [src*="{OUTSIDE}"]').count() == 0, title
        assert page.locator("#injected").count() == 0, title
        assert alerts.locator(".katex, h1, h2, h3, a, img").count() == 0, title
        shown = " ".join(alerts.all_inner_texts())
        assert "\u202e" not in shown and "\u0000" not in shown, title
        assert outside == [], (title, outside)
    finally:
        page.close()


# The benchmark's quick cases that are files (an image, weights, a lesson). Its quick URL cases (url_link, url_image,
# url_key, url_html, url_lesson) carry payloads that PAYLOADS above already sends through every page.
FILE_CASES = [c for c in hostile.CASES if c.quick and not c.name.startswith("url_")]


def test_the_quick_hostile_inputs_are_answered_bounded_and_inert(app_server):
    """The make-test subset of the hostile-input benchmark, against the suite's server (started as `make run` does):
    each file answered (the benchmark reports the seconds against the 10 s goal), the server alive, server and
    workers grown by less than 0.5 GiB, and nothing from the input rendered or fetched."""
    assert {c.name for c in FILE_CASES} >= {"strip224", "name", "weights_name", "markup_lesson"}
    outcomes = run_sync(hostile._play(app_server.url, app_server.pid, FILE_CASES, warm_up=False))
    record("hostile_quick", {o.case.name: {"seconds": round(o.seen.seconds, 2), "growth_mib": o.growth_bytes >> 20}
                             for o in outcomes})
    for o in outcomes:
        assert o.survived and o.seen.answered, (o.case.name, o.row())
        assert o.growth_bytes < 2**29, (o.case.name, o.row())
        assert o.seen.rendered == 0 and o.seen.fetched == 0, (o.case.name, o.row())
        assert o.seen.said, (o.case.name, "the page said nothing")
