"""WCAG 2.1 AA in a real browser: axe-core on every page and state, at a desktop and a phone width.

axe-core is pinned (AXE_VERSION, with the registry's sha512 integrity) and fetched once from the npm registry
with `npm pack` into .cache/ (git-ignored); Playwright injects it into the served app in Debian's Chromium
(tests/conftest.py). It runs axe's WCAG 2.0 and 2.1 level A and AA rules on every page in its default state,
after a lesson link, after training, and with an uploaded image shown, each at 1400 px and at 390 px wide;
each test prints the violations it finds and fails on any. What every run found lands in
test-artifacts/axe.json and axe.md (the table docs/accessibility.md reports).

One app server and one tab serve every state: a state is opened once and checked at both widths.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ARTIFACTS, ROOT
from PIL import Image
from test_browser import PAGES, POLL_MS, RUN_TIMEOUT_MS, no_exception, open_in_app, screenshot, settle, train_one_epoch
from test_mobile import draw_every_chart

pytestmark = [pytest.mark.browser, pytest.mark.slow]

AXE_VERSION = "4.14.1"
# `npm view axe-core@4.14.1 dist.integrity`: the tarball is refused unless it hashes to this.
AXE_INTEGRITY = "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
AXE_DIR = ROOT / ".cache" / f"axe-core-{AXE_VERSION}"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
WIDTHS = {"1400px": {"width": 1400, "height": 1000}, "390px": {"width": 390, "height": 844}}
REPORT = ARTIFACTS / "axe.json"

# Every page by the path it is served at (app.py's first page is "/"), in the navigation's order.
PAGE_PATHS = {title: "" if i == 0 else Path(script).stem for i, (script, title) in enumerate(PAGES)}
LESSON_LINK = "growth?preset=densenet_bc_100_12&show=k"
LESSON_STEP = "lessons?lesson=01-channels-into-a-layer&step=2"


def fetch_axe(version: str = AXE_VERSION, integrity: str = AXE_INTEGRITY, into: Path = AXE_DIR) -> Path:
    """axe.min.js of this axe-core release: from `into` if there, else `npm pack`ed from the registry (once)."""
    target = into / "axe.min.js"
    if target.exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(f"npm is not installed and {target} is not cached: cannot fetch axe-core {version}")
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([npm, "pack", f"axe-core@{version}", "--pack-destination", tmp, "--silent"],
                              capture_output=True, text=True, timeout=300)
        tarball = Path(tmp) / f"axe-core-{version}.tgz"
        if done.returncode != 0 or not tarball.exists():
            pytest.skip(f"npm pack axe-core@{version} failed (no registry?): {done.stderr.strip()[-500:]}")
        algorithm, _, expected = integrity.partition("-")
        digest = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
        assert digest == expected, f"axe-core-{version}.tgz does not match its registry integrity {integrity}"
        with tarfile.open(tarball) as tar:
            source = tar.extractfile("package/axe.min.js").read()
    into.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(source)
    partial.replace(target)  # whole or not at all: a cut download is fetched again next time
    return target


@pytest.fixture(scope="module")
def axe_source() -> str:
    """The pinned axe-core's source, checked to be that release."""
    source = fetch_axe().read_text(encoding="utf-8")
    assert f"axe v{AXE_VERSION}" in source[:500], "the cached axe.min.js is not the pinned release"
    return source


def run_axe(page, source: str) -> list[dict]:
    """axe's WCAG 2.0/2.1 A and AA violations on the page as it is now: rule, impact and each node."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(content=source)
    return page.evaluate(
        """async tags => {
             const result = await axe.run(document, {runOnly: {type: 'tag', values: tags},
                                                     resultTypes: ['violations']});
             return result.violations.map(v => ({
               id: v.id, impact: v.impact, help: v.help,
               nodes: v.nodes.map(n => ({target: n.target.join(' '), html: n.html.slice(0, 240),
                                         summary: (n.failureSummary || '').slice(0, 400)}))}));
           }""",
        WCAG_TAGS,
    )


def record_axe(state: str, width: str, violations: list[dict]) -> None:
    """Merge one state's violations at one width into test-artifacts/axe.json, and the table into axe.md."""
    ARTIFACTS.mkdir(exist_ok=True)
    data = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    data.setdefault(state, {})[width] = violations
    REPORT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    lines = [f"# axe-core {AXE_VERSION}: WCAG 2.0/2.1 A and AA violations (nodes)", "",
             "| page, state | " + " | ".join(WIDTHS) + " |", "|---|" + "---|" * len(WIDTHS)]
    for name, widths in data.items():
        cells = []
        for w in WIDTHS:
            found = widths.get(w)
            cells.append("–" if found is None else
                         ", ".join(f"`{v['id']}` {len(v['nodes'])}" for v in found) or "0")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (ARTIFACTS / "axe.md").write_text("\n".join(lines) + "\n")


