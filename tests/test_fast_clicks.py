"""An impatient student in a real browser: fresh tabs, reloads, page clicks 0.1 s after a run ended, back and
forward, fast slider key presses, preset choices, lesson links. After every step the URL must name the model the
student chose (only the slider and the preset menu change it), every control must show the URL's value, and no
page may say "Invalid settings" (issue 22: a dropped widget state came back at its minimum or empty value).
"""

from __future__ import annotations

import contextlib
import random
import time
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import record
from test_browser import RUN_TIMEOUT_MS, no_exception, settle

from densenet_viz import settings as us
from densenet_viz.app import keys
from densenet_viz.models.config import PRESET_TITLES

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Fresh tabs (fresh sessions), each opened, reloaded, then clicked through quickly: a fixed number of steps, so
# what the test tries does not depend on the machine's speed (issue 22's fault showed in 1 of 12 to 7 of 20 steps).
STEPS_PER_TAB = 5
KINDS = ("click", "back", "forward", "preset", "slider")  # the steps after a tab's first (a reload)
IDLE_MS = 100  # the pause after a run ended before the next click, as the student did
RUN_END_POLL_MS = 20  # how soon the test sees a run's end (in the page: no round trip)
RUN_ENDS_MS = 10_000  # a click's run has ended by then (a slower one is settled before the check)
HISTORY_MS = 2_000  # back or forward to an entry of the same page may start no run
SEED = 22

# Counts the runs that ended in this document: every transition of stApp to "notRunning".
COUNT_RUNS = """
(() => {
  window.__runsEnded = 0;
  const state = (el) => el.getAttribute('data-test-script-state');
  new MutationObserver((records) => {
    // One record per change, holding the value before it: the value after is the next record's old value.
    records.forEach((record, i) => {
      const next = records.slice(i + 1).find(r => r.target === record.target);
      const after = next ? next.oldValue : state(record.target);
      if (after === 'notRunning' && record.oldValue !== 'notRunning') window.__runsEnded += 1;
    });
  }).observe(document, {subtree: true, attributes: true, attributeOldValue: true,
                        attributeFilter: ['data-test-script-state']});
})();
"""

# Every control's value as the browser shows it, read where it is drawn (the sidebar, or a lesson's box).
READ_CONTROLS = """
([where, bottleneck]) => {
  const root = document.querySelector(where);
  if (!root) return null;
  const box = (key) => root.querySelector('.st-key-' + key);
  const out = {};
  for (const key of ['growth_rate', 'bn_size', 'compression']) {
    const input = box(key)?.querySelector('input[type="range"]');
    if (input) out[key] = input.value;
  }
  for (const key of ['block_config', 'num_init_features', 'num_classes', 'input_size', 'batch_size']) {
    const input = box(key)?.querySelector('input');
    if (input) out[key] = input.value;
  }
  for (const key of [bottleneck, 'memory_efficient']) {
    const input = box(key)?.querySelector('input[type="checkbox"]');
    if (input) out[key] = input.checked;
  }
  const stem = box('stem')?.querySelector('input[type="radio"]:checked');
  if (stem) out.stem = stem.closest('label')?.innerText.trim();
  return out;
}
"""

STEM_LABELS = {"imagenet": "ImageNet (7×7/2 + pool)", "cifar": "CIFAR (3×3)"}


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def url_settings(page) -> tuple[dict, bool]:
    """The settings the page's URL names, and whether it is a lesson link (some controls hidden)."""
    params = {k: v[-1] for k, v in parse_qs(urlparse(page.url).query).items()}
    query = us.settings_from_query(params)
    return query.settings, len(query.visible) < len(us.CONTROLS)


