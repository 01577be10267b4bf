"""AppTest of every page: renders without exception (fast after the first build), figures follow the controls.

Plotly charts come back as JSON (`proto.spec`) and graphviz charts as DOT, so the tests read the data the
browser would draw: the channel chart's y values, the DOT's edges, the matrix's ones.
"""

from __future__ import annotations

import math
import re
import time

import numpy as np
import pytest
from apptest_helpers import dots, new_app, open_page, plotly, shown, values
from second_methods import count_dot_edges

from densenet_viz import PRESETS
from densenet_viz.analysis import cost
from densenet_viz.analysis.closed_form import max_batch_that_fits

PAGES = ["build", "connectivity", "growth", "memory", "tradeoffs"]
CIFAR_QUERY = {"preset": "densenet_bc_100_12", "blocks": "4-5-6"}  # small: fast pages


def test_every_page_renders_densenet121_without_error_in_under_two_seconds():
    at = new_app()
    at.run()  # the first run builds and caches (the "after the first build")
    timings = {}
    for page in PAGES * 2:
        at.switch_page(f"pages/{page}.py")
        start = time.perf_counter()
        at.run()
        timings[page] = time.perf_counter() - start  # the second pass: everything cached
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, [shown(e.value) for e in at.error])
        assert at.title, page
    assert max(timings.values()) < 2.0, timings


def test_build_page_shows_the_real_model_its_numbers_and_a_filterable_table():
    at = open_page("build")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Parameters"] == "7,978,856"
    assert metrics["MACs per image"] == "2.83 G MACs"
    assert metrics["Training activations, plain"] == "125.0 MiB"  # docs/reference.md
    assert "on **cpu**" in shown(at.success[0].value)
    assert r"x_\ell = H_\ell" in at.latex[0].value
    table = at.dataframe[0].value
    assert len(table) == 64
    at.multiselect(key="build_kinds").set_value(["dense_layer"]).run()
    at.multiselect(key="build_blocks").set_value([3]).run()
    table = at.dataframe[0].value
    assert len(table) == 24 and set(table["kind"]) == {"dense_layer"}
    assert at.get("download_button")


def test_build_refuses_a_model_too_big_for_the_device(monkeypatch):
    monkeypatch.setattr("densenet_viz.analysis.budget.free_memory_bytes", lambda device: 16 * 2**20)
    at = open_page("build", {"preset": "densenet121", "k": "40"})  # not cached yet under this config
    assert any("Not built" in e.value and "MiB" in shown(e.value) for e in at.error)
    assert not at.exception


def test_channel_chart_follows_k0_plus_k_times_l_for_the_chosen_k():
    at = open_page("growth", CIFAR_QUERY)
    for k in (12, 7):
        at.sidebar.slider(key="growth_rate").set_value(k).run()
        assert not at.exception
        spec = plotly(at, "channel_chart")
        y = values(spec["data"][0]["y"])
        k0 = 24  # DenseNet-BC (k=12) keeps k0 = 24 when k changes
        assert y[:4] == [k0 + k * (layer - 1) for layer in range(1, 5)]
        assert y[4] == k0 + 4 * k  # the transition reads the block's output
        assert y[5] == math.floor(0.5 * (k0 + 4 * k))  # and the next block starts at floor(theta * c)
    at.multiselect(key="growth_overlay").set_value([4, 24]).run()
    assert [t["name"] for t in plotly(at, "channel_chart")["data"]] == ["k = 7 (current)", "k = 4", "k = 24"]
    spatial = values(plotly(at, "spatial_chart")["data"][0]["y"])
    assert sorted(set(spatial), reverse=True) == [32, 16, 8]


