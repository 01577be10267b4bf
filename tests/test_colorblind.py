"""Colour-blind students: every pair of colours a chart or diagram tells apart stays apart under simulated
protanopia, deuteranopia and tritanopia (Machado et al. 2009, severity 1.0): CIEDE2000 >= 10 after the
simulation. CIEDE2000 itself is checked against the 34 test pairs Sharma, Wu and Dalal (2005) publish."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_charts import FIGURES as CHARTS
from test_feature_charts import FIGURES as FEATURE_CHARTS

from densenet_viz import PRESETS, DenseNetConfig
from densenet_viz.viz import charts, colorvision, graphs, series
from densenet_viz.viz import feature_charts as fc
from densenet_viz.viz.style import KIND_COLORS, OKABE_ITO, SERIES_COLORS

MIN_DIFFERENCE = 10.0  # CIEDE2000: about what separates two legend entries at a glance (1 is just noticeable)
VISION = (None, *colorvision.DEFICIENCIES)  # normal vision too

# Sharma, Wu and Dalal (2005), Table 1: L1, a1, b1, L2, a2, b2, ΔE00 (to 4 decimals).
SHARMA_2005 = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


@pytest.mark.parametrize("pair", SHARMA_2005, ids=[f"pair{i}" for i in range(1, 35)])
def test_ciede2000_matches_sharma_wu_dalal_2005(pair):
    *labs, expected = pair
    lab1, lab2 = tuple(labs[:3]), tuple(labs[3:])
    assert round(colorvision.ciede2000(lab1, lab2), 4) == expected
    assert round(colorvision.ciede2000(lab2, lab1), 4) == expected  # symmetric


def test_srgb_to_lab_and_the_simulation_keep_white_black_and_greys():
    assert np.allclose(colorvision.srgb_to_lab("#FFFFFF"), (100, 0, 0), atol=0.01)
    assert np.allclose(colorvision.srgb_to_lab("#000000"), (0, 0, 0), atol=0.01)
    for deficiency in colorvision.DEFICIENCIES:  # each matrix's rows sum to 1: neutral colours stay neutral
        for grey in ("#FFFFFF", "#000000", "#666666"):
            assert colorvision.difference(grey, colorvision.simulate(grey, deficiency)) < 0.5
    # Red and green, the classic confusion: far apart for normal vision, close for a deuteranope.
    assert colorvision.difference("#D55E00", "#009E73") > 40
    assert colorvision.difference("#FF0000", "#00B000", "deuteranopia") < colorvision.difference("#FF0000", "#00B000")


def test_the_image_simulation_matches_the_colour_one():
    palette = list(OKABE_ITO.values())
    image = np.array([[colorvision.hex_to_rgb(c) for c in palette]]) * 255
    for deficiency in colorvision.DEFICIENCIES:
        seen = colorvision.simulate_image(np.round(image).astype(np.uint8), deficiency)[0]
        assert [colorvision.rgb_to_hex(tuple(p / 255)) for p in seen] == [colorvision.simulate(c, deficiency)
                                                                          for c in palette]


def trace_colors(fig) -> set[str]:
    """The colours a plotly figure's legend and series tell apart (lines, markers, bars; not colour scales)."""
    found = set()
    for trace in fig.data:
        t = trace.to_plotly_json()
        for part in ("line", "marker"):
            color = (t.get(part) or {}).get("color")
            if isinstance(color, str) and color.startswith("#"):
                found.add(color.upper())
            elif isinstance(color, (list, tuple)):
                found.update(c.upper() for c in color if isinstance(c, str) and c.startswith("#"))
    return found


def too_close(colors: set[str]) -> list[str]:
    """Every pair of colours that some vision sees less than MIN_DIFFERENCE apart, with how far."""
    bad = []
    for a, b in itertools.combinations(sorted(colors), 2):
        for vision in VISION:
            d = colorvision.difference(a, b, vision)
            if d < MIN_DIFFERENCE:
                bad.append(f"{a} vs {b}: {d:.1f} ({vision or 'normal vision'})")
    return bad


@pytest.mark.parametrize("name", sorted({**CHARTS, **FEATURE_CHARTS}))
def test_every_chart_keeps_its_series_apart_for_colour_blind_students(name):
    fig = {**CHARTS, **FEATURE_CHARTS}[name][0]()
    assert not too_close(trace_colors(fig))


def test_all_growth_rates_overlaid_stay_apart():
    config = PRESETS["densenet_bc_100_12"]
    fig = charts.channel_growth_chart(series.channel_series(config, 32, list(series.GROWTH_RATES[:8])), 12, 0.5)
    colors = trace_colors(fig)
    assert colors == {c.upper() for c in SERIES_COLORS}
    assert not too_close(colors)


def test_a_long_block_output_colours_every_source_apart():
    config = DenseNetConfig(growth_rate=12, block_config=(12,), num_init_features=24, stem="cifar")
    from densenet_viz.lab import features as fx  # the block output's channel groups: x0, then one per layer

    spec = next(s for s in fx.selectable_layers(config, 32) if s.kind == "dense_block")
    colors = set(fc.source_colors(fx.channel_groups(spec, 12)).values())
    assert len(colors) == len(OKABE_ITO)  # x0 grey and seven colours, cycling after layer 7
    assert not too_close(colors)


@pytest.mark.parametrize("make", [
    lambda: graphs.dense_block_trace(PRESETS["densenet121"], 1),
    lambda: graphs.network_trace(PRESETS["densenet121"]),
    lambda: graphs.dense_layer_trace(PRESETS["densenet121"], 1, 6),
    lambda: graphs.resnet_block_trace(PRESETS["resnet50"]),
], ids=["block", "network", "layer", "resnet"])
def test_every_diagram_keeps_its_kinds_apart(make):
    trace = make()
    fills = {KIND_COLORS[n.kind] for n in trace.nodes}
    assert not too_close(fills | {graphs.HIGHLIGHT_COLOR})


def test_the_whole_palette_stays_apart_and_the_old_grey_did_not():
    assert not too_close(set(OKABE_ITO.values()))
    # #999999, the grey before: reddish purple and it were 6.4 apart for a deuteranope.
    assert colorvision.difference(OKABE_ITO["reddish_purple"], "#999999", "deuteranopia") < 7
