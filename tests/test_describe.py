"""Text alternatives and the projector theme: every chart's summary and table carry the figure's own numbers,
every diagram's table holds every arrow, every page's chart comes with its text, and ?projector=1 enlarges it."""

from __future__ import annotations

import re

import numpy as np
import pytest
from apptest_helpers import open_page, plotly, shown, values
from test_charts import FIGURES as CHARTS
from test_feature_charts import FIGURES as FEATURE_CHARTS

from densenet_viz import PRESETS, DenseNetConfig
from densenet_viz.viz import charts, describe, graphs, series, style

ALL = {**CHARTS, **FEATURE_CHARTS}
SMALL = DenseNetConfig(growth_rate=12, block_config=(6, 4), num_init_features=24, stem="cifar", num_classes=10)


def plotted(fig) -> list[tuple[str, float]]:
    """(trace name, y) of every point a figure draws (legend-only entries draw nothing); heatmap cells as z."""
    out = []
    for trace in fig.data:
        t = trace.to_plotly_json()
        if t.get("type") == "heatmap":
            z = np.asarray(t["z"], dtype=float)
            out += [(t.get("name", ""), v) for v in z[np.isfinite(z)].ravel()]
            continue
        ys = list(t.get("y", []))
        if all(v is None for v in ys):
            continue
        if ys and isinstance(ys[0], str):  # a horizontal bar: the numbers are on x
            ys = list(t["x"])
        out += [(t.get("name", ""), float(v)) for v in ys if v is not None]
    return out


def table_numbers(alt: describe.TextAlternative) -> list[float]:
    """The table's plotted values: its y (or value) column."""
    table = alt.table
    column = "value" if "value" in table else table.columns[-1]
    if "value" not in table and "y" in table and table["y"].dtype != object:
        column = "y"
    return [float(v) for v in table[column]]


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_chart_has_a_summary_and_a_table_of_its_numbers(name):
    fig = ALL[name][0]()
    alt = describe.figure(fig)
    title = describe.plain_text(fig.layout.title.text)
    assert alt.summary.startswith(title) and len(alt.summary) > len(title) + 5
    points = plotted(fig)
    cells = sum(np.size(t.z) for t in fig.data if t.type == "heatmap")
    if cells > describe.CELLS:  # feature maps: one row of statistics per map
        assert len(alt.table) == sum(t.type == "heatmap" for t in fig.data)
        return
    assert len(alt.table) == len(points)
    numbers = table_numbers(alt)
    if name not in ("channel_groups_figure",):  # a horizontal bar: the numbers column is the x one
        assert np.allclose(sorted(numbers), sorted(v for _, v in points))


@pytest.mark.parametrize("name", sorted(ALL))
def test_a_summary_names_each_series_lowest_and_highest_value(name):
    fig = ALL[name][0]()
    alt = describe.figure(fig)
    for trace in fig.data:
        t = trace.to_plotly_json()
        if t.get("type") == "heatmap":
            if len(fig.data) == 1:  # one matrix: its range (a grid of maps: the lowest and highest of all, below)
                z = np.asarray(t["z"], dtype=float)
                assert describe.number(np.nanmin(z)) in alt.summary and describe.number(np.nanmax(z)) in alt.summary
            continue
        ys = [v for v in t.get("y", []) if v is not None]
        if not ys or isinstance(ys[0], str) or (t.get("name") and t["name"] not in alt.summary):
            continue
        assert describe.number(min(ys)) in alt.summary, (t.get("name"), alt.summary)
        assert describe.number(max(ys)) in alt.summary, (t.get("name"), alt.summary)


def test_the_growth_chart_summary_carries_the_saw_tooth_numbers():
    config = PRESETS["densenet121"]
    fig = charts.channel_growth_chart(series.channel_series(config, 224, [32, 12]), 32, 0.5)
    alt = describe.figure(fig)
    current = next(t for t in fig.data if "current" in t.name)
    y = [int(v) for v in current.y]
    assert y[0] == 64 and y[-1] == config.num_features == 1024
    assert f"k = 32 (current): {len(y)} points from 64 at x = 1 to 1,024 at x = {len(y)}" in alt.summary
    assert "k = 12:" in alt.summary
    rows = alt.table[alt.table["series"] == "k = 32 (current)"]
    assert rows["channels entering (count)"].tolist() == y


