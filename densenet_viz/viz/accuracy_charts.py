"""Error against cost from published results (the paper's Figure 3 and Table 2), with the user's model marked.

Built as dicts and made a go.Figure once by charts.figure, without plotly's per-property validation.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from ..units import format_count
from .charts import chart_layout, figure
from .style import DENSENET_COLOR, HIGHLIGHT_COLOR, LABEL_SIZE, OKABE_ITO, RESNET_COLOR

FAMILY_COLORS = {"DenseNet-BC": DENSENET_COLOR, "DenseNet": OKABE_ITO["bluish_green"], "ResNet": RESNET_COLOR}
# One marker shape per source, so two sources of one family stay apart without a new colour.
SOURCE_SYMBOLS = {"densenet_paper": "circle", "fb_resnet_torch": "diamond", "torchvision": "square",
                  "he2016": "triangle-up"}  # fmt: skip
X_TITLES = {"params": "Parameters (computed)", "flops": "FLOPs per image (2 × MACs)"}
MARKER_NAME = "your model"


def _hover(rows: pd.DataFrame, x: str) -> list[list[str]]:
    return [
        [title, format_count(cost), source, table]
        for title, cost, source, table in zip(rows["title"], rows[x], rows["source_title"], rows["table"], strict=True)
    ]


def accuracy_chart(
    table: pd.DataFrame,
    x: str,
    title: str,
    marker: float | None = None,
    marker_label: str = MARKER_NAME,
    log_x: bool = False,
) -> go.Figure:
    """Published error (y) against computed params or FLOPs (x), one line per family and source.

    `marker` draws the user's model as a vertical dashed line at that x (no error: only training tells).
    Hover text names the model, its cost, its source and the table the error comes from.
    """
    if x not in X_TITLES:
        raise ValueError(f"x must be one of {', '.join(X_TITLES)}; got {x!r}")
    data = []
    for (fam, source), rows in table.groupby(["family", "source"], sort=False):
        rows = rows.sort_values(x)
        color = FAMILY_COLORS.get(fam, OKABE_ITO["grey"])
        data.append({
            "type": "scatter", "x": rows[x].to_numpy(), "y": rows["error"].to_numpy(), "mode": "lines+markers+text",
            "text": rows["title"].tolist(), "textposition": "top right", "textfont": {"size": LABEL_SIZE},
            "cliponaxis": False,
            "name": f"{fam} · {rows['source_short'].iloc[0]}",
            "line": {"color": color, "width": 2},
            "marker": {"size": 12, "symbol": SOURCE_SYMBOLS.get(source, "circle"), "color": color},
            "customdata": _hover(rows, x),
            "hovertemplate": "<b>%{customdata[0]}</b><br>error %{y:.2f} %<br>cost %{customdata[1]}<br>"
                             "source: %{customdata[2]}<br>table: %{customdata[3]}<extra></extra>",
        })
    if marker is not None and len(table):
        low, high = float(table["error"].min()), float(table["error"].max())
        pad = 0.05 * (high - low or 1)
        data.append({
            "type": "scatter", "x": [marker, marker], "y": [low - pad, high + pad], "mode": "lines",
            "name": marker_label, "line": {"color": HIGHLIGHT_COLOR, "width": 3, "dash": "dash"},
            "hovertemplate": f"{marker_label}: {format_count(marker)}<br>error: only training tells<extra></extra>",
        })
    xaxis: dict = {}
    if len(table):
        # Room on the right for the last point's label: 60 % more on a log axis, 15 % on a linear one.
        low, high = float(table[x].min()), float(max(table[x].max(), marker or 0))
        xaxis["range"] = [math.log10(low / 1.3), math.log10(high * 1.6)] if log_x else [0, high * 1.15]
    xaxis["type"] = "log" if log_x else "linear"
    return figure(data, chart_layout(title, X_TITLES[x], "Error (%)", height=620, legend_below=True,
                                     layout={"xaxis": xaxis}))
