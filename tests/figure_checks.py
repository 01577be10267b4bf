"""Checks every chart test shares: a figure built without validation is one plotly validates unchanged."""

from __future__ import annotations

import inspect
import json
from types import ModuleType

import plotly.graph_objects as go
import plotly.io as pio


def figure_functions(*modules: ModuleType) -> list[str]:
    """The public functions of the modules that return a go.Figure (each needs a case in the test)."""
    return sorted(
        name
        for module in modules
        for name, fn in vars(module).items()
        if inspect.isfunction(fn) and fn.__module__ == module.__name__ and not name.startswith("_")
        and fn.__annotations__.get("return") in ("go.Figure", go.Figure)
    )


def validated(fig: go.Figure) -> dict:
    """The figure as JSON, after plotly's validation accepted it (it raises on any property it does not know or
    accept) and changed nothing in it (the charts write every property in the form plotly normalises it to)."""
    assert isinstance(fig, go.Figure)
    spec = json.loads(pio.to_json(fig.to_dict(), validate=False))
    checked = json.loads(pio.to_json(go.Figure(spec).to_dict(), validate=False))
    assert checked == spec
    return spec


def content(spec: dict) -> dict[str, int]:
    """What a figure holds, counted: traces, axes, shapes and annotations."""
    layout = spec["layout"]
    return {
        "traces": len(spec["data"]),
        "axes": sum(1 for k in layout if k.startswith(("xaxis", "yaxis"))),
        "shapes": len(layout.get("shapes", [])),
        "annotations": len(layout.get("annotations", [])),
    }