def test_the_comparison_summary_carries_both_models_parameters():
    fig = CHARTS["comparison_bars"][0]()
    alt = describe.figure(fig)
    assert "Parameters (M), DenseNet-121: parameters 7.979" in alt.summary  # 7,978,856 parameters
    assert "Parameters (M), ResNet-50: parameters 25.56" in alt.summary  # 25,557,032
    assert set(alt.table["panel"]) == {"Parameters (M)", "MACs/image (G)", "Memory (MiB)"}


def test_a_grid_of_maps_is_one_sentence_with_its_extremes():
    fig = FEATURE_CHARTS["feature_grid_figure"][0]()
    alt = describe.figure(fig)
    maps = [np.asarray(t.z, dtype=float) for t in fig.data if t.type == "heatmap"]
    assert f"{len(maps)} maps of 8 × 8 values" in alt.summary
    assert describe.number(min(m.min() for m in maps)) in alt.summary
    assert describe.number(max(m.max() for m in maps)) in alt.summary


def test_numbers_are_written_in_full_or_to_four_digits():
    assert describe.number(1024.0) == "1,024"
    assert describe.number(7978856) == "7,978,856"
    assert describe.number(0.123456) == "0.1235"
    assert describe.number(float("nan")) == "no value"
    assert describe.plain_text("Channels<br>per <b>layer</b>") == "Channels per layer"


@pytest.mark.parametrize("make", [
    lambda: graphs.dense_block_trace(SMALL, 1, 32),
    lambda: graphs.network_trace(SMALL, 32),
    lambda: graphs.dense_layer_trace(SMALL, 1, 5, 32),
    lambda: graphs.resnet_block_trace(PRESETS["resnet18"], 224),
], ids=["block", "network", "layer", "resnet"])
def test_every_diagram_lists_every_arrow(make):
    trace = make()
    alt = describe.graph(trace)
    assert len(alt.table) == len(trace.edges)
    assert f"{len(trace.nodes)} boxes and {len(trace.edges)} arrows" in alt.summary
    assert trace.title in alt.summary


def test_a_block_diagram_says_its_L_L_plus_1_over_2_reads():
    alt = describe.graph(graphs.dense_block_trace(SMALL, 1, 32))  # L = 6: 21 reads, 7 into the output
    assert "28 arrows (21 reads of an earlier map, 7 into the block output)" in alt.summary
    reads = alt.table[alt.table["connection"] == "reads of an earlier map"]
    assert len(reads) == 6 * 7 // 2
    assert (reads["to"].str.startswith("H6 → x6")).sum() == 6  # the last layer reads x0 … x5


