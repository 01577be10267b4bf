"""Formatters and the palette: binary units written out, MACs vs FLOPs, colour-blind-safe colours."""

import pandas as pd

from densenet_viz.units import format_bytes, format_count, format_flops, format_macs, format_ratio, format_value
from densenet_viz.viz.style import KIND_COLORS, OKABE_ITO, mib_columns, text_color_on


def test_bytes_are_binary_with_the_unit_written():
    assert format_bytes(0) == "0 B"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1024) == "1.0 KiB"
    assert format_bytes(131_030_528) == "125.0 MiB"  # docs/reference.md's DenseNet-121 batch 1
    assert format_bytes(1_043_559_936) == "995.2 MiB"
    assert format_bytes(8 * 2**30) == "8.0 GiB"
    assert format_bytes(float("nan")) == "–"


def test_counts_macs_and_flops():
    assert format_count(7_978_856) == "7.98 M"
    assert format_count(512) == "512"
    assert format_macs(2_834_161_664) == "2.83 G MACs"
    assert format_flops(2_834_161_664) == "5.67 G FLOPs"  # one MAC is two FLOPs
    assert format_value(131_030_528, "bytes") == "125.0 MiB"
    assert format_ratio(0.3125) == "0.31×" and format_ratio(None) == "–"


def test_palette_is_okabe_ito_and_text_stays_readable_on_fills():
    assert set(KIND_COLORS.values()) <= set(OKABE_ITO.values())
    assert text_color_on(OKABE_ITO["blue"]) == "#FFFFFF"
    assert text_color_on(OKABE_ITO["yellow"]) == "#000000"


def test_mib_columns_rename_and_convert():
    out = mib_columns(pd.DataFrame({"output_bytes": [2**20, 2**21], "x": [1, 2]}), ["output_bytes"])
    assert list(out.columns) == ["output (MiB)", "x"]
    assert list(out["output (MiB)"]) == [1.0, 2.0]


def test_no_text_is_set_below_the_smallest_label_size():
    """style.py's rule: text at least LABEL_SIZE px (14; 16 and more for titles, axes and legends): no figure
    source writes a smaller font size in place."""
    import re
    from pathlib import Path

    from densenet_viz.viz import style

    viz = Path(style.__file__).parent
    pattern = re.compile(r'(?:font|textfont)"?\s*[:=]\s*\{[^}]*"size":\s*([A-Z_]+|\d+)|fontsize="(\d+)"')
    found = [(path.name, a or b) for path in viz.glob("*.py") for a, b in pattern.findall(path.read_text())]
    # a size named after a constant of style.py counts as that constant's value
    sizes = [(name, int(getattr(style, v, v))) for name, v in found if v.isdigit() or hasattr(style, v)]
    assert sizes, "the scan found no font sizes at all"
    assert all(size >= style.LABEL_SIZE for _, size in sizes), sizes
    assert min(style.TITLE_SIZE, style.AXIS_TITLE_SIZE, style.TICK_SIZE, style.LEGEND_SIZE, style.ANNOTATION_SIZE,
               int(style.GRAPH_FONT_SIZE)) >= 16
