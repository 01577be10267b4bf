"""Text alternatives for the figures: a short summary a screen reader reads, and the numbers as a table.

A chart or a diagram is an image to a screen reader; WCAG 2.1 (1.1.1, non-text content) asks for text that
serves the same purpose. Every figure the pages draw goes through `figure` (plotly) or `graph` (graphviz
traces): the summary names what is plotted and carries its key numbers (each series' first, last, lowest and
highest value, or every bar), and the table holds every plotted number, so nothing is only in the picture.
They read the figure itself, so they can never disagree with it.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .graphs import Trace

LISTED = 12  # bars or labelled points listed one by one in a summary; more are summarised
_TAGS = re.compile(r"<[^>]+>|■")  # markup, and the colour swatch some panel titles start with
CELLS = 2500  # heatmap cells a table lists one by one; beyond, one row of statistics per map


@dataclass(frozen=True)
class TextAlternative:
    """What a figure shows, in words (`summary`) and as numbers (`table`, one row per plotted value)."""

    summary: str
    # The table is built when first read: a page shows it only when its expander is opened, and building a
    # DataFrame for every chart on every rerun cost as much as the rest of the description.
    _build: Callable[[], pd.DataFrame] = field(repr=False, compare=False)

    @functools.cached_property
    def table(self) -> pd.DataFrame:
        """Every plotted number, one row each (built on first use)."""
        return self._build()


def plain_text(text: Any) -> str:
    """Plotly label text without its markup (<br>, <b>, <span>): line breaks become spaces."""
    return " ".join(_TAGS.sub(" ", str(text or "")).split())


def number(value: Any) -> str:
    """A plotted number as the summary writes it: whole numbers in full with thousands separators, others to 4
    significant digits."""
    if value is None:
        return "no value"
    v = float(value)
    if math.isnan(v):
        return "no value"
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    if abs(v) >= 1e4:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def _values(values: Any) -> list:
    if values is None:
        return []
    if isinstance(values, np.ndarray):
        return values.tolist()
    return list(values)


def _panels(layout: dict) -> dict[str, str]:
    """Subplot titles by the y axis of their panel ("y2" -> "MACs/image (G)"), for figures from make_subplots."""
    titles: dict[str, str] = {}
    notes = [n for n in layout.get("annotations", ()) if n.get("xref") == "paper" and n.get("yref") == "paper"]
    for key, axis in layout.items():
        if not key.startswith("yaxis") or "domain" not in axis:
            continue
        x_axis = layout.get("xaxis" + key[5:], {})
        (_, y1), (x0, x1) = axis["domain"], x_axis.get("domain", (0, 1))
        for note in notes:
            if abs(note.get("y", -1) - y1) < 1e-6 and x0 - 1e-6 <= note.get("x", -1) <= x1 + 1e-6:
                titles["y" + key[5:]] = plain_text(note.get("text"))
    return titles


def _axis_title(layout: dict, key: str) -> str:
    title = layout.get(key, {}).get("title", {})
    return plain_text(title.get("text") if isinstance(title, dict) else title)


def _scatter_sentence(name: str, xs: list, ys: list, texts: list) -> str:
    pairs = [(x, y) for x, y in zip(xs, ys, strict=False) if y is not None and not _nan(y)]
    name = f"{name}: " if name else ""
    if not pairs:
        return f"{name}no points"
    if texts and len(pairs) <= LISTED:  # labelled points: list each one
        points = [f"{plain_text(t)} ({number(x)}, {number(y)})" for t, (x, y) in zip(texts, pairs, strict=False)]
        return name + "; ".join(points)
    if len(pairs) <= 3:
        return name + ", ".join(f"{number(y)} at {_x(x)}" for x, y in pairs)
    low = min(pairs, key=lambda p: p[1])
    high = max(pairs, key=lambda p: p[1])
    return (f"{name}{len(pairs)} points from {number(pairs[0][1])} at {_x(pairs[0][0])} to {number(pairs[-1][1])} "
            f"at {_x(pairs[-1][0])}, lowest {number(low[1])} at {_x(low[0])}, highest {number(high[1])} at "
            f"{_x(high[0])}")


def _x(x: Any) -> str:
    return f"x = {number(x)}" if isinstance(x, (int, float, np.integer, np.floating)) else plain_text(x)


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _bar_sentence(name: str, xs: list, ys: list) -> str:
    if xs and ys and isinstance(ys[0], str):  # a horizontal bar: categories on y
        xs, ys = ys, xs
    bars = [f"{plain_text(x)} {number(y)}" for x, y in zip(xs, ys, strict=False)]
    if len(bars) > LISTED:
        bars = [*bars[:LISTED], f"and {len(bars) - LISTED} more"]
    return (f"{name}: " if name else "") + ", ".join(bars)


def _heatmap(trace: dict, name: str, cells: bool) -> tuple[str, list[dict]]:
    z = np.asarray(trace.get("z"), dtype=float)
    rows, cols = z.shape if z.ndim == 2 else (1, z.size)
    xs = _values(trace.get("x")) or list(range(cols))
    ys = _values(trace.get("y")) or list(range(rows))
    finite = z[np.isfinite(z)]
    if not finite.size:
        return f"{name}: {rows} × {cols} cells, no values", []
    sentence = (f"{name or 'Matrix'}: {rows} rows × {cols} columns, values from {number(finite.min())} to "
                f"{number(finite.max())}, mean {number(finite.mean())}")
    if cells:  # a matrix a student can read: every cell
        records = [{"series": name, "row": plain_text(ys[r]), "column": plain_text(xs[c]), "value": z[r, c]}
                   for r in range(rows) for c in range(cols) if np.isfinite(z[r, c])]
    else:  # an image (a feature map): its statistics
        records = [{"series": name, "row": f"{rows} rows", "column": f"{cols} columns", "value": float(finite.mean()),
                    "min": float(finite.min()), "max": float(finite.max())}]
    return sentence, records


def figure(fig, spec: tuple[list[dict], dict] | None = None) -> TextAlternative:
    """The text alternative of a plotly figure: its title, axes, and each trace's numbers (legend-only traces,
    which draw nothing, are left out). `spec`: the figure's traces and layout as plain JSON, when the caller has
    them already (plotly deep-copies the whole figure to give them)."""
    traces, layout = spec if spec is not None else ([t.to_plotly_json() for t in fig.data], fig.layout.to_plotly_json())
    title = plain_text((layout.get("title") or {}).get("text")) or "Chart"
    panels = _panels(layout)
    cells = sum(np.size(t.get("z")) for t in traces if t.get("type") == "heatmap") <= CELLS
    sentences, records = [], []
    maps: list[tuple[str, float, float]] = []  # (name, lowest, highest) of each heatmap
    for trace in traces:
        kind = trace.get("type", "scatter")
        xs, ys = _values(trace.get("x")), _values(trace.get("y"))
        if kind == "scatter" and all(v is None for v in ys):
            continue  # a legend entry only
        panel = panels.get(trace.get("yaxis", "y"), "")
        name = plain_text(trace.get("name"))
        label = f"{panel}, {name}" if panel and name and panel != name else (name or panel)
        if kind == "heatmap":
            sentence, rows = _heatmap(trace, name or panel, cells)
            records += [{"panel": panel, **r} for r in rows]
            sentences.append(sentence)
            z = np.asarray(trace.get("z"), dtype=float)
            if np.isfinite(z).any():
                maps.append((name or panel, float(np.nanmin(z)), float(np.nanmax(z))))
            continue
        texts = _values(trace.get("text")) if "text" in str(trace.get("mode", "")) else []
        sentences.append(_bar_sentence(label, xs, ys) if kind == "bar" else _scatter_sentence(label, xs, ys, texts))
        labels = [plain_text(t) for t in texts] if texts else [""] * len(ys)
        for i, (x, y) in enumerate(zip(xs, ys, strict=False)):
            if kind == "bar" and ys and isinstance(ys[0], str):
                x, y = y, x
            records.append({"panel": panel, "series": name, "label": labels[i] if i < len(labels) else "",
                            "x": x, "y": y})
    if len(maps) > 3:  # a grid of maps: one sentence for all, each map's numbers in the table
        shape = np.shape(next(t["z"] for t in traces if t.get("type") == "heatmap"))
        low, high = min(maps, key=lambda m: m[1]), max(maps, key=lambda m: m[2])
        sentences = [s for s in sentences if not any(s.startswith(f"{m[0]}:") for m in maps)]
        named = ", ".join(m[0] for m in maps[:LISTED]) + (", …" if len(maps) > LISTED else "")
        sentences.append(f"{len(maps)} maps of {' × '.join(map(str, shape))} values ({named}); "
                         f"the lowest value {number(low[1])} is in {low[0]}, "
                         f"the highest {number(high[2])} in {high[0]}")
    # One pair of axis titles names the table's columns; panels (subplots) name theirs in the panel column.
    x_titles = list(dict.fromkeys(t for k in layout if k.startswith("xaxis") if (t := _axis_title(layout, k))))
    y_titles = list(dict.fromkeys(t for k in layout if k.startswith("yaxis") if (t := _axis_title(layout, k))))
    axes = []
    if len(x_titles) == 1:
        axes.append(f"Horizontal axis: {x_titles[0]}.")
    if len(y_titles) == 1:
        axes.append(f"Vertical axis: {y_titles[0]}.")
    summary = " ".join([f"{title}.", *axes, ". ".join(s for s in sentences if s) + "."])
    return TextAlternative(summary, functools.partial(_figure_table, records, bool(panels), x_titles, y_titles))


def _figure_table(records: list[dict], panels: bool, x_titles: list[str], y_titles: list[str]) -> pd.DataFrame:
    """A chart's records as one table, the x and y columns named after the axes when the chart has one pair."""
    # Plain lists into one DataFrame: from_records and drop cost more than the rest of the description.
    columns = [c for c in dict.fromkeys(k for r in records for k in r)
               if c not in ("panel", "label", "series") or any(r.get(c) for r in records)]
    table = pd.DataFrame({c: [r.get(c) for r in records] for c in columns})
    if not panels and "x" in table:
        table = table.rename(columns={"x": x_titles[0] if len(x_titles) == 1 else "x",
                                      "y": y_titles[0] if len(y_titles) == 1 else "y"})
    for column in table.columns:  # one type per column (text and numbers mixed would not serialise)
        if table[column].dtype == object and table[column].map(type).nunique() > 1:
            table[column] = table[column].map(lambda v: "" if v is None else v if isinstance(v, str) else number(v))
    return table


