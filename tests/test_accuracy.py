"""Accuracy vs cost: the data file holds the published errors, the charts plot analyze()'s costs, the page says
what is known about the sidebar's model (and never invents an error for a custom one)."""

from __future__ import annotations

import tomllib
from dataclasses import replace

import pytest
from apptest_helpers import open_page, plotly, shown, values

from densenet_viz import PRESET_TITLES, PRESETS, ResNetConfig, analyze
from densenet_viz.analysis import accuracy as acc

DATA = tomllib.loads(acc.DATA_FILE.read_text())
CLASSES = {"imagenet": 1000, "c10+": 10, "c100+": 100}
SIZE = {"imagenet": 224, "c10+": 32, "c100+": 32}

# docs/reference.md's published accuracy tables, typed here as a second copy of the data file's errors.
REFERENCE = {
    ("densenet121", "imagenet", "densenet_paper"): 25.02, ("densenet169", "imagenet", "densenet_paper"): 23.80,
    ("densenet201", "imagenet", "densenet_paper"): 22.58, ("densenet264", "imagenet", "densenet_paper"): 22.15,
    ("densenet121", "imagenet", "torchvision"): 100 - 74.434, ("densenet169", "imagenet", "torchvision"): 100 - 75.600,
    ("densenet201", "imagenet", "torchvision"): 100 - 76.896, ("densenet161", "imagenet", "torchvision"): 100 - 77.138,
    ("resnet50", "imagenet", "torchvision"): 100 - 76.130, ("resnet18", "imagenet", "torchvision"): 30.242,
    ("resnet34", "imagenet", "torchvision"): 26.686, ("resnet101", "imagenet", "torchvision"): 22.626,
    ("resnet152", "imagenet", "torchvision"): 21.688,
    ("resnet18", "imagenet", "fb_resnet_torch"): 30.43, ("resnet34", "imagenet", "fb_resnet_torch"): 26.73,
    ("resnet50", "imagenet", "fb_resnet_torch"): 24.01, ("resnet101", "imagenet", "fb_resnet_torch"): 22.44,
    ("resnet152", "imagenet", "fb_resnet_torch"): 22.16, ("resnet200", "imagenet", "fb_resnet_torch"): 21.66,
    ("densenet_40_12", "c10+", "densenet_paper"): 5.24, ("densenet_40_12", "c100+", "densenet_paper"): 24.42,
    ("densenet_100_12", "c10+", "densenet_paper"): 4.10, ("densenet_100_12", "c100+", "densenet_paper"): 20.20,
    ("densenet_100_24", "c10+", "densenet_paper"): 3.74, ("densenet_100_24", "c100+", "densenet_paper"): 19.25,
    ("densenet_bc_100_12", "c10+", "densenet_paper"): 4.51, ("densenet_bc_100_12", "c100+", "densenet_paper"): 22.27,
    ("densenet_bc_250_24", "c10+", "densenet_paper"): 3.62, ("densenet_bc_250_24", "c100+", "densenet_paper"): 17.60,
    ("densenet_bc_190_40", "c10+", "densenet_paper"): 3.46, ("densenet_bc_190_40", "c100+", "densenet_paper"): 17.18,
    ("resnet110", "c10+", "densenet_paper"): 6.41, ("resnet110", "c100+", "densenet_paper"): 27.22,
    ("resnet20", "c10+", "he2016"): 8.75, ("resnet32", "c10+", "he2016"): 7.51, ("resnet44", "c10+", "he2016"): 7.17,
    ("resnet56", "c10+", "he2016"): 6.97, ("resnet110", "c10+", "he2016"): 6.43, ("resnet1202", "c10+", "he2016"): 7.93,
}  # fmt: skip
# The two models that are not presets, written out here from their papers (fb.resnet.torch, He et al. Table 6).
EXTRA = {
    "ResNet-200": ResNetConfig("bottleneck", (3, 24, 36, 3)),
    "ResNet-1202": ResNetConfig("basic", (200, 200, 200), (16, 32, 64), stem="cifar", shortcut="zero_pad"),
}
BY_TITLE = {**{PRESET_TITLES[k].removesuffix(" (CIFAR)"): v for k, v in PRESETS.items()}, **EXTRA}


def test_the_data_file_holds_every_reference_error_with_a_source_and_a_table():
    held = {(r["model"], r["dataset"], r["source"]): r for r in DATA["results"]}
    assert set(held) == set(REFERENCE)
    for key, error in REFERENCE.items():
        assert held[key]["error"] == pytest.approx(error, abs=1e-9), key
        assert held[key]["table"] and held[key]["source"] in DATA["sources"], key
    for source in DATA["sources"].values():
        assert source["title"] and source["url"].startswith("https://")


@pytest.mark.parametrize("dataset", list(CLASSES))
def test_every_cost_is_analyze_of_the_model_at_the_datasets_classes(dataset):
    table = acc.published_table(dataset)
    assert len(table) == sum(1 for k in REFERENCE if k[1] == dataset)
    for title, params, macs in zip(table["title"], table["params"], table["macs"], strict=True):
        report = analyze(replace(BY_TITLE[title], num_classes=CLASSES[dataset]), input_size=SIZE[dataset])
        assert (params, macs) == (report.params, report.macs_per_sample), title
    assert (table["flops"] == 2 * table["macs"]).all()


