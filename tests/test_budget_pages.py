"""No link can stall the server: the corners of the config space, each page in a fresh session, are computed or
refused with a message (never an exception) within the compute budget plus a margin."""

from __future__ import annotations

import time

import pytest
from apptest_helpers import new_app, shown

from densenet_viz.analysis import cost
from densenet_viz.analysis.budget import ENV_JOB_MEMORY
from densenet_viz.app import work

PAGES = ["build", "connectivity", "growth", "memory", "tradeoffs", "features"]
# Worker start-up (importing torch) and a loaded 2-core machine; without the budget the first link took 404 s.
MARGIN_S = 20.0
CORNERS = {
    # The links that stalled the server: a 1,029-layer DenseNet at 1024x1024, eight blocks of 64, DenseNet-264.
    "k=64, 4x128 layers, 1024 px, batch 256": {"k": "64", "blocks": "128-128-128-128", "size": "1024", "batch": "256"},
    "k=48, 8x64 layers, 1024 px": {"blocks": "-".join(["64"] * 8), "k": "48", "size": "1024"},
    "DenseNet-264, 1024 px, batch 512, efficient": {"preset": "densenet264", "size": "1024", "batch": "512",
                                                    "eff": "1", "impl": "recompute_bn"},
    # Every control at its largest, in float64.
    "largest k, layers, blocks, k0, bottleneck, input, batch; float64": {
        "k": "128", "blocks": "-".join(["128"] * 8), "k0": "512", "bn": "8", "size": "1024", "batch": "1024",
        "dtype": "float64"},
}


@pytest.fixture(scope="module", autouse=True)
def warm():
    """Imports, the pool's workers and the calibration happen once per server process, not per view."""
    new_app().run()
    work.start_pools()
    work.job_pool(work.VIEW).worker_pids()  # the lane the pages' views run on, its worker started


@pytest.mark.parametrize("query", CORNERS.values(), ids=CORNERS.keys())
def test_every_page_answers_a_corner_within_the_budget(query):
    budget = cost.budget_seconds()
    for page in PAGES:
        at = new_app(query)
        start = time.perf_counter()
        at.run()
        if page != "build":
            at.switch_page(f"pages/{page}.py").run()
        seconds = time.perf_counter() - start
        assert not at.exception, (page, [e.value for e in at.exception])
        refusals = [shown(e.value) for e in at.error]
        assert all(r.startswith(("Not built", "Not computed")) for r in refusals), (page, refusals)
        if page == "features" and not refusals:
            # Before the server's calibration, on a machine slower than the cost model, the view may run and be
            # stopped at its deadline, which the page says.
            stopped = any("deadline passed" in e.value for e in at.warning)
            maps = any(e.key == "fm_grid" for e in at.get("plotly_chart"))
            assert stopped or maps, ("neither maps nor a refusal", [e.value for e in at.warning])
        assert seconds < budget + MARGIN_S, (page, seconds)


def test_a_refused_view_says_what_it_would_cost_and_how_to_get_under_it(monkeypatch):
    monkeypatch.setenv(ENV_JOB_MEMORY, str(64 * 1024))  # memory allowed: the compute budget is what refuses
    at = new_app({"blocks": "-".join(["64"] * 8), "k": "48", "size": "1024"})
    at.run()
    at.switch_page("pages/features.py").run()
    (refusal,) = [shown(e.value) for e in at.error]
    assert "of CPU on this server" in refusal and "budget" in refusal, refusal
    assert "smaller input size" in refusal and cost.ENV_BUDGET in refusal, refusal


def test_a_view_over_the_memory_one_job_may_use_is_refused_before_it_runs():
    """DenseNet-161 at 1024 pixels: 109 MiB of weights and 264 MiB of inference activations (analyze()), which a
    worker grows by about 1.5x: over the default 512 MiB a job may use, so it never reaches a worker."""
    at = new_app({"preset": "densenet161", "size": "1024"})
    at.run()
    at.switch_page("pages/features.py").run()
    (refusal,) = [shown(e.value) for e in at.error]
    assert refusal.startswith("Not built") and "over its budget of 512.0 MiB" in refusal, refusal
    assert ENV_JOB_MEMORY in refusal, refusal
    assert not at.get("plotly_chart")