def fonts(node) -> list[float]:
    """Every font size in a figure's dict."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("font") and isinstance(value, dict) and "size" in value:
                found.append(value["size"])
            found += fonts(value)
    elif isinstance(node, list):
        for item in node:
            found += fonts(item)
    return found


@pytest.mark.parametrize("name", sorted(ALL))
def test_the_projector_theme_enlarges_type_and_thickens_lines(name):
    spec = style.projector_spec(ALL[name][0]().to_dict())
    assert min(fonts(spec)) >= style.PROJECTOR_MIN_FONT
    for trace in spec["data"]:
        if trace.get("type", "scatter") == "scatter":
            assert trace["line"]["width"] >= style.PROJECTOR_LINE_WIDTH
    for shape in spec["layout"].get("shapes", []):
        assert shape["line"]["width"] >= 3


def test_a_projector_diagram_has_larger_type_and_thicker_lines():
    trace = graphs.dense_block_trace(SMALL, 1, 32)
    normal, big = graphs.draw(trace, "x3").source, graphs.draw(trace, "x3", projector=True).source
    sizes = [float(v) for v in re.findall(r'fontsize=(\d+)', big)]
    assert min(sizes) >= 22 and max(sizes) == 30 and "penwidth=2.5" in big
    assert "penwidth=2.5" not in normal and "fontsize=16" in normal


def test_projector_link_switches_the_theme_on_and_the_charts_follow():
    at = open_page("growth", {"preset": "densenet_bc_100_12", "projector": "1"})
    assert at.sidebar.toggle(key="sidebar_projector").value is True
    assert not at.warning  # projector is a known URL key, not a problem with the link
    assert at.query_params.get("projector") in ("1", ["1"])
    big = plotly(at, "channel_chart")
    assert min(fonts(big)) >= style.PROJECTOR_MIN_FONT
    assert max(t["line"]["width"] for t in big["data"]) >= style.PROJECTOR_LINE_WIDTH
    assert any("<style>" in h.value and "font-size" in h.value for h in at.get("html"))
    at.sidebar.toggle(key="sidebar_projector").set_value(False).run()
    small = plotly(at, "channel_chart")
    assert max(fonts(small)) < style.PROJECTOR_MIN_FONT + 1
    assert "projector" not in at.query_params


def test_every_chart_on_a_page_comes_with_its_summary_and_table():
    at = open_page("memory", {"preset": "densenet_bc_100_12"})
    keys = ("comparison_chart", "block_chart", "memory_growth_chart")
    captions = [shown(c.value) for c in at.caption]
    for key in keys:
        title = describe.plain_text(plotly(at, key)["layout"]["title"]["text"])
        assert any(c.startswith(f"{title}.") for c in captions), (title, captions)
    assert [e.label for e in at.expander].count("The numbers in this chart, as a table") == len(keys)
    # The tables are drawn once their expanders are opened; each holds every plotted value of its chart.
    before = len(at.dataframe)
    for key in keys:
        at.session_state[f"{key}_numbers_box"] = True
    at.run()
    assert len(at.dataframe) == before + len(keys)
    boxes = [e for e in at.expander if e.label == "The numbers in this chart, as a table"]  # in the charts' order
    for key, box in zip(keys, boxes, strict=True):
        table = box.dataframe[0].value
        assert len(table) == sum(len(values(t["y"])) for t in plotly(at, key)["data"] if "y" in t), key


def test_a_shared_figure_keeps_each_theme_apart():
    """Figures are built once per server and themed per theme: the projector theme (larger type, thicker lines)
    must not leak into the light page another session draws from the same figure."""
    query = {"preset": "densenet_bc_100_12"}
    light = plotly(open_page("tradeoffs", query), "growth_sweep")
    big = plotly(open_page("tradeoffs", {**query, "projector": "1"}), "growth_sweep")
    again = plotly(open_page("tradeoffs", query), "growth_sweep")
    assert again == light and big != light
    assert all(s["line"].get("width", 2) < 3 for s in again["layout"]["shapes"])  # the baseline's dotted lines
    assert all(s["line"]["width"] >= 3 for s in big["layout"]["shapes"])


def test_images_have_alt_text():
    at = open_page("features", {"preset": "densenet_bc_100_12"})
    alts = [img.alt for element in at.get("image") for img in element.proto.imgs]
    assert any(alt.startswith("The network's input: the sample image") and "32×32 pixels" in alt for alt in alts), alts


@pytest.mark.parametrize(("theme", "color"), [("light", style.foreground(False)), ("dark", style.foreground(True))])
def test_chart_text_is_in_the_full_text_colour_of_the_theme(theme, color):
    """Streamlit's chart theme greys axis text to #808495 (3.8:1 on white); ui.plot sets it to the text colour."""
    at = open_page("memory", {"preset": "densenet_bc_100_12"}, theme=theme)
    for key in ("comparison_chart", "block_chart"):
        layout = plotly(at, key)["layout"]
        for axis in [v for k, v in layout.items() if k.startswith(("xaxis", "yaxis"))]:
            assert axis["tickfont"]["color"] == color and axis["title"]["font"]["color"] == color
        assert all(note["font"]["color"] == color for note in layout.get("annotations", []))
        assert layout["legend"]["font"]["color"] == color
