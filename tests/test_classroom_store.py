"""Class mode's store: the same behaviour from SQLite (a WAL file) and a real Redis server (Debian's redis-server on
loopback); teacher operations need the token; answers are one per student per step, last wins; expiry deletes."""

from __future__ import annotations

import csv
import io
import sqlite3
import threading
import time

import pytest

from densenet_viz.classroom import store as cs
from densenet_viz.classroom.store import ClassError, RedisStore, SQLiteStore


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    """A fresh store of each kind (Redis: the test session's server, emptied first)."""
    if request.param == "sqlite":
        made = SQLiteStore(tmp_path / "classes.sqlite3")
    else:
        made = RedisStore(request.getfixturevalue("redis_url"))
        made.redis.flushdb()
    try:
        yield made
    finally:
        made.close()


def test_a_class_starts_with_a_short_code_a_secret_token_and_step_one(store):
    new = store.create_class("01-channels-into-a-layer", nicknames=True)
    assert len(new.state.code) == cs.CODE_LENGTH and set(new.state.code) <= set(cs.CODE_ALPHABET)
    assert len(new.token) >= 32 and new.token not in new.state.code
    state = store.get(new.state.code)
    assert state == new.state
    assert (state.step, state.revealed, state.nicknames, state.lesson_id) == (0, False, True,
                                                                             "01-channels-into-a-layer")
    assert store.get(new.state.code.lower()) == state  # typed in lower case, with a dash
    assert store.get(new.state.code[:3] + "-" + new.state.code[3:]) == state
    assert store.get("ZZZZZZ") is None and store.get("") is None and store.get("not a code") is None
    assert store.create_class("x").state.code != new.state.code


def test_only_the_token_moves_reveals_or_reads_the_answers(store):
    new = store.create_class("lesson")
    code = new.state.code
    other = store.create_class("lesson")
    for token in (None, "", "guess", other.token, new.token[:-1]):
        assert not store.is_teacher(code, token)
        with pytest.raises(ClassError, match="teacher"):
            store.set_step(code, token, 1)
        with pytest.raises(ClassError, match="teacher"):
            store.reveal(code, token)
        with pytest.raises(ClassError, match="teacher"):
            store.answers(code, token, 0)
        with pytest.raises(ClassError, match="teacher"):
            store.results_csv(code, token)
        with pytest.raises(ClassError, match="teacher"):
            store.nicknames(code, token)
    assert store.get(code).step == 0 and not store.get(code).revealed
    assert store.is_teacher(code, new.token)
    assert store.set_step(code, new.token, 2, steps=3).step == 2
    assert store.set_step(code, new.token, 9, steps=3).step == 2  # never past the lesson's last step
    assert store.set_step(code, new.token, -4).step == 0
    assert store.reveal(code, new.token).revealed and store.get(code).revealed
    assert not store.set_step(code, new.token, 1).revealed  # a new step starts unrevealed


def test_one_answer_per_student_per_step_the_last_wins_and_nobody_is_named(store):
    new = store.create_class("lesson", nicknames=True)
    code, token = new.state.code, new.token
    with pytest.raises(ClassError, match="join"):
        store.answer(code, "stranger", 0, 1.0)
    for i in range(5):
        store.join(code, f"s{i}", nickname=f"Kid {i}")
    store.join(code, "s0", nickname="renamed")  # a second join keeps the first nickname
    assert store.student_count(code) == 5
    for i in range(5):
        store.answer(code, f"s{i}", 0, 100.0 + i)
    store.answer(code, "s0", 0, 148)  # changed its mind
    store.answer(code, "s1", 0, 148.0)
    assert sorted(store.answers(code, token, 0)) == [102.0, 103.0, 104.0, 148.0, 148.0]
    assert store.count(code, 0) == 5 and store.count(code, 1) == 0
    assert store.my_answer(code, "s0", 0) == 148.0 and store.my_answer(code, "s4", 1) is None
    assert store.nicknames(code, token) == ["Kid 0", "Kid 1", "Kid 2", "Kid 3", "Kid 4"]
    with pytest.raises(ClassError, match="moved on"):
        store.answer(code, "s0", 1, 1.0)  # not the class's step
    store.set_step(code, token, 1)
    store.answer(code, "s2", 1, "average pooling")
    assert store.answers(code, token, 1) == ["average pooling"]
    store.reveal(code, token)
    with pytest.raises(ClassError, match="revealed"):
        store.answer(code, "s3", 1, "max pooling")
    rows = list(csv.reader(io.StringIO(store.results_csv(code, token, correct=lambda step, v: v == 148.0))))
    assert rows[0] == ["student", "step", "answer", "correct"]
    assert rows[1:] == [["1", "1", "148", "true"], ["2", "1", "148", "true"], ["3", "1", "102", "false"],
                        ["4", "1", "103", "false"], ["5", "1", "104", "false"],
                        ["3", "2", "average pooling", "false"]]
    text = store.results_csv(code, token)
    assert "Kid" not in text and "s0" not in text  # neither nicknames nor ids leave the store