def test_connectivity_draws_L_L_plus_1_over_2_edges_and_steps_through_the_block():
    at = open_page("connectivity", {"preset": "densenet121"})
    block, whole = dots(at)[0], dots(at)[-1]
    assert count_dot_edges(block, dashed=False) == 6 * 7 // 2  # block 1 of DenseNet-121: L = 6
    assert count_dot_edges(block, dashed=True) == 7
    assert "transition1" in whole and "1024 → 1000" in whole
    at.slider(key="conn_layer").set_value(4).run()
    lit = [line for line in dots(at)[0].splitlines() if "->" in line and "penwidth=3" in line]
    assert len(lit) == 4  # H4 reads x0..x3
    # Block 2 has 12 layers: the matrix is the default view, the graph is still offered.
    at.selectbox(key="conn_block").set_value(2).run()
    matrix = plotly(at, "conn_matrix")
    assert int(np.sum(values(matrix["data"][0]["z"]))) == 12 * 13 // 2
    at.get("button_group")[0].set_value("Graph").run()
    assert count_dot_edges(dots(at)[0], dashed=False) == 12 * 13 // 2


def test_blocks_over_24_layers_are_only_a_matrix():
    at = open_page("connectivity", {"preset": "densenet121", "blocks": "30-4"})
    assert at.get("button_group")[0].proto.options[0].content == "Matrix"
    assert len(at.get("button_group")[0].proto.options) == 1
    matrix = plotly(at, "conn_matrix")
    assert int(np.sum(values(matrix["data"][0]["z"]))) == 30 * 31 // 2
    assert len(dots(at)) == 3  # the dense layer, the ResNet block, the whole network: no block graph


def test_dark_theme_graphs_use_light_lines():
    at = open_page("connectivity", CIFAR_QUERY, theme="dark")
    assert all("#FAFAFA" in dot for dot in dots(at))


def test_memory_page_compares_with_the_baseline():
    at = open_page("memory", {"preset": "densenet121", "baseline": "resnet50", "impl": "checkpoint"})
    table = at.dataframe[0].value.set_index("quantity")
    assert table.loc["Parameters", "DenseNet-121"] == "7.98 M"
    assert table.loc["Parameters", "ResNet-50"] == "25.56 M"
    assert table.loc["Training activations, memory-efficient", "DenseNet-121"] == "60.1 MiB"  # torchvision's mode
    bars = plotly(at, "comparison_chart")
    assert {t["name"] for t in bars["data"]} == {"DenseNet-121", "ResNet-50"}
    growth = plotly(at, "memory_growth_chart")
    plain, efficient = (values(t["y"]) for t in growth["data"])
    assert plain[-1] > 4 * efficient[-1]  # quadratic vs linear by 64 layers


def test_memory_page_measures_the_trade_on_request(monkeypatch):
    pytest.importorskip("densenet_viz.analysis.trade")
    # The job's deadline follows the budget: its worker runs niced, and a slow machine busy with the rest of the
    # suite gave it too little CPU to finish in the default 20 s.
    monkeypatch.setenv(cost.ENV_BUDGET, "60")
    at = open_page("memory", {"preset": "densenet_bc_100_12", "blocks": "2-2-2", "batch": "2"})
    assert not at.get("plotly_chart") or all(e.key != "trade_chart" for e in at.get("plotly_chart"))
    at.button(key="memory_measure_trade").click().run()
    assert not at.exception and not at.error and not at.warning, [e.value for e in [*at.error, *at.warning]]
    ratios = plotly(at, "trade_chart")
    assert values(ratios["data"][0]["x"])[0] == "plain"
    table = next(d.value for d in at.dataframe if "time ÷ plain" in d.value).set_index("mode")  # not a chart's numbers
    assert table.loc["plain", "time ÷ plain"] == "1.00×" and table.loc["plain", "memory ÷ plain"] == "1.00×"
    assert table.loc["checkpoint", "saved activations"].endswith("iB")


