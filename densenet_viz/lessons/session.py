"""What a student has done in a lesson (answered, correct, revealed) and what the page says about it.

The Lessons page keeps one StepRecord per question step and calls these on Check, Reveal and a link: the rules
live here, tested without Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..markup import quoted
from .loader import Lesson, Question

Given = float | str | None  # what a student typed or picked


@dataclass
class StepRecord:
    """One question step for one student: the last answer checked and what it earned."""

    answered: bool = False  # checked an answer or revealed
    correct: bool = False  # some checked answer was right (stays once earned)
    revealed: bool = False
    given: Given = None  # the last answer checked


def progress(lesson: Lesson, records: Mapping[int, StepRecord]) -> tuple[int, int, int]:
    """(answered, correct, questions) of a lesson, from {step index: StepRecord}."""
    asked = [i for i, step in enumerate(lesson.steps) if step.question is not None]
    answered = sum(i in records and records[i].answered for i in asked)
    correct = sum(i in records and records[i].correct for i in asked)
    return answered, correct, len(asked)


def check(record: StepRecord, question: Question, given: Given) -> bool:
    """Record a checked answer (True), or nothing when there is none to check (False: the page asks for one)."""
    if given is None:
        return False
    record.answered, record.given = True, given
    record.correct = record.correct or question.check(given)
    return True


def reveal(record: StepRecord) -> bool:
    """Show the computed answer from now on; True if that is new (a revealed step counts as answered)."""
    if record.revealed:
        return False
    record.revealed = record.answered = True
    return True


def verdict(record: StepRecord, question: Question, given: Given) -> bool | None:
    """Right (True) or not (False) for the answer on screen, if it is the one checked last and the answer is not
    revealed; None when there is nothing to say (nothing checked, another answer typed since, or revealed)."""
    if record.revealed or record.given is None or record.given != given:
        return None
    return question.check(given)


def open_from_link(lessons: Mapping[str, Lesson], lesson_id: str, step_text: str) -> tuple[str, int, list[str]]:
    """The lesson and step (1-based) a link `?lesson=...&step=...` opens, and what was wrong with it (escaped text
    for the page): an unknown lesson opens the first, an unknown step the lesson's first."""
    problems = []
    if lesson_id and lesson_id not in lessons:
        problems.append(f"The link names lesson {quoted(lesson_id)}, which does not exist here; showing the first "
                        "lesson.")
    chosen = lesson_id if lesson_id in lessons else next(iter(lessons))
    number = int(step_text) if step_text.isascii() and step_text.isdigit() else 0  # int() would take '٣'
    if not 1 <= number <= len(lessons[chosen].steps):
        problems.append(f"The link's step {quoted(step_text)} does not exist in this lesson; showing step 1.")
        number = 1
    return chosen, number, problems
