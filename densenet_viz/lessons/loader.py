"""Lesson files (TOML) read, checked and turned into steps with their computed answers; nothing in them runs.

A lesson may name only pages that exist, sidebar controls the settings know, and quantities from
`quantities.QUANTITIES`; every question's answer is computed while loading, so a lesson whose question
cannot be answered for its model (block 5 of a 4-block network) is refused at load, not in front of a class.
Every error is a LessonError naming the file, the line where it can be found, and the field.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import settings as us
from ..markup import outside_references
from .quantities import QUANTITIES, Answer, Context

LESSON_DIR = Path(__file__).resolve().parents[1] / "data" / "lessons"
LESSONS_DIR_ENV = "DENSENET_VIZ_LESSONS_DIR"  # a teacher's folder of extra lesson files
MAX_LESSON_BYTES = 64 * 1024  # a lesson is a page of text; anything larger is not one
MAX_STEPS = 30
MAX_SESSION_LESSONS = 8  # uploaded lessons a session keeps (the last ones)
MAX_CHECK_S = 10.0  # seconds a worker may spend checking an uploaded lesson and computing its answers
LESSON_FIELDS = {"title": str, "summary": str, "settings": dict, "steps": list}
STEP_FIELDS = {"text": str, "page": str, "show": list, "settings": dict, "question": dict}
QUESTION_FIELDS = {"kind": str, "prompt": str, "quantity": str, "args": dict, "tolerance": (int, float),
                   "options": list, "explain": str}  # fmt: skip
KINDS = ("number", "choice")


class LessonError(ValueError):
    """A lesson file that cannot be used: the message names the file, the line and the field."""


@dataclass(frozen=True)
class Question:
    """What a step asks: a quantity of its model, the tolerance or the options, and the computed answer."""

    kind: str
    prompt: str
    quantity: str
    args: dict[str, Any]
    answer: Answer
    unit: str
    tolerance: float = 0.0
    options: tuple[str, ...] = ()
    explain: str = ""

    def check(self, given: float | str | None) -> bool:
        """Whether a student's answer is right (a number within the tolerance, or the right option)."""
        if given is None:
            return False
        if self.kind == "choice":
            return given == self.answer.value
        return abs(float(given) - float(self.answer.value)) <= self.tolerance + 1e-9


@dataclass(frozen=True)
class Step:
    """One step: markdown text, the page its link opens with its settings and visible controls, a question."""

    text: str
    settings: dict[str, Any]  # the full settings (control name -> value) of this step's model
    query: dict[str, str]  # the URL query that opens `page` with these settings and only `show` visible
    page: str | None = None
    show: tuple[str, ...] | None = None  # the control names left visible (None: all)
    question: Question | None = None


@dataclass(frozen=True)
class Lesson:
    """A lesson: its id (the file's stem), title, summary and steps."""

    id: str
    title: str
    summary: str
    steps: tuple[Step, ...]


def _line(text: str, step: int | None, key: str) -> int | None:
    """The 1-based line where `key` is written, inside the step-th [[steps]] table (or before the first)."""
    lines = text.splitlines()
    headers = [i for i, line in enumerate(lines) if re.match(r"\s*\[\[\s*steps\s*\]\]", line)]
    if step is None:
        start, end = 0, headers[0] if headers else len(lines)
    elif step < len(headers):
        start, end = headers[step], headers[step + 1] if step + 1 < len(headers) else len(lines)
    else:
        return None
    leaf = re.escape(key.split(".")[-1])
    # `leaf = ...`, a [steps.leaf] table header, or `leaf = ...` inside an inline table { ..., leaf = ... }.
    pattern = re.compile(rf"\s*(\[\s*(steps\.)?{leaf}\s*\]|\"?{leaf}\"?\s*=|.*[{{,]\s*{leaf}\s*=)")
    for i in range(start, end):
        if pattern.match(lines[i]):
            return i + 1
    return start + 1 if step is not None else None


class _Checker:
    """Collects the context (file name, text) that every error message needs."""

    def __init__(self, name: str, text: str) -> None:
        self.name, self.text = name, text

    def fail(self, step: int | None, field: str, problem: str) -> LessonError:
        where = f"steps[{step + 1}].{field}" if step is not None else field
        line = _line(self.text, step, field)
        return LessonError(f"{self.name}{f', line {line}' if line else ''}: {where}: {problem}")

    def fields(self, table: Mapping[str, Any], allowed: dict[str, Any], step: int | None, prefix: str = "") -> None:
        for key, value in table.items():
            if key not in allowed:
                raise self.fail(step, prefix + key, f"unknown field; allowed: {', '.join(allowed)}")
            if not isinstance(value, allowed[key]) or isinstance(value, bool):
                kind = allowed[key].__name__ if isinstance(allowed[key], type) else "number"
                raise self.fail(step, prefix + key, f"must be a {_KIND_NAMES.get(kind, kind)}, got {value!r}")
            for text in value if isinstance(value, list) else [value]:
                found = outside_references(text) if isinstance(text, str) else []
                if found:  # lesson text is Markdown the app renders: nothing in it may link to or fetch from outside
                    raise self.fail(step, prefix + key, f"links, images, HTML and web addresses are not allowed in a "
                                                        f"lesson (found {found[0]!r})")


