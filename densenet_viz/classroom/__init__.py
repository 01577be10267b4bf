"""Class mode: a teacher leads a lesson, the class predicts on their phones, the room sees the distribution and
the computed answer. The store (SQLite or Redis) and the room's logic; no Streamlit here."""

from .room import Distribution, StepView, class_view, distribution, looked_at, may_answer, step_view
from .store import ClassError, ClassState, NewClass, RedisStore, SQLiteStore, Store, store_from_env

__all__ = [
    "ClassError",
    "ClassState",
    "Distribution",
    "NewClass",
    "RedisStore",
    "SQLiteStore",
    "StepView",
    "Store",
    "class_view",
    "distribution",
    "looked_at",
    "may_answer",
    "step_view",
    "store_from_env",
]