def test_nicknames_only_when_the_teacher_allows_them(store):
    new = store.create_class("lesson", nicknames=False)
    store.join(new.state.code, "a", nickname="Ada")
    assert store.nicknames(new.state.code, new.token) == []
    allowed = store.create_class("lesson", nicknames=True)
    store.join(allowed.state.code, "a", nickname="  A  very\nlong nickname that goes on and on  ")
    (name,) = store.nicknames(allowed.state.code, allowed.token)
    assert name == "A very long nickname tha" and len(name) == cs.MAX_NICKNAME_CHARS


def test_answers_are_numbers_or_short_texts(store):
    new = store.create_class("lesson")
    code = new.state.code
    store.join(code, "a")
    for bad in (float("nan"), float("inf"), True, None, [1], "x" * (cs.MAX_ANSWER_CHARS + 1)):
        with pytest.raises(ClassError):
            store.answer(code, "a", 0, bad)
    store.answer(code, "a", 0, 7)
    assert store.answers(code, new.token, 0) == [7.0]


def test_a_class_expires_with_its_data(store):
    store.ttl_s = 1.0
    new = store.create_class("lesson")
    code = new.state.code
    store.join(code, "a")
    store.answer(code, "a", 0, 3.0)
    time.sleep(2.2)  # Redis expires keys itself (whole seconds); SQLite purges on the next look-up
    assert store.get(code) is None and not store.is_teacher(code, new.token)
    with pytest.raises(ClassError, match="no such class"):
        store.join(code, "b")
    if isinstance(store, SQLiteStore):
        store.create_class("another")  # a new class purges the expired ones
        with sqlite3.connect(store.path) as db:
            assert [db.execute(f"SELECT COUNT(*) FROM {t} WHERE code = ?", (code,)).fetchone()[0]
                    for t in ("classes", "students", "answers")] == [0, 0, 0]
    else:
        assert not list(store.redis.scan_iter(match=f"dv:*:{code}*"))


def test_a_full_class_refuses_the_next_student(store, monkeypatch):
    monkeypatch.setattr(cs, "MAX_STUDENTS", 3)
    new = store.create_class("lesson")
    for i in range(3):
        store.join(new.state.code, f"s{i}")
    store.join(new.state.code, "s1")  # a student already in rejoins
    with pytest.raises(ClassError, match="full"):
        store.join(new.state.code, "s9")


def test_many_threads_answer_at_once_and_every_answer_is_kept(store):
    new = store.create_class("lesson")
    code = new.state.code
    errors = []

    def student(i: int) -> None:
        try:
            store.join(code, f"s{i}")
            for value in (1.0, 2.0, float(i)):
                store.answer(code, f"s{i}", 0, value)
        except Exception as exc:  # any failure fails the test below
            errors.append(exc)

    threads = [threading.Thread(target=student, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(store.answers(code, new.token, 0)) == [float(i) for i in range(40)]


def test_two_processes_share_one_sqlite_file(tmp_path):
    """What two replicas of make serve see: separate connections to one WAL file."""
    path = tmp_path / "classes.sqlite3"
    teacher, student = SQLiteStore(path), SQLiteStore(path)
    new = teacher.create_class("lesson")
    student.join(new.state.code, "a")
    student.answer(new.state.code, "a", 0, 5.0)
    assert teacher.answers(new.state.code, new.token, 0) == [5.0]
    teacher.set_step(new.state.code, new.token, 1)
    assert student.get(new.state.code).step == 1
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert new.token not in str(db.execute("SELECT * FROM classes").fetchall())  # only its hash is stored


def test_the_store_setting_picks_the_backend(tmp_path, monkeypatch, redis_url):
    monkeypatch.setenv(cs.DATA_DIR_ENV, str(tmp_path))
    assert cs.default_sqlite_path() == tmp_path / cs.SQLITE_NAME
    assert isinstance(cs.store_from_env(""), SQLiteStore)
    chosen = cs.store_from_env(f"sqlite://{tmp_path}/other.db")
    assert isinstance(chosen, SQLiteStore) and chosen.path == tmp_path / "other.db"
    assert isinstance(cs.store_from_env(redis_url), RedisStore)
    assert cs.store_from_env(redis_url) is cs.store_from_env(redis_url)  # one per process
    assert "Redis at 127.0.0.1" in cs.describe(cs.store_from_env(redis_url))
    with pytest.raises(ClassError, match="DENSENET_VIZ_STORE"):
        cs.store_from_env("mysql://x")
    cs._stores.clear()
