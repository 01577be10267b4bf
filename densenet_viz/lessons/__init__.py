"""Guided lessons: TOML files of steps whose questions the app answers from the live model."""

from .loader import (
    LESSON_DIR,
    LESSONS_DIR_ENV,
    MAX_LESSON_BYTES,
    Lesson,
    LessonError,
    Question,
    Step,
    format_answer,
    lesson_by_id,
    load_lesson_file,
    parse_lesson,
    progress,
    read_lesson,
    shipped_lessons,
    teacher_folder,
    teacher_lessons,
)
from .quantities import QUANTITIES, Answer, Context

__all__ = [
    "LESSONS_DIR_ENV",
    "LESSON_DIR",
    "MAX_LESSON_BYTES",
    "QUANTITIES",
    "Answer",
    "Context",
    "Lesson",
    "LessonError",
    "Question",
    "Step",
    "format_answer",
    "lesson_by_id",
    "load_lesson_file",
    "parse_lesson",
    "progress",
    "read_lesson",
    "shipped_lessons",
    "teacher_folder",
    "teacher_lessons",
]