def graph(trace: Trace) -> TextAlternative:
    """The text alternative of a diagram: its title, how many boxes and arrows, and every arrow as a table row."""
    labels = {n.id: " ".join(n.label.split("\n")) for n in trace.nodes}
    kinds: dict[str, int] = {}
    for e in trace.edges:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    counted = ", ".join(f"{n} {_EDGE_WORDS.get(k, k)}" for k, n in kinds.items())
    names = [n.label.split("\n")[0].split(":")[0] for n in trace.nodes]  # a box's first line, up to its details
    order = "; ".join(names[:LISTED]) + (f"; … ({len(names) - LISTED} more)" if len(names) > LISTED else "")
    summary = (f"Diagram: {trace.title}. {len(trace.nodes)} boxes and {len(trace.edges)} arrows ({counted}). "
               f"Boxes, in order: {order}.")
    return TextAlternative(summary, lambda: pd.DataFrame({
        "from": [labels[e.src] for e in trace.edges],
        "to": [labels[e.dst] for e in trace.edges],
        "connection": [_EDGE_WORDS.get(e.kind, e.kind) for e in trace.edges],
    }))


_EDGE_WORDS = {
    "read": "reads of an earlier map",
    "output": "into the block output",
    "flow": "to the next stage",
    "identity": "identity shortcut",
    "kept": "kept for later layers",
}
