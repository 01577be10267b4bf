"""What the room sees at a step of a class: the teacher's distribution of answers, a student's screen, the answer.

Pure logic over a lesson (densenet_viz/lessons) and a class's state (store.ClassState): the computed answer is the
lesson's own, from the live model, never typed by a teacher. Numbers are binned into a histogram whose bins
the computed answer can be drawn on; choices are counted per option, in the lesson's order.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass

from ..lessons import Lesson, Question, Step, format_answer
from .store import ClassState

MAX_BINS = 12  # a projector's histogram stays readable
INTEGER_BINS = 20  # integer answers spanning at most this many values get one bar per value


@dataclass(frozen=True)
class Distribution:
    """The answers of one step, counted without names: bins of numbers or options of a choice."""

    kind: str  # "number" or "choice"
    labels: tuple[str, ...]  # a bar's label: the option, or the bin's range
    counts: tuple[int, ...]
    edges: tuple[float, ...] = ()  # numbers: len(counts) + 1 bin edges
    total: int = 0
    correct: int = 0  # answers the question's check accepts
    answer: float | str | None = None  # the computed answer (None until revealed)


@dataclass(frozen=True)
class StepView:
    """What a screen shows at a step: its text, the page link, the question, and the answer once revealed."""

    number: int  # 1-based
    steps: int
    text: str
    page: str | None
    query: dict[str, str]
    question: Question | None
    revealed: bool
    answer_text: str = ""  # "Answer: 148" (with the tolerance) once revealed
    why: str = ""  # the computed answer's reason, and the lesson's explanation


def _format(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.3g}"


def number_bins(values: list[float], answer: float | None = None) -> tuple[float, ...]:
    """Histogram bin edges for numeric answers (and the answer, so it falls inside): one bar per integer when the
    answers are integers spanning few values, else at most MAX_BINS equal bins."""
    points = [float(v) for v in values] + ([float(answer)] if answer is not None else [])
    if not points:
        return (0.0, 1.0)
    low, high = min(points), max(points)
    if all(p.is_integer() for p in points) and high - low < INTEGER_BINS:
        return tuple(x - 0.5 for x in range(int(low), int(high) + 2))
    if high == low:
        return (low - 0.5, high + 0.5)
    bins = min(MAX_BINS, max(1, math.ceil(math.sqrt(len(points)))) + 1)
    width = (high - low) / bins
    return (*(low + i * width for i in range(bins)), high)


def distribution(question: Question, values: list[float | str], revealed: bool = False) -> Distribution:
    """The step's answers counted: per option for a choice, per histogram bin for a number."""
    answer = question.answer.value if revealed else None
    correct = sum(question.check(v) for v in values if _fits(question, v))
    if question.kind == "choice":
        counted = Counter(v for v in values if isinstance(v, str))
        return Distribution("choice", tuple(question.options), tuple(counted.get(o, 0) for o in question.options),
                            total=len(values), correct=correct, answer=answer)
    numbers = [float(v) for v in values if _fits(question, v)]
    edges = number_bins(numbers, float(question.answer.value) if revealed else None)
    counts = [0] * (len(edges) - 1)
    for x in numbers:
        # bins are [a, b) except the last, which holds its right edge (numpy.histogram's rule)
        i = next((i for i in range(len(counts)) if x < edges[i + 1]), len(counts) - 1)
        counts[i] += 1
    integer = all(e + 0.5 == round(e + 0.5) for e in edges) and all(b - a == 1 for a, b in itertools.pairwise(edges))
    labels = (tuple(_format(a + 0.5) for a in edges[:-1]) if integer
              else tuple(f"{_format(a)}–{_format(b)}" for a, b in itertools.pairwise(edges)))
    return Distribution("number", labels, tuple(counts), tuple(edges), len(values), correct, answer)


def _fits(question: Question, value: float | str) -> bool:
    return isinstance(value, str) if question.kind == "choice" else isinstance(value, (int, float))


def answer_text(question: Question) -> str:
    """The computed answer as every screen shows it on Reveal, with the tolerance when there is one."""
    tolerance = f" (within ±{question.tolerance:g})" if question.tolerance else ""
    return f"Answer: {format_answer(question)}{tolerance}"


def step_view(lesson: Lesson, number: int, revealed: bool) -> StepView:
    """What a screen shows at step `number` (1-based) of a lesson; the answer only when revealed."""
    number = min(max(1, number), len(lesson.steps))
    step: Step = lesson.steps[number - 1]
    question = step.question
    shown = revealed and question is not None
    why = ""
    if shown:
        why = question.answer.why + (f"\n\n{question.explain}" if question.explain else "")
    return StepView(number, len(lesson.steps), step.text, step.page, dict(step.query), question, shown,
                    answer_text(question) if shown else "", why)


def class_view(lesson: Lesson, state: ClassState) -> StepView:
    """What every screen following the class shows now."""
    return step_view(lesson, state.step + 1, state.revealed)


def looked_at(lesson: Lesson, state: ClassState, wanted: int | None) -> StepView:
    """A student looking around: a step the class has reached (1-based; never a later one), answers only of steps
    the class has passed or revealed. None: the class's step."""
    if wanted is None or not 1 <= wanted <= state.step + 1:
        return class_view(lesson, state)
    current = wanted == state.step + 1
    return step_view(lesson, wanted, state.revealed if current else True)


def may_answer(state: ClassState, view: StepView) -> bool:
    """Whether a student may send an answer on this screen: the class's own step, a question, not yet revealed."""
    return view.question is not None and view.number == state.step + 1 and not state.revealed


def verdict(question: Question, given: float | str | None) -> str:
    """A student's own result once the answer is revealed (plain text: show it through markup.plain)."""
    if given is None:
        return "You did not answer this one."
    shown = f"{given:g}" if isinstance(given, float) else f"“{given}”"
    return f"You answered {shown}: right." if question.check(given) else f"You answered {shown}."


def checker(lesson: Lesson):
    """correct(step 0-based, value) for the CSV export: whether the lesson's check accepts an answer."""

    def correct(step: int, value: float | str) -> bool:
        question = lesson.steps[step].question if 0 <= step < len(lesson.steps) else None
        return question is not None and _fits(question, value) and question.check(value)

    return correct
