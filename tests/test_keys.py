"""One registry of keys: every widget, element and session-state key the app uses is named in app/keys.py.

A key written as a string literal in a page (or in ui.py) is a second spelling that can drift from the one the
sidebar, the tests and the CSS use; this test reads the source and fails on any.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

from densenet_viz.app import keys

SOURCES = sorted([ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "densenet_viz" / "app").glob("*.py")])
REGISTRY = ROOT / "densenet_viz" / "app" / "keys.py"
STATE_NAMES = {"session_state", "ss"}  # st.session_state, and the `ss = st.session_state` alias


def _literal(node: ast.AST) -> bool:
    """A string written in place: "..." or f"..."."""
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _is_state(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr in STATE_NAMES) or (
        isinstance(node, ast.Name) and node.id in STATE_NAMES
    )


def literal_keys(path: Path, root: Path = ROOT) -> list[str]:
    """Where `path` writes a key as a literal: key="..." in a call, session_state["..."], .get("...") and `in`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call):
            found += [f"{where}: key={ast.unparse(kw.value)}" for kw in node.keywords
                      if kw.arg == "key" and _literal(kw.value)]
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr in ("get", "pop", "setdefault") and _is_state(func.value)
                    and node.args and _literal(node.args[0])):
                found.append(f"{where}: {ast.unparse(node)}")
        subscript = isinstance(node, ast.Subscript) and _is_state(node.value) and _literal(node.slice)
        membership = (isinstance(node, ast.Compare) and _literal(node.left) and len(node.comparators) == 1
                      and isinstance(node.ops[0], (ast.In, ast.NotIn)) and _is_state(node.comparators[0]))
        if subscript or membership:
            found.append(f"{where}: {ast.unparse(node)}")
    return found


def test_no_page_and_no_app_module_writes_a_key_as_a_literal():
    assert len(SOURCES) > 10
    found = [hit for path in SOURCES if path != REGISTRY for hit in literal_keys(path)]
    assert not found, "keys written in place instead of named in densenet_viz/app/keys.py:\n" + "\n".join(found)


def test_the_scan_finds_what_it_is_meant_to_find(tmp_path):
    sample = tmp_path / "page.py"
    sample.write_text(
        'st.slider("k", 1, 2, key="k")\nst.button("go", key=f"go_{n}")\nst.session_state["x"] = 1\n'
        'st.session_state.get("y")\nif "z" in ss: pass\nst.slider("k", 1, 2, key=keys.K)\n'
    )
    assert len(literal_keys(sample, tmp_path)) == 5, literal_keys(sample, tmp_path)


def test_the_registry_spells_each_key_once():
    names = {n: v for n, v in vars(keys).items() if n.isupper() and isinstance(v, str)}
    values = list(names.values()) + list(keys.CONTROL.values())
    assert len(values) == len(set(values)), sorted(v for v in values if values.count(v) > 1)