def describe_violations(violations: list[dict]) -> str:
    out = []
    for v in violations:
        out.append(f"  {v['id']} ({v['impact']}): {v['help']}, {len(v['nodes'])} node(s)")
        out += [f"    {n['target']}\n      {n['html']}\n      {n['summary']}" for n in v["nodes"][:6]]
    return "\n".join(out)


def at_width(page, width: str) -> None:
    """Lay the page out at this width and wait until it has settled there."""
    if page.viewport_size == WIDTHS[width]:
        return
    page.set_viewport_size(WIDTHS[width])
    page.wait_for_timeout(600)  # plotly and the sidebar re-lay out on resize (no script run: nothing to settle)


def check(page, source: str, state: str, widths=tuple(WIDTHS)) -> dict[str, list[dict]]:
    """axe at each width; records and prints what it finds, returns {width: violations}."""
    found = {}
    for width in widths:
        at_width(page, width)
        no_exception(page, f"{state} at {width}")
        violations = run_axe(page, source)
        record_axe(state, width, violations)
        if violations:
            print(f"\n{state} at {width}: {sum(len(v['nodes']) for v in violations)} node(s)\n"
                  + describe_violations(violations))
        found[width] = violations
    return found


def assert_none(found: dict[str, list[dict]], state: str) -> None:
    bad = {w: v for w, v in found.items() if v}
    assert not bad, f"{state}: axe found WCAG violations\n" + "\n".join(
        f"at {w}:\n{describe_violations(v)}" for w, v in bad.items())


def open_path(page, app_url: str, path: str, in_app: bool = False) -> None:
    """Open `path` from its link, or (in_app, once the tab shows the app) through the app's own history."""
    page.set_viewport_size(WIDTHS["1400px"])
    if in_app and page.url.startswith(app_url):
        open_in_app(page, f"/{path}")
    else:
        page.goto(f"{app_url}/{path}")
        page.wait_for_selector('[data-testid="stApp"]', timeout=RUN_TIMEOUT_MS)
    page.wait_for_selector("h1", timeout=RUN_TIMEOUT_MS)
    settle(page)


@pytest.fixture(scope="module", autouse=True)
def fresh_report():
    """axe.json holds this run's findings only."""
    REPORT.unlink(missing_ok=True)
    (ARTIFACTS / "axe.md").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def tab(browser_context):
    """One tab for every state of this module (a state that needs a session's past keeps it)."""
    page = browser_context.new_page()
    try:
        yield page
    finally:
        page.close()


