"""The lessons a session can open: the shipped ones, the teacher folder's and this session's uploads, loaded once per
server (uploads once per file, in a worker); the Lessons and Class pages both read them here."""

from __future__ import annotations

import dataclasses
import hashlib

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from .. import lessons as ls
from .. import markup
from . import keys, work

TEACHER_PREFIX = "my-"  # a teacher's lesson id: it can never shadow a shipped one


def _teachers(lesson: ls.Lesson) -> ls.Lesson:
    return dataclasses.replace(lesson, id=f"{TEACHER_PREFIX}{lesson.id}")


@st.cache_resource(max_entries=1, show_spinner="Loading the lessons…")
def shipped() -> tuple[ls.Lesson, ...]:
    """The shipped lessons, loaded and checked once per server."""
    return ls.shipped_lessons()


@st.cache_resource(max_entries=1, ttl=30, show_spinner=False)
def from_teacher_folder(folder: str) -> tuple[tuple[ls.Lesson, ...], tuple[str, ...]]:
    """The lessons in the teacher's folder and one message per refused file, read again every 30 s so a new file
    shows up without a restart."""
    lessons, errors = ls.teacher_lessons(folder)
    return tuple(_teachers(lesson) for lesson in lessons), errors


def server_lessons() -> dict[str, ls.Lesson]:
    """The lessons every replica of this server has: shipped, then the teacher folder's (a broken shipped lesson
    raises LessonError)."""
    return {lesson.id: lesson for lesson in (*shipped(), *from_teacher_folder(ls.teacher_folder())[0])}


def session_lessons() -> dict[str, ls.Lesson]:
    """The lessons this session can open: the server's and the ones it uploaded."""
    return {**server_lessons(), **st.session_state.get(keys.TEACHER_LESSONS, {})}


def _keep(lesson: ls.Lesson) -> None:
    """Keep an uploaded lesson in this session (the last few only) and open it at its first step."""
    lesson = _teachers(lesson)
    ss = st.session_state
    kept = [(i, kept) for i, kept in ss.get(keys.TEACHER_LESSONS, {}).items() if i != lesson.id]
    ss[keys.TEACHER_LESSONS] = dict([*kept[-(ls.MAX_SESSION_LESSONS - 1):], (lesson.id, lesson)])
    ss[keys.LESSON_PICK_LESSON], ss[keys.LESSON_STEP] = lesson.id, 1


def take_upload(upload: UploadedFile) -> None:
    """Check an uploaded lesson file once (in a worker: a lesson may name large models) and keep it, saying on the
    page what came of it."""
    from ..lab import tasks

    if st.session_state.get(keys.LESSON_UPLOAD_DONE) == upload.file_id:
        return
    data = upload.getvalue()
    try:
        lesson = work.run_job(("lesson", hashlib.sha256(data).hexdigest(), upload.name), tasks.read_lesson,
                              (data, upload.name), "Checking the lesson", deadline=ls.MAX_CHECK_S, lane=work.VIEW)
    except ls.LessonError as exc:
        st.error(f"This lesson file cannot be used: {markup.message(exc)}")
        return
    if lesson is not None:
        _keep(lesson)
        st.session_state[keys.LESSON_UPLOAD_DONE] = upload.file_id
        st.success(f"Lesson {markup.quoted(lesson.title)} loaded for this session: {len(lesson.steps)} step(s), "
                   "every answer computed from its model.")