_KIND_NAMES = {"str": "text (in quotes)", "dict": "table", "list": "list [...]", "number": "number"}


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list):
        return "-".join(str(v) for v in value)
    return str(value)


def _settings(check: _Checker, step: int | None, field: str, table: Mapping[str, Any]) -> dict[str, str]:
    """Lesson settings (control names or URL keys) as URL query items, every name checked."""
    query = {}
    for name, value in table.items():
        control = us.BY_NAME.get(name) or us.BY_KEY.get(name)
        if control is None:
            known = ", ".join(c.name for c in us.CONTROLS)
            raise check.fail(step, f"{field}.{name}", f"unknown control; known: {known}")
        if not isinstance(value, (str, int, float, bool, list)):
            raise check.fail(step, f"{field}.{name}", f"must be a text, number, true/false or list, got {value!r}")
        query[control.key] = _query_value(value)
    return query


def _context(check: _Checker, step: int, query: Mapping[str, str]) -> tuple[dict[str, Any], Context]:
    state = us.settings_from_query(query)
    if state.warnings:
        raise check.fail(step, "settings", "; ".join(state.warnings))
    s = state.settings
    return s, Context(us.config_from_settings(s), s["input_size"], s["batch_size"], s["dtype"])


def _question(check: _Checker, step: int, table: Mapping[str, Any], ctx: Context) -> Question:
    check.fields(table, QUESTION_FIELDS, step, "question.")
    for required in ("kind", "prompt", "quantity"):
        if required not in table:
            raise check.fail(step, "question", f"missing field '{required}'")
    kind = table["kind"]
    if kind not in KINDS:
        raise check.fail(step, "question.kind", f"must be one of {', '.join(KINDS)}; got {kind!r}")
    quantity = QUANTITIES.get(table["quantity"])
    if quantity is None:
        raise check.fail(step, "question.quantity",
                         f"unknown quantity {table['quantity']!r}; known: {', '.join(QUANTITIES)}")
    if quantity.kind != kind:
        raise check.fail(step, "question.kind", f"quantity {quantity.name} answers a {quantity.kind} question")
    args = dict(table.get("args", {}))
    for name, value in args.items():
        if name not in quantity.args:
            raise check.fail(step, f"question.args.{name}",
                             f"{quantity.name} takes {', '.join(quantity.args) or 'no arguments'}")
        if not isinstance(value, quantity.args[name]) or isinstance(value, bool):
            raise check.fail(step, f"question.args.{name}", f"must be {quantity.args[name].__name__}, got {value!r}")
    missing = [name for name in quantity.args if name not in args]
    if missing:
        raise check.fail(step, "question.args", f"{quantity.name} needs {', '.join(missing)}")
    try:
        answer = quantity.compute(ctx, args)
    except ValueError as exc:
        raise check.fail(step, "question.args", f"cannot be answered for this step's model: {exc}") from None
    tolerance = table.get("tolerance", 0)
    if tolerance < 0:
        raise check.fail(step, "question.tolerance", f"must be 0 or more, got {tolerance}")
    options = tuple(table.get("options", ()))
    if kind == "choice":
        if len(options) < 2 or len(set(options)) != len(options) or not all(isinstance(o, str) for o in options):
            raise check.fail(step, "question.options", "a choice needs at least two different texts")
        if answer.value not in options:
            raise check.fail(step, "question.options",
                             f"the computed answer {answer.value!r} is not among the options {list(options)}")
    elif options:
        raise check.fail(step, "question.options", "only a choice question has options")
    return Question(kind, table["prompt"], quantity.name, args, answer, quantity.unit, float(tolerance), options,
                    table.get("explain", ""))


def _step(check: _Checker, i: int, table: Any, base: Mapping[str, str], pages: Sequence[str]) -> Step:
    if not isinstance(table, dict):
        raise check.fail(i, "steps", "each step must be a [[steps]] table")
    check.fields(table, STEP_FIELDS, i)
    if "text" not in table:
        raise check.fail(i, "text", "missing field 'text'")
    page = table.get("page")
    if page is not None and page not in pages:
        raise check.fail(i, "page", f"unknown page {page!r}; known: {', '.join(pages)}")
    show = []
    for name in table.get("show", []):
        control = us.BY_NAME.get(name) if isinstance(name, str) else None
        control = control or (us.BY_KEY.get(name) if isinstance(name, str) else None)
        if control is None:
            raise check.fail(i, "show", f"unknown control {name!r}; known: {', '.join(c.name for c in us.CONTROLS)}")
        show.append(control.name)
    query = {**base, **_settings(check, i, "settings", table.get("settings", {}))}
    settings, ctx = _context(check, i, query)
    question = _question(check, i, table["question"], ctx) if "question" in table else None
    # No `show`: every control stays visible; `show = []`: a link that only presents, every control fixed.
    link = us.settings_to_query(settings, show if "show" in table else None)
    return Step(table["text"], settings, link, page, tuple(show) if "show" in table else None, question)


