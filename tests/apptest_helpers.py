"""Helpers for the AppTest suites: start the app, open a page, read plotly JSON and graphviz DOT."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest, app_test

APP = str(Path(__file__).resolve().parents[1] / "app.py")


class _NavigationPagesManager(PagesManager):
    """Streamlit 1.67's AppTest re-enables the old pages/ folder mode before every run, which runs a page
    without app.py and makes ui.get_state() rerun through app.py, dropping a button's click. A real server
    leaves that mode after its first st.navigation call: this does the same from the start."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        PagesManager.uses_pages_directory = False


app_test.PagesManager = _NavigationPagesManager


def new_app(query: dict | None = None, **context) -> AppTest:
    """The app with a URL query and browser context (e.g. theme="dark"), not yet run."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query or {})
    at.context.update(context)
    return at


def open_page(page: str, query: dict | None = None, **context) -> AppTest:
    """Run the app, then switch to pages/<page>.py; fails on any exception."""
    at = new_app(query, **context)
    at.run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(markdown: str) -> str:
    """The text a Markdown message shows: the backslash escapes markup.plain puts before punctuation removed."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def values(v) -> list:
    """A plotly JSON array: a plain list, or plotly's base64 typed array."""
    if isinstance(v, dict) and "bdata" in v:
        arr = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        shape = [int(n) for n in str(v.get("shape", len(arr))).split(",")]
        return arr.reshape(shape).tolist()
    return list(v)


def plotly(at: AppTest, key: str) -> dict:
    """The JSON of the plotly chart with this key."""
    (chart,) = [e for e in at.get("plotly_chart") if e.key == key]
    return json.loads(chart.proto.spec)


def dots(at: AppTest) -> list[str]:
    """The DOT source of every graphviz chart, in page order."""
    return [e.proto.spec for e in at.get("graphviz_chart")]