def test_tradeoffs_sweeps_and_the_largest_batch_follow_the_budget():
    at = open_page("tradeoffs", CIFAR_QUERY)
    growth = plotly(at, "growth_sweep")
    ks = values(next(t for t in growth["data"] if t["name"] == "DenseNet")["x"])
    assert ks == [4, 8, 12, 16, 24, 32, 40, 48, 64]
    depth = plotly(at, "depth_sweep")
    assert any(t["name"] == "ResNets" for t in depth["data"])
    config = PRESETS["densenet_bc_100_12"].__class__(
        growth_rate=12, block_config=(4, 5, 6), num_init_features=24, stem="cifar", num_classes=10
    )
    for gib in (1.0, 0.25):
        at.number_input(key="tradeoffs_budget_gib").set_value(gib).run()
        shown = {m.label: m.value for m in at.metric}
        expected = max_batch_that_fits(config, 32, int(gib * 2**30), mode="train_plain")
        assert shown["Training, plain"] == f"{expected:,}"


@pytest.mark.parametrize("page", PAGES)
def test_a_bad_url_falls_back_to_defaults_with_a_warning(page):
    at = open_page(page, {"preset": "densenet_bc_100_12", "k": "NaN", "theta": "-1", "blocks": "💥"})
    warnings = " ".join(shown(w.value) for w in at.warning)
    assert "k='NaN'" in warnings and "theta='-1'" in warnings and "blocks=" in warnings
    assert not at.error
    assert at.sidebar.slider(key="growth_rate").value == 12  # the preset's k, not the garbage


@pytest.mark.parametrize("page", PAGES)
def test_an_invalid_combination_shows_the_allowed_range_and_no_traceback(page):
    at = open_page(page, CIFAR_QUERY)
    at.sidebar.text_input(key="block_config").set_value("4, x").run()
    assert not at.exception
    assert any("layers per block" in e.value and "1 to 8" in shown(e.value) for e in at.error)
    at.sidebar.text_input(key="block_config").set_value("1, 1").run()
    at.sidebar.number_input(key="num_init_features").set_value(1).run()
    at.sidebar.slider(key="growth_rate").set_value(1).run()
    at.sidebar.slider(key="compression").set_value(0.05).run()
    assert not at.exception
    assert any(re.search(r"compression >= 0\.5", shown(e.value)) for e in at.error)


def test_the_build_page_says_only_what_its_shared_build_does(monkeypatch, in_process_pool):
    import densenet_viz.lab.tasks as tasks

    calls = []  # the Build page's own job (the feature maps build their seeded model in a job of theirs)
    real = tasks.build_seconds
    monkeypatch.setattr(tasks, "build_seconds", lambda *a, **k: calls.append(a) or real(*a, **k))
    at = open_page("build", CIFAR_QUERY)
    said = shown(at.success[0].value)
    for page in ("memory", "features", "build"):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
    assert len(calls) == 1 and shown(at.success[0].value) == said  # back on Build: the shared build, same build time
    assert "share that build" in said and "coming back with the same settings" in said
    second = open_page("build", CIFAR_QUERY)  # another student, same model: no build of its own
    assert len(calls) == 1 and second.success[0].value == said


@pytest.mark.parametrize("impl", ["checkpoint", "recompute_bn"])
def test_the_memory_page_says_what_each_memory_efficient_layer_really_keeps(impl):
    # Measured on the meta device: what one more memory-efficient layer adds to a block's saved bytes, in
    # channel maps (batch statistics are a few bytes per channel, far below one map here).
    import torch

    from densenet_viz.analysis.trade import saved_activation_bytes
    from densenet_viz.models.densenet import DenseBlock

    k, bn = 32, 4
    x = torch.empty(2, 64, 32, 32, device="meta", requires_grad=True)
    saved = [saved_activation_bytes(DenseBlock(n, 64, bn, k, 0.0, True, impl).to("meta"), x) for n in (3, 4)]
    maps = (saved[1] - saved[0]) // (2 * 32 * 32 * 4) - k  # besides the layer's k new maps
    at = open_page("memory", {"preset": "densenet121", "eff": "1", "impl": impl})
    text = " ".join(m.value for m in at.markdown)
    assert f"({maps} maps" in text, text
    assert "only the k new maps" not in text