def parse_lesson(text: str, name: str = "lesson.toml", pages: Sequence[str] | None = None) -> Lesson:
    """A lesson from the text of a TOML file, checked; raises LessonError naming the line and the field."""
    check = _Checker(name, text)
    if len(text.encode("utf-8", "replace")) > MAX_LESSON_BYTES:
        raise LessonError(f"{name}: the file is larger than {MAX_LESSON_BYTES // 1024} KiB; a lesson is a few pages")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LessonError(f"{name}: not valid TOML: {exc}") from None
    check.fields(data, LESSON_FIELDS, None)
    for required in ("title", "steps"):
        if required not in data:
            raise check.fail(None, required, f"missing field '{required}'")
    if not 1 <= len(data["steps"]) <= MAX_STEPS:
        raise check.fail(None, "steps", f"a lesson needs 1 to {MAX_STEPS} [[steps]], got {len(data['steps'])}")
    base = _settings(check, None, "settings", data.get("settings", {}))
    pages = us.PAGES if pages is None else pages
    steps = tuple(_step(check, i, s, base, pages) for i, s in enumerate(data["steps"]))
    lesson_id = re.sub(r"[^a-z0-9_\-]", "-", Path(name).stem.lower())[:40] or "lesson"
    return Lesson(lesson_id, data["title"], data.get("summary", ""), steps)


def read_lesson(data: bytes, name: str, pages: Sequence[str] | None = None) -> Lesson:
    """A lesson from a file's bytes (an upload): size and UTF-8 checked before parsing."""
    if len(data) > MAX_LESSON_BYTES:
        raise LessonError(f"{name}: the file is larger than {MAX_LESSON_BYTES // 1024} KiB; a lesson is a few pages")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LessonError(f"{name}: not UTF-8 text (byte {exc.start}); save the lesson as UTF-8") from None
    return parse_lesson(text, name, pages)


def load_lesson_file(path: str | Path, pages: Sequence[str] | None = None) -> Lesson:
    """A lesson from a .toml file on the server (a teacher's path), checked before it is read."""
    path = Path(path).expanduser()
    if path.suffix != ".toml":
        raise LessonError(f"{path.name}: a lesson file ends in .toml")
    if not path.is_file():
        raise LessonError(f"{path}: no such file")
    if path.stat().st_size > MAX_LESSON_BYTES:
        raise LessonError(f"{path.name}: the file is larger than {MAX_LESSON_BYTES // 1024} KiB")
    return read_lesson(path.read_bytes(), path.name, pages)


@functools.lru_cache(maxsize=2)
def shipped_lessons(directory: Path = LESSON_DIR) -> tuple[Lesson, ...]:
    """Every lesson shipped in data/lessons, in file-name order (a broken one raises LessonError)."""
    return tuple(load_lesson_file(p) for p in sorted(directory.glob("*.toml")))


def teacher_folder() -> str:
    """The folder a teacher named for extra lessons ($DENSENET_VIZ_LESSONS_DIR), or '' when none."""
    return os.environ.get(LESSONS_DIR_ENV, "")


def teacher_lessons(directory: str | Path | None = None) -> tuple[tuple[Lesson, ...], tuple[str, ...]]:
    """The lessons in a teacher's folder (default: $DENSENET_VIZ_LESSONS_DIR), and one message per refused file.

    A folder the teacher chose, not a path typed in the page: students cannot make the server read other files.
    """
    directory = teacher_folder() if directory is None else directory
    if not directory:
        return (), ()
    folder = Path(directory).expanduser()
    if not folder.is_dir():
        return (), (f"{LESSONS_DIR_ENV} names {str(folder)!r}, which is not a folder",)
    lessons, errors = [], []
    for path in sorted(folder.glob("*.toml")):
        try:
            lessons.append(load_lesson_file(path))
        except LessonError as exc:
            errors.append(str(exc))
        except OSError as exc:
            errors.append(f"{path.name}: cannot be read ({exc.strerror or exc})")
    return tuple(lessons), tuple(errors)


def format_answer(question: Question) -> str:
    """The computed answer as the Reveal shows it: a choice's text, or a number with its unit."""
    value = question.answer.value
    if isinstance(value, str):
        return value
    text = f"{value:,}" if float(value).is_integer() else f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.1f}"
    return f"{text} {question.unit}".strip()