def png_bytes(seed: int) -> bytes:
    """A small random RGB PNG, as a student's upload."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_axe_is_the_pinned_release(axe_source):
    assert f"axe v{AXE_VERSION}" in axe_source[:500]


@pytest.mark.parametrize("title", list(PAGE_PATHS))
def test_every_page_in_its_default_state(tab, app_url, axe_source, title):
    open_path(tab, app_url, PAGE_PATHS[title], in_app=True)  # no control moved yet: each page as it opens
    assert_none(check(tab, axe_source, f"{title}: default"), title)


def test_a_lesson_link(tab, app_url, axe_source):
    open_path(tab, app_url, LESSON_LINK)
    assert tab.locator(".st-key-lesson_box").count() == 1
    assert_none(check(tab, axe_source, "Channel growth: lesson link"), "lesson link")


def test_a_lesson_step_answered_and_revealed(tab, app_url, axe_source):
    open_path(tab, app_url, LESSON_STEP)
    answer = tab.get_by_role("spinbutton", name=re.compile("Your answer"))
    answer.fill("1")
    answer.press("Enter")
    settle(tab)
    tab.get_by_role("button", name="Check").click()
    tab.get_by_text("Not quite").wait_for(timeout=RUN_TIMEOUT_MS)
    settle(tab)
    found = check(tab, axe_source, "Lessons: answered wrong", widths=("390px", "1400px"))
    tab.get_by_role("button", name="Reveal").click()
    tab.get_by_text("Answer:").first.wait_for(timeout=RUN_TIMEOUT_MS)
    settle(tab)
    found2 = check(tab, axe_source, "Lessons: revealed")
    assert_none({**{f"wrong {w}": v for w, v in found.items()}, **found2}, "lesson step")


def test_after_training_the_training_and_feature_pages(tab, app_url, axe_source):
    open_path(tab, app_url, "training")
    train_one_epoch(tab)
    trained = check(tab, axe_source, "Train & feature reuse: after training", widths=("390px", "1400px"))
    # The trained model lives in this session: reach Feature maps through the navigation, not a new page load.
    tab.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Feature maps").first.click()
    tab.get_by_role("heading", name="Feature maps").wait_for(timeout=RUN_TIMEOUT_MS)
    settle(tab)
    tab.locator('[data-testid="stRadio"]').filter(has_text="Weights").get_by_text("Trained in this app").click()
    tab.get_by_text("Digit (held-out test set)").first.wait_for(timeout=RUN_TIMEOUT_MS)
    settle(tab)
    tab.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=RUN_TIMEOUT_MS)
    features = check(tab, axe_source, "Feature maps: trained weights, a digit")
    assert_none({**{f"training {w}": v for w, v in trained.items()},
                 **{f"features {w}": v for w, v in features.items()}}, "after training")


def test_an_uploaded_image_shown(tab, app_url, axe_source):
    open_path(tab, app_url, "features")
    tab.locator('[data-testid="stRadio"]').filter(has_text="Image").get_by_text("Upload", exact=True).click()
    tab.get_by_text("Upload an image").wait_for(timeout=RUN_TIMEOUT_MS)
    settle(tab)
    tab.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        {"name": "photo.png", "mimeType": "image/png", "buffer": png_bytes(1)})
    tab.get_by_text("Block 1 output").first.wait_for(timeout=RUN_TIMEOUT_MS)
    settle(tab)
    assert_none(check(tab, axe_source, "Feature maps: an uploaded image"), "upload")


FOCUSED = """() => { const e = document.activeElement;
  return e ? {tag: e.tagName, role: e.getAttribute('role'), label: e.getAttribute('aria-label') || '',
              text: (e.innerText || '').trim().slice(0, 80), type: e.getAttribute('type') || ''} : null; }"""


def tab_to(page, wanted, limit: int = 120, back: bool = False) -> int:
    """Press Tab (Shift+Tab if `back`) until the focused element satisfies `wanted`; returns how many presses."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        focused = page.evaluate(FOCUSED)
        if focused and wanted(focused):
            return presses
    pytest.fail(f"{limit} Tab presses never reached the element; last focused: {page.evaluate(FOCUSED)}")