def mismatches(page, model: dict) -> list[str]:
    """What differs from `model`, the settings the student chose: the URL's, the controls', an 'Invalid settings'."""
    problems = []
    if page.get_by_text("Invalid settings").count():
        problems.append("the page says 'Invalid settings'")
    expected, lesson = url_settings(page)
    changed = {n: (v, model[n]) for n, v in expected.items() if model[n] != v}
    if changed:
        problems.append(f"the URL changed settings nobody changed: {changed} (URL value, chosen value)")
    where = '[data-testid="stMain"] .st-key-lesson_box' if lesson else '[data-testid="stSidebar"]'
    shown = page.evaluate(READ_CONTROLS, [where, keys.BOTTLENECK]) or {}
    want = {
        "growth_rate": expected["growth_rate"],
        "block_config": us.format_blocks(expected["block_config"]),
        "num_init_features": expected["num_init_features"],
        "compression": expected["compression"],
        "num_classes": expected["num_classes"],
        "input_size": expected["input_size"],
        "batch_size": expected["batch_size"],
        keys.BOTTLENECK: expected["bn_size"] > 0,
        "memory_efficient": expected["memory_efficient"],
        "stem": STEM_LABELS[expected["stem"]],
    }
    if expected["bn_size"] > 0:
        want["bn_size"] = expected["bn_size"]
    for key, value in want.items():
        if key not in shown:
            continue  # hidden by a lesson link, or not drawn on this page
        got = shown[key]
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (_number(got) == float(value) if numeric and got else got == value):
            problems.append(f"{key} shows {got!r}, the URL says {value!r}")
    if not lesson and "growth_rate" not in shown:
        problems.append("the sidebar shows no growth-rate slider")
    return problems


def chose_preset(model: dict, name: str) -> dict:
    """The settings after choosing a preset, as a student expects them: its model, its family's input size."""
    new = {**model, **us.preset_settings(name), "preset": name}
    if new["stem"] != model["stem"]:
        new["input_size"] = us.default_size(new["stem"])
    if new["baseline"] not in us.baseline_choices(new["stem"]):
        new["baseline"] = "auto-params"
    return new


def runs_ended(page) -> int:
    try:
        return page.evaluate("() => window.__runsEnded ?? 0")
    except Exception:  # the document is being replaced (a reload, back or forward)
        return 0


def wait_idle(page, before: int, within_ms: int = RUN_ENDS_MS) -> None:
    """Wait until a run that the last action started has ended, then IDLE_MS more (the student's reaction)."""
    deadline = time.monotonic() + within_ms / 1000
    while runs_ended(page) <= before and time.monotonic() < deadline:
        # Checked in the page every 20 ms, so the click still follows the run's end by IDLE_MS (a round trip from
        # here every 20 ms cost a whole core, taken from the server the test waits for); the wait ends early when a
        # reload, back or forward replaces the document.
        with contextlib.suppress(Exception):
            page.wait_for_function("n => (window.__runsEnded ?? 0) > n", arg=before, polling=RUN_END_POLL_MS,
                                   timeout=max(1.0, (deadline - time.monotonic()) * 1000))
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=RUN_TIMEOUT_MS)
    page.wait_for_timeout(IDLE_MS)


def nav_titles(page) -> list[str]:
    return page.eval_on_selector_all(
        '[data-testid="stSidebarNavLink"]', "els => els.map(e => e.innerText.split('\\n').pop().trim())"
    )