def test_the_paper_figure_3_claim_holds_in_the_computed_costs():
    table = acc.published_table("imagenet", acc.SOURCE_SETS["paper"]).set_index("model")
    # DenseNet-201 (22.58 %) matches ResNet-101 (22.44 %) with less than half the parameters, ~half the FLOPs.
    assert table.loc["densenet201", "params"] == 20_013_928 and table.loc["resnet101", "params"] == 44_549_160
    assert table.loc["densenet201", "flops"] / table.loc["resnet101", "flops"] == pytest.approx(
        4_291_365_888 / 7_801_405_440)


def test_nearest_ranks_by_ratio_and_a_custom_model_has_no_published_rows():
    table = acc.published_table("imagenet", acc.SOURCE_SETS["paper"])
    near = acc.nearest(table, 20_000_000, "params", n=2)
    assert list(near["model"]) == ["densenet201", "resnet34"]  # 20.01 M, then 21.80 M
    custom = acc.model_cost(replace(PRESETS["densenet121"], growth_rate=12), table)
    assert custom.published.empty and custom.params == analyze(replace(PRESETS["densenet121"], growth_rate=12)).params
    known = acc.model_cost(replace(PRESETS["densenet121"], memory_efficient=True), table)
    assert list(known.published["error"]) == [25.02]


def test_a_broken_data_entry_is_named():
    bad = {**DATA, "results": [{**DATA["results"][0], "dataset": "mnist"}]}
    with pytest.raises(ValueError, match=r"results\[0\]\.dataset"):
        acc.parse_published(bad)


def _points(figure: dict) -> list[tuple[str, float, float, str]]:
    """(title, x, error, source title) of every published point of a chart."""
    out = []
    for trace in figure["data"]:
        if trace["name"] == "your model":
            continue
        for cd, x, y in zip(trace["customdata"], values(trace["x"]), values(trace["y"]), strict=True):
            out.append((cd[0], x, y, cd[2]))
    return out


def _file_error(title: str, dataset: str, source_title: str) -> float:
    source = next(k for k, s in DATA["sources"].items() if s["title"] == source_title)
    (error,) = [r["error"] for r in DATA["results"] if r["dataset"] == dataset and r["source"] == source
                and BY_TITLE[acc.model_title(r["model"])] == BY_TITLE[title]]
    return error


@pytest.mark.parametrize("source", ["paper", "torchvision"])
def test_the_page_plots_analyze_costs_and_the_files_errors(source):
    at = open_page("accuracy")
    if source != "paper":
        at.radio(key="acc_source").set_value(source).run()
    for x in ("params", "flops"):
        points = _points(plotly(at, f"imagenet_{x}_chart"))
        expected = sum(1 for k in REFERENCE if k[1] == "imagenet" and k[2] in acc.SOURCE_SETS[source])
        assert len(points) == expected
        for title, cost, error, source_title in points:
            report = analyze(BY_TITLE[title], input_size=224)
            assert cost == (report.params if x == "params" else 2 * report.macs_per_sample), title
            assert error == _file_error(title, "imagenet", source_title)
    cifar = _points(plotly(at, "cifar_chart"))
    assert len(cifar) == sum(1 for k in REFERENCE if k[1] == "c10+")
    for title, cost, error, source_title in cifar:
        assert cost == analyze(replace(BY_TITLE[title], num_classes=10), input_size=32).params
        assert error == _file_error(title, "c10+", source_title)
    table = at.dataframe[-1].value
    assert len(table) == len(points) + len(cifar)
    assert set(table["source"]) <= {s["title"] for s in DATA["sources"].values()}
    assert at.get("download_button")


def test_the_sidebar_model_is_marked_and_a_published_one_names_its_error():
    at = open_page("accuracy")
    marker = next(t for t in plotly(at, "imagenet_flops_chart")["data"] if t["name"] == "your model")
    assert set(values(marker["x"])) == {2 * analyze(PRESETS["densenet121"]).macs_per_sample}
    assert any("25.02 %" in s.value and "Table 3" in shown(s.value) for s in at.success)
    assert not any("only training tells" in shown(i.value) for i in at.info)


def test_a_custom_model_gets_no_invented_error_and_a_link_to_training():
    at = open_page("accuracy", {"preset": "densenet121", "k": "20"})
    assert any("only training tells" in shown(i.value) for i in at.info)
    assert not at.success
    links = [e.proto.page for e in at.get("page_link")]
    assert any(p.endswith("training.py") or "training" in p for p in links), links
    marker = next(t for t in plotly(at, "imagenet_params_chart")["data"] if t["name"] == "your model")
    assert set(values(marker["x"])) == {analyze(replace(PRESETS["densenet121"], growth_rate=20)).params}


def test_a_cifar_model_with_100_classes_is_marked_on_c100():
    at = open_page("accuracy", {"preset": "densenet_bc_100_12", "classes": "100"})
    assert at.radio(key="acc_cifar").value == "c100+"
    marker = next(t for t in plotly(at, "cifar_chart")["data"] if t["name"] == "your model")
    assert set(values(marker["x"])) == {analyze(replace(PRESETS["densenet_bc_100_12"], num_classes=100)).params}
    assert any("22.27 %" in shown(s.value) for s in at.success)
    assert not [t for t in plotly(at, "imagenet_params_chart")["data"] if t["name"] == "your model"]