def test_a_lesson_can_be_done_with_the_keyboard_alone(browser_context, app_url):
    """Reach the answer field, answer, Check, Reveal, open the step's page, move its control, come back: Tab,
    typing, Enter, Space and arrow keys only (no mouse, no clicks)."""
    page = browser_context.new_page()
    try:
        open_path(page, app_url, LESSON_STEP)
        presses = {"answer": tab_to(page, lambda f: f["label"].startswith("Your answer"))}
        page.keyboard.type("1")
        page.keyboard.press("Enter")  # commits the number
        settle(page)
        presses["check"] = tab_to(page, lambda f: f["tag"] == "BUTTON" and f["text"] == "Check")
        page.keyboard.press("Enter")
        page.get_by_text("Not quite").wait_for(timeout=RUN_TIMEOUT_MS)
        settle(page)
        presses["reveal"] = tab_to(page, lambda f: f["tag"] == "BUTTON" and f["text"] == "Reveal")
        page.keyboard.press("Space")
        page.get_by_text("Answer:").first.wait_for(timeout=RUN_TIMEOUT_MS)
        settle(page)
        progress = page.locator('[data-testid="stProgress"]').inner_text()
        assert "1 of" in progress, progress
        # The step's page, from its link button above the question (a link: Enter opens it, in a new tab).
        presses["open"] = tab_to(page, lambda f: f["tag"] == "A" and "Open the" in f["text"], back=True)
        with browser_context.expect_page() as opened:
            page.keyboard.press("Enter")
        step = opened.value
        try:
            step.wait_for_selector('[data-testid="stSidebarNavLink"]', timeout=RUN_TIMEOUT_MS)
            settle(step)
            presses["control"] = tab_to(step, lambda f: f["type"] == "range" or f["role"] == "slider")
            slider = step.locator('.st-key-growth_rate input[type="range"]')
            assert slider.evaluate("e => e === document.activeElement"), "the focused slider is the growth rate"
            before = int(slider.input_value())
            chart_before = step.locator(".st-key-channel_chart .js-plotly-plot").evaluate(
                "gd => Array.from(gd._fullData.find(t => t.name.includes('current')).y)")
            step.keyboard.press("ArrowRight")
            step.wait_for_function("v => document.querySelector('.st-key-growth_rate input[type=\"range\"]')"
                                   "?.value == v", arg=str(before + 1), polling=POLL_MS)
            settle(step)
            chart_after = step.locator(".st-key-channel_chart .js-plotly-plot").evaluate(
                "gd => Array.from(gd._fullData.find(t => t.name.includes('current')).y)")
            assert chart_after[1] - chart_after[0] == before + 1 != chart_before[1] - chart_before[0]
            no_exception(step, "the step's page after a key press")
        finally:
            step.close()
        # Back on the lesson: the answer, the revealed number and the progress are all still there.
        page.bring_to_front()
        assert page.get_by_text("Answer:").count() >= 1
        assert "1 of" in page.locator('[data-testid="stProgress"]').inner_text()
        print(f"\nTab presses to each stop of the keyboard walk: {presses}")
    finally:
        page.close()


# Memory: DenseNet vs ResNet bars, plain vs memory-efficient lines; Connectivity: every kind of box, highlighted edges.
PROJECTOR_PAGES = {"memory": "memory?preset=densenet_bc_100_12", "connectivity": "connectivity?blocks=6-12-24-16"}


def test_the_projector_theme_in_the_browser(tab, app_url, axe_source, artifacts):
    """?projector=1: the page's type grows (root 24 px), charts and diagrams get larger type and thicker lines,
    still no axe violation. Screenshots of both themes, and of the default ones as colour-blind students see
    them (Machado 2009), go to test-artifacts/ (a11y-*.png)."""
    from densenet_viz.viz import colorvision

    for name, path in PROJECTOR_PAGES.items():
        for theme, query in (("default", ""), ("projector", "&projector=1")):
            open_path(tab, app_url, path + query)
            draw_every_chart(tab)
            root_px = tab.evaluate("() => parseFloat(getComputedStyle(document.documentElement).fontSize)")
            assert root_px == (24 if theme == "projector" else 16), (name, theme, root_px)
            if name == "memory":
                title_px = tab.locator(".st-key-memory_growth_chart .gtitle").first.evaluate(
                    "e => parseFloat(getComputedStyle(e).fontSize)")
                assert title_px >= (30 if theme == "projector" else 20), title_px
                widths = tab.locator(".st-key-memory_growth_chart .js-plotly-plot").evaluate(
                    "gd => gd._fullData.map(t => t.line.width)")
                assert min(widths) >= (5 if theme == "projector" else 2), widths
            else:
                sizes = tab.locator('[data-testid="stGraphVizChart"] svg text').evaluate_all(
                    "ts => ts.map(t => parseFloat(t.getAttribute('font-size')))")
                assert min(sizes) >= (22 if theme == "projector" else 14), sizes[:5]
            if theme == "projector":
                assert tab.locator(".st-key-sidebar_projector input").is_checked()
                assert_none(check(tab, axe_source, f"{name}: projector theme", widths=("1400px",)), "projector")
            shot = artifacts / f"a11y-{name}-{theme}.png"
            screenshot(tab, artifacts, shot.stem)
            if theme == "default":  # the top of the page (title, first chart or diagram) is enough to look at
                pixels = np.asarray(Image.open(shot).convert("RGB"))[:2000]
                for deficiency in colorvision.DEFICIENCIES:
                    Image.fromarray(colorvision.simulate_image(pixels, deficiency)).save(
                        artifacts / f"a11y-{name}-{deficiency}.png")
