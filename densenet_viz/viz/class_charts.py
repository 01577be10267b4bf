"""The class's answers for the projector: a histogram of numbers or bars of choices, with the computed answer
drawn on it once the teacher reveals it. Draws a classroom.Distribution; computes nothing; names nobody."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import plotly.graph_objects as go

from .charts import chart_layout, figure
from .style import ANNOTATION_SIZE, OKABE_ITO

BAR_COLOR = OKABE_ITO["sky_blue"]
ANSWER_COLOR = OKABE_ITO["vermillion"]  # the computed answer: a line on a histogram, the right option's bar

if TYPE_CHECKING:  # viz draws records; it imports nothing from the layers above it at run time
    from ..classroom.room import Distribution


def distribution_figure(dist: Distribution, unit: str = "") -> go.Figure:
    """Bars of the class's answers: binned numbers on a numeric axis (the answer a vertical line) or one bar per
    option (the right one coloured) once revealed."""
    answered = f"{dist.total} answer{'s' * (dist.total != 1)}"
    if dist.kind == "choice":
        colors = [ANSWER_COLOR if dist.answer is not None and label == dist.answer else BAR_COLOR
                  for label in dist.labels]
        trace = {"type": "bar", "x": list(dist.labels), "y": list(dist.counts), "marker": {"color": colors},
                 "text": [str(c) for c in dist.counts], "textposition": "outside", "cliponaxis": False,
                 "hovertemplate": "%{x}: %{y} students<extra></extra>"}
        layout = chart_layout(f"The class's answers ({answered})", None, "students")
        if dist.answer is not None:
            layout["annotations"] = [{"text": "computed answer", "x": dist.answer, "y": 1, "yref": "y domain",
                                      "showarrow": False, "yanchor": "bottom", "font": {"size": ANNOTATION_SIZE,
                                                                                         "color": ANSWER_COLOR}}]
    else:
        edges = dist.edges
        centers = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
        widths = [(b - a) * 0.95 for a, b in itertools.pairwise(edges)]
        trace = {"type": "bar", "x": centers, "y": list(dist.counts), "width": widths,
                 "marker": {"color": BAR_COLOR}, "customdata": list(dist.labels),
                 "text": [str(c) if c else "" for c in dist.counts], "textposition": "outside", "cliponaxis": False,
                 "hovertemplate": "%{customdata}: %{y} students<extra></extra>"}
        x_title = f"answer ({unit})" if unit else "answer"
        layout = chart_layout(f"The class's answers ({answered})", x_title, "students")
        integer = len(centers) <= 20 and all(float(c).is_integer() for c in centers)
        if integer:
            layout["xaxis"].update(tickmode="array", tickvals=centers, ticktext=list(dist.labels))
        if dist.answer is not None:
            x = float(dist.answer)
            layout["shapes"] = [{"type": "line", "x0": x, "x1": x, "xref": "x", "y0": 0, "y1": 1, "yref": "y domain",
                                 "line": {"color": ANSWER_COLOR, "width": 4, "dash": "dash"}}]
            layout["annotations"] = [{"text": f"computed answer: {dist.answer:,.4g}", "x": float(dist.answer),
                                      "y": 1, "yref": "y domain", "showarrow": False, "yanchor": "bottom",
                                      "font": {"size": ANNOTATION_SIZE, "color": ANSWER_COLOR}}]
    layout["yaxis"].update(rangemode="tozero", dtick=max(1, max(dist.counts, default=0) // 8 or 1))
    layout["bargap"] = 0.05
    layout["showlegend"] = False
    return figure([trace], layout)