def test_fast_clicks_keep_the_url_and_the_controls_in_step(browser_context, app_url, artifacts):
    rng = random.Random(SEED)
    starts = [
        "/growth?preset=densenet121&k=20&blocks=4-8-8-4",
        "/memory?preset=densenet_bc_100_12&show=k",  # a lesson link: its control is in the page
        "/connectivity?preset=densenet169&show=k,theta,blocks",
    ]
    tried, wrong, log, actions = 0, 0, [], set()
    t0 = time.monotonic()
    for tab_index, start in enumerate(starts):
        page = browser_context.new_page()
        page.add_init_script(COUNT_RUNS)
        try:
            page.goto(app_url + start)
            page.wait_for_selector('[data-testid="stSidebarNavLink"]', timeout=RUN_TIMEOUT_MS)
            wait_idle(page, 0)
            titles = nav_titles(page)
            model, _ = url_settings(page)  # what the student has chosen so far: only the slider changes it
            behind, ahead = 0, 0  # history entries back and forward go to
            for step in range(STEPS_PER_TAB):
                slider = page.locator('.st-key-growth_rate input[type="range"]').first
                menu = page.locator('[data-testid="stSidebar"] .st-key-preset')
                choices = ["click"] * 5 + ["back"] * (behind > 0) + ["forward"] * (ahead > 0) + ["slider"] * 2 * (
                    slider.count() > 0) + ["preset"] * (menu.count() > 0)
                untried = [a for a in KINDS if a in choices and a not in actions]  # each kind once, early on
                action = "reload" if step == 0 else untried[0] if untried else rng.choice(choices)
                before = runs_ended(page)
                if action == "reload":
                    page.reload()
                    page.wait_for_selector('[data-testid="stSidebarNavLink"]', timeout=RUN_TIMEOUT_MS)
                    before = 0
                elif action == "click":
                    current = page.locator('[data-testid="stSidebarNavLink"][aria-current="page"]').inner_text()
                    title = rng.choice([t for t in titles if t not in current])
                    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text=title).first.click()
                    behind, ahead = behind + 1, 0
                elif action in ("back", "forward"):
                    (page.go_back if action == "back" else page.go_forward)(wait_until="commit")
                    behind, ahead = (behind - 1, ahead + 1) if action == "back" else (behind + 1, ahead - 1)
                elif action == "preset":
                    # Choosing the preset the menu shows already changes nothing.
                    showing = menu.evaluate("e => e.innerText + [...e.querySelectorAll('input')].map(i => i.value)")
                    name = rng.choice([n for n in us.densenet_presets() if PRESET_TITLES[n] not in showing])
                    menu.click()
                    page.get_by_role("option", name=PRESET_TITLES[name], exact=True).click()
                    model = chose_preset(model, name)
                else:
                    slider.focus()
                    low, high = int(slider.get_attribute("min")), int(slider.get_attribute("max"))
                    for _ in range(rng.randint(2, 6)):  # as fast as a student holding the arrow key
                        right = rng.random() < 0.7
                        slider.press("ArrowRight" if right else "ArrowLeft")
                        model["growth_rate"] = min(high, max(low, model["growth_rate"] + (1 if right else -1)))
                    model["preset"] = us.matching_preset(model)
                wait_idle(page, before, HISTORY_MS if action in ("back", "forward") else RUN_ENDS_MS)
                tried += 1
                actions.add(action)
                print(f"{time.monotonic() - t0:5.1f} s  tab {tab_index} {action:8s} {urlparse(page.url).path}?"
                      f"{urlparse(page.url).query}")
                problems = mismatches(page, model)
                if problems:
                    # Maybe only not settled yet: what counts is what stays on screen once every run has ended.
                    settle(page)
                    problems = mismatches(page, model)
                if problems:
                    wrong += 1
                    log.append(f"tab {tab_index} ({start}), step {step} ({action}): {page.url}: {'; '.join(problems)}")
                    page.screenshot(path=str(artifacts / f"fast-clicks-wrong-{wrong}.png"))
                no_exception(page, f"tab {tab_index}, step {step} ({action})")
        finally:
            page.close()
    record("browser_fast_clicks", {"steps": tried, "wrong": wrong, "seconds": round(time.monotonic() - t0, 1)})
    print(f"fast clicks: {tried} steps, {wrong} went wrong, {time.monotonic() - t0:.0f} s")
    assert not wrong, f"{wrong} of {tried} steps went wrong:\n" + "\n".join(log[:20])
    assert tried == len(starts) * STEPS_PER_TAB
    assert {"reload", *KINDS} <= actions, f"the steps never tried {actions}"
