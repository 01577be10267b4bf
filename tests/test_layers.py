"""The package's layers import one way: models ← analysis ← lab / viz ← lessons / classroom ← app ← pages.

Each module's imports are read from its source (ast), so a new import against the direction fails here before a
reader meets the cycle; and only the app layer imports Streamlit.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

from densenet_viz import settings

PACKAGE = ROOT / "densenet_viz"
# What each part of the package may import from the package (besides itself). Modules at the top (units,
# markup, cores, settings) are parts too.
ALLOWED: dict[str, set[str]] = {
    "units": set(),
    "markup": set(),
    "cores": set(),
    "models": {"units"},
    "analysis": {"models", "units", "cores"},
    "settings": {"models", "analysis", "units"},
    "viz": {"models", "analysis", "units"},
    "lab": {"models", "analysis", "units", "cores"},
    "lessons": {"models", "analysis", "lab", "viz", "units", "markup", "settings"},
    "classroom": {"models", "analysis", "lab", "viz", "units", "markup", "settings", "lessons"},
}
UNRESTRICTED = {"app", "bench", "data", "__init__", "__main__"}  # the app layer, the benchmarks, the package's face
# The worker's job list runs every heavy job of the app, a lesson's check among them.
EXTRA = {"lab/tasks.py": {"lessons"}}


def _part(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _run_time_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:` (annotations only, never imported when the code runs)."""
    guarded = [n for n in ast.walk(tree) if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    skipped = {id(n) for node in guarded for child in node.body for n in ast.walk(child)}
    return [n for n in ast.walk(tree) if id(n) not in skipped]


def _imported_parts(path: Path) -> set[str]:
    """The package's parts a module imports when it runs (absolute `densenet_viz.x` and relative `from ..x`)."""
    found = set()
    depth_of_module = len(path.relative_to(PACKAGE).parts) - 1  # 0 for densenet_viz/x.py
    for node in _run_time_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.startswith("densenet_viz."):
                found.add(node.module.split(".")[1])
            elif node.level > 0:
                up = node.level - 1  # levels above the module's own package
                if up > depth_of_module:
                    continue
                base = list(path.relative_to(PACKAGE).parts[:-1])[: depth_of_module - up]
                target = [*base, *(node.module.split(".") if node.module else [])]
                if target:
                    found.add(target[0])
                else:  # `from .. import settings`: the names are the parts
                    found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("densenet_viz."))
    return found


def _imports_streamlit(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        if any(n == "streamlit" or n.startswith("streamlit.") for n in names):
            return True
    return False


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_import_points_down_the_layers():
    wrong = []
    for path in MODULES:
        part = _part(path)
        if part in UNRESTRICTED:
            continue
        assert part in ALLOWED, f"{path.relative_to(ROOT)}: a new part of the package needs its place in ALLOWED"
        allowed = ALLOWED[part] | EXTRA.get(str(path.relative_to(PACKAGE)), set()) | {part}
        wrong += [f"{path.relative_to(ROOT)} imports {p}" for p in _imported_parts(path) - allowed]
    assert not wrong, "\n".join(wrong)


def test_only_the_app_layer_and_the_benchmarks_import_streamlit():
    # The benchmarks speak Streamlit's protocol and serve its floor page; nothing the app computes with imports it.
    outside = [str(p.relative_to(ROOT)) for p in MODULES if _part(p) not in ("app", "bench") and _imports_streamlit(p)]
    assert not outside


def test_the_scan_sees_relative_and_absolute_imports():
    assert "analysis" in _imported_parts(PACKAGE / "viz" / "feature_charts.py")
    assert "classroom" not in _imported_parts(PACKAGE / "viz" / "class_charts.py")  # under TYPE_CHECKING only
    assert "lessons" in _imported_parts(PACKAGE / "lab" / "tasks.py")  # a function's own import counts
    assert _imported_parts(PACKAGE / "lessons" / "loader.py") >= {"settings", "markup"}
    assert _imports_streamlit(PACKAGE / "app" / "ui.py") and not _imports_streamlit(PACKAGE / "settings.py")


def test_the_pages_a_lesson_may_open_are_the_page_scripts():
    assert sorted(settings.PAGES) == sorted(p.stem for p in (ROOT / "pages").glob("*.py"))
