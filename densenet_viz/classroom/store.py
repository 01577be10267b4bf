"""Where a class lives while it runs: its step, whether the answer is revealed, and its students' answers.

A class spans sessions, and behind `make serve` or Kubernetes it spans processes and machines, so nothing of it
is kept in a session or a process. Two stores behave the same (the tests run one suite against both):
SQLiteStore, one file on this machine in WAL mode (`make run`, and `make serve` on one machine), and
RedisStore (`DENSENET_VIZ_STORE=redis://host:6379/0`) for replicas on several machines. `store_from_env()`
picks one.

What a class holds: a short join code students type, the hash of a secret teacher token (the teacher's link
carries the token; every teacher operation checks it), the lesson, the current step and revealed flag, the
students (an anonymous random id each, an optional nickname), and one answer per student per step (the last
one sent wins). A class expires a few hours after it starts, and its data with it: Redis keys carry the
expiry as their TTL; SQLite rows are purged when a class is created or looked up after its expiry.
Read operations for the teacher's screen return counts and values, never who sent what.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import secrets
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STORE_ENV = "DENSENET_VIZ_STORE"  # unset or sqlite:///path: SQLite; redis://...: Redis
DATA_DIR_ENV = "DENSENET_VIZ_DATA_DIR"  # where the SQLite file goes (default: ~/.local/share/densenet-viz)
SQLITE_NAME = "classes.sqlite3"
CLASS_TTL_S = 4 * 3600  # a class and its answers are deleted this long after it starts
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: a code read off a projector is typed right
CODE_LENGTH = 6  # 31^6 ≈ 8.9e8 codes: a guessed code rarely names a live class (and a student can do little)
MAX_NICKNAME_CHARS = 24
MAX_ANSWER_CHARS = 200  # a choice's text; a number is a float
MAX_STUDENTS = 500  # a lecture hall; a join past this is refused


class ClassError(ValueError):
    """A class operation that cannot be done: no such class, an expired one, a wrong token, a full class."""


@dataclass(frozen=True)
class ClassState:
    """What everyone may know about a class: its code, lesson, current step (0-based), revealed flag, options."""

    code: str
    lesson_id: str
    step: int
    revealed: bool
    nicknames: bool  # whether students may give a nickname
    created: float  # time.time() at the start
    expires: float


@dataclass(frozen=True)
class NewClass:
    """A class just started: its state and the teacher's secret token (shown once, in the teacher's link)."""

    state: ClassState
    token: str


def normalise_code(text: str) -> str:
    """A join code as typed (any case, spaces or dashes) in its canonical form; '' when it cannot be one."""
    code = "".join(c for c in str(text).upper() if c.isalnum())
    return code if len(code) == CODE_LENGTH and all(c in CODE_ALPHABET for c in code) else ""


def new_code() -> str:
    """A random join code."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def new_student_id() -> str:
    """A random anonymous student id (it names nobody; it keeps one answer per student per step)."""
    return secrets.token_urlsafe(12)


def _token_hash(token: str) -> str:
    # Only the hash is stored: someone who reads the store (a backup, a shared Redis) cannot take over a class.
    return hashlib.sha256(str(token).encode()).hexdigest()


def clean_nickname(text: str | None) -> str:
    """A nickname kept to one short line (it is shown through markup.plain, never as Markdown)."""
    return " ".join(str(text or "").split())[:MAX_NICKNAME_CHARS]


def _encode(value: float | str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ClassError(f"an answer is a number or a text, got {type(value).__name__}")
    if isinstance(value, str):
        if len(value) > MAX_ANSWER_CHARS:
            raise ClassError(f"an answer is at most {MAX_ANSWER_CHARS} characters")
        return json.dumps(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ClassError("an answer must be a finite number")
    return json.dumps(float(value))


def _decode(text: str | bytes) -> float | str:
    return json.loads(text)


class Store(ABC):
    """The operations of a class; every teacher operation takes the teacher's token and checks it."""

    ttl_s: float = CLASS_TTL_S

    # ---- what a backend provides
    @abstractmethod
    def _insert_class(self, state: ClassState, token_hash: str) -> bool:
        """Store a new class; False when the code is taken."""

    @abstractmethod
    def _load(self, code: str) -> tuple[ClassState, str] | None:
        """(state, token hash) of a live class, or None."""

    @abstractmethod
    def _update(self, code: str, step: int, revealed: bool) -> None:
        """Set a class's step and revealed flag."""

    @abstractmethod
    def _add_student(self, state: ClassState, student: str, nickname: str) -> bool:
        """Register a student (keeping the first nickname); False when the class is full."""

    @abstractmethod
    def _has_student(self, code: str, student: str) -> bool:
        """Whether the student joined this class."""

    @abstractmethod
    def _put_answer(self, state: ClassState, student: str, step: int, encoded: str) -> None:
        """Store one answer, replacing the student's earlier one for that step."""

    @abstractmethod
    def _answer_of(self, code: str, student: str, step: int) -> str | None:
        """The encoded answer of one student at one step."""

    @abstractmethod
    def _answers(self, code: str, step: int) -> list[str]:
        """The encoded answers of a step, in no particular order and without their students."""

    @abstractmethod
    def _students(self, code: str) -> list[tuple[str, str]]:
        """(student id, nickname) of every student, in the order they joined."""

    @abstractmethod
    def _all_answers(self, code: str) -> list[tuple[str, int, str]]:
        """(student id, step, encoded answer) of the whole class."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    # ---- the operations
    def create_class(self, lesson_id: str, nicknames: bool = False, now: float | None = None) -> NewClass:
        """Start a class from a lesson: a fresh join code and teacher token; it expires after ttl_s."""
        now = time.time() if now is None else now
        self.purge(now)
        token = secrets.token_urlsafe(24)
        for _ in range(20):
            state = ClassState(new_code(), str(lesson_id), 0, False, bool(nicknames), now, now + self.ttl_s)
            if self._insert_class(state, _token_hash(token)):
                return NewClass(state, token)
        raise ClassError("no free join code was found; try again")

    def get(self, code: str) -> ClassState | None:
        """The state of a live class (what every student may know), or None for no such or an expired class."""
        code = normalise_code(code)
        found = self._load(code) if code else None
        if found is None or found[0].expires <= time.time():
            return None
        return found[0]

    def _require(self, code: str) -> ClassState:
        state = self.get(code)
        if state is None:
            raise ClassError("no such class (the code is wrong, or the class has ended)")
        return state

    def is_teacher(self, code: str, token: str | None) -> bool:
        """Whether `token` is the teacher token of this live class (compared in constant time)."""
        code = normalise_code(code)
        found = self._load(code) if code and token else None
        if found is None or found[0].expires <= time.time():
            return False
        return secrets.compare_digest(found[1], _token_hash(token))

    def _teacher(self, code: str, token: str | None) -> ClassState:
        state = self._require(code)
        if not self.is_teacher(state.code, token):
            raise ClassError("only the teacher's link may do this")
        return state

    def set_step(self, code: str, token: str | None, step: int, steps: int | None = None) -> ClassState:
        """Move the class to `step` (0-based; within `steps` when given); the new step starts unrevealed."""
        state = self._teacher(code, token)
        step = max(0, int(step) if steps is None else min(int(step), steps - 1))
        self._update(state.code, step, False)
        return ClassState(state.code, state.lesson_id, step, False, state.nicknames, state.created, state.expires)

    def reveal(self, code: str, token: str | None, revealed: bool = True) -> ClassState:
        """Show (or hide again) the current step's computed answer on every screen."""
        state = self._teacher(code, token)
        self._update(state.code, state.step, bool(revealed))
        return ClassState(state.code, state.lesson_id, state.step, bool(revealed), state.nicknames, state.created,
                          state.expires)

    def join(self, code: str, student: str, nickname: str = "") -> ClassState:
        """A student joins (again: the first nickname stays); a nickname only when the teacher allows them."""
        state = self._require(code)
        if not student:
            raise ClassError("a student needs an id")
        if not self._add_student(state, str(student)[:64], clean_nickname(nickname) if state.nicknames else ""):
            raise ClassError(f"this class is full ({MAX_STUDENTS} students)")
        return state

    def is_student(self, code: str, student: str | None) -> bool:
        """Whether this anonymous id joined this live class."""
        state = self.get(code)
        return state is not None and bool(student) and self._has_student(state.code, str(student)[:64])

    def answer(self, code: str, student: str, step: int, value: float | str) -> None:
        """A student's answer for a step (the class's current one only); a later answer replaces it."""
        state = self._require(code)
        if not self._has_student(state.code, str(student)[:64]):
            raise ClassError("join the class first")
        if step != state.step:
            raise ClassError("the class has moved on to another step")
        if state.revealed:
            raise ClassError("the answer has been revealed: answers are closed for this step")
        self._put_answer(state, str(student)[:64], step, _encode(value))

    def my_answer(self, code: str, student: str, step: int) -> float | str | None:
        """A student's own answer at a step (what their screen shows back), or None."""
        code = normalise_code(code)
        found = self._answer_of(code, str(student)[:64], int(step)) if code else None
        return None if found is None else _decode(found)

    def answers(self, code: str, token: str | None, step: int) -> list[float | str]:
        """The answers of a step, without who sent them (the teacher's distribution)."""
        state = self._teacher(code, token)
        return [_decode(v) for v in self._answers(state.code, int(step))]

    def count(self, code: str, step: int) -> int:
        """How many answered a step (a number everyone may see)."""
        code = normalise_code(code)
        return len(self._answers(code, int(step))) if code else 0

    def student_count(self, code: str) -> int:
        """How many students joined."""
        code = normalise_code(code)
        return len(self._students(code)) if code else 0

    def nicknames(self, code: str, token: str | None) -> list[str]:
        """The nicknames students gave (the teacher's roll; never beside an answer)."""
        state = self._teacher(code, token)
        return sorted(n for _, n in self._students(state.code) if n)

    def results(self, code: str, token: str | None) -> list[tuple[int, int, float | str]]:
        """(student number 1..N by joining order, step 0-based, answer) of the whole class: anonymous."""
        state = self._teacher(code, token)
        number = {student: i + 1 for i, (student, _) in enumerate(self._students(state.code))}
        rows = [(number.get(s, 0), step, _decode(v)) for s, step, v in self._all_answers(state.code)]
        return sorted(rows, key=lambda r: (r[1], r[0]))

    def results_csv(self, code: str, token: str | None, correct: Any = None) -> str:
        """The anonymous results as CSV (student, step 1-based, answer[, correct]); `correct(step, value)` adds a
        column."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["student", "step", "answer", *(["correct"] if correct else [])])
        for student, step, value in self.results(code, token):
            extra = [str(bool(correct(step, value))).lower()] if correct else []
            writer.writerow([student, step + 1, _csv_cell(value), *extra])
        return out.getvalue()

    def purge(self, now: float | None = None) -> int:
        """Delete expired classes and their data; how many were deleted (Redis expires keys itself: 0)."""
        return 0


def _csv_cell(value: float | str) -> str:
    # A spreadsheet runs a cell that starts with =, +, - or @: a choice's text is quoted out of that.
    if isinstance(value, str):
        return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
    return f"{value:g}"


# ---- SQLite ---------------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS classes (code TEXT PRIMARY KEY, lesson TEXT NOT NULL, token_hash TEXT NOT NULL,
    step INTEGER NOT NULL, revealed INTEGER NOT NULL, nicknames INTEGER NOT NULL, created REAL NOT NULL,
    expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS classes_expires ON classes (expires);
CREATE TABLE IF NOT EXISTS students (code TEXT NOT NULL, student TEXT NOT NULL, nickname TEXT NOT NULL,
    joined REAL NOT NULL, PRIMARY KEY (code, student));
CREATE TABLE IF NOT EXISTS answers (code TEXT NOT NULL, step INTEGER NOT NULL, student TEXT NOT NULL,
    value TEXT NOT NULL, sent REAL NOT NULL, PRIMARY KEY (code, step, student));
"""


def default_sqlite_path() -> Path:
    """$DENSENET_VIZ_DATA_DIR/classes.sqlite3, else under $XDG_DATA_HOME or ~/.local/share/densenet-viz."""
    folder = os.environ.get(DATA_DIR_ENV) or Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    folder = Path(folder) if os.environ.get(DATA_DIR_ENV) else Path(folder) / "densenet-viz"
    return folder / SQLITE_NAME


class SQLiteStore(Store):
    """One SQLite file in WAL mode: readers never wait for the writer, so every replica on the machine polls it."""

    def __init__(self, path: str | Path | None = None, ttl_s: float = CLASS_TTL_S) -> None:
        self.path = Path(path) if path else default_sqlite_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_s
        self._local = threading.local()  # one connection per thread: every session's script runs in a thread
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        with self._db() as db:
            db.executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a crash of the app, not of power
            db.execute("PRAGMA busy_timeout=10000")
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    def _insert_class(self, state: ClassState, token_hash: str) -> bool:
        try:
            self._db().execute("INSERT INTO classes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               (state.code, state.lesson_id, token_hash, state.step, int(state.revealed),
                                int(state.nicknames), state.created, state.expires))
        except sqlite3.IntegrityError:
            return False
        return True

    def _load(self, code: str) -> tuple[ClassState, str] | None:
        row = self._db().execute("SELECT lesson, token_hash, step, revealed, nicknames, created, expires FROM classes "
                                 "WHERE code = ?", (code,)).fetchone()
        if row is None:
            return None
        lesson, token_hash, step, revealed, nicknames, created, expires = row
        if expires <= time.time():
            self.purge()
            return None
        return ClassState(code, lesson, step, bool(revealed), bool(nicknames), created, expires), token_hash

    def _update(self, code: str, step: int, revealed: bool) -> None:
        self._db().execute("UPDATE classes SET step = ?, revealed = ? WHERE code = ?", (step, int(revealed), code))

    def _add_student(self, state: ClassState, student: str, nickname: str) -> bool:
        db = self._db()
        if db.execute("SELECT 1 FROM students WHERE code = ? AND student = ?", (state.code, student)).fetchone():
            return True
        if db.execute("SELECT COUNT(*) FROM students WHERE code = ?", (state.code,)).fetchone()[0] >= MAX_STUDENTS:
            return False
        db.execute("INSERT OR IGNORE INTO students VALUES (?, ?, ?, ?)", (state.code, student, nickname, time.time()))
        return True

    def _has_student(self, code: str, student: str) -> bool:
        return self._db().execute("SELECT 1 FROM students WHERE code = ? AND student = ?",
                                  (code, student)).fetchone() is not None

    def _put_answer(self, state: ClassState, student: str, step: int, encoded: str) -> None:
        self._db().execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
                           (state.code, step, student, encoded, time.time()))

    def _answer_of(self, code: str, student: str, step: int) -> str | None:
        row = self._db().execute("SELECT value FROM answers WHERE code = ? AND step = ? AND student = ?",
                                 (code, step, student)).fetchone()
        return None if row is None else row[0]

    def _answers(self, code: str, step: int) -> list[str]:
        return [r[0] for r in self._db().execute("SELECT value FROM answers WHERE code = ? AND step = ?", (code, step))]

    def _students(self, code: str) -> list[tuple[str, str]]:
        return list(self._db().execute("SELECT student, nickname FROM students WHERE code = ? ORDER BY joined, rowid",
                                       (code,)))

    def _all_answers(self, code: str) -> list[tuple[str, int, str]]:
        return list(self._db().execute("SELECT student, step, value FROM answers WHERE code = ?", (code,)))

    def purge(self, now: float | None = None) -> int:
        """Delete expired classes with their students and answers, in one transaction."""
        now = time.time() if now is None else now
        db = self._db()
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                gone = [r[0] for r in db.execute("SELECT code FROM classes WHERE expires <= ?", (now,))]
                for table in ("answers", "students", "classes"):
                    db.executemany(f"DELETE FROM {table} WHERE code = ?", [(c,) for c in gone])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return len(gone)

    def close(self) -> None:
        with self._lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()


# ---- Redis ----------------------------------------------------------------------------------------------


class RedisStore(Store):
    """Redis (any server speaking its protocol): each class's keys expire with it, so Redis deletes the data.

    Keys: `dv:class:<code>` (a hash: lesson, token hash, step, revealed, nicknames, created, expires),
    `dv:students:<code>` (a hash student -> nickname), `dv:joined:<code>` (a list: joining order),
    `dv:answers:<code>:<step>` (a hash student -> answer).
    """

    PREFIX = "dv"

    def __init__(self, url: str, ttl_s: float = CLASS_TTL_S) -> None:
        import redis  # only a deployment that names a Redis needs the client

        self.url, self.ttl_s = url, ttl_s
        self.redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)

    def _key(self, kind: str, code: str, step: int | None = None) -> str:
        return f"{self.PREFIX}:{kind}:{code}" + ("" if step is None else f":{step}")

    def _insert_class(self, state: ClassState, token_hash: str) -> bool:
        key = self._key("class", state.code)
        # HSETNX on one field claims the code atomically; the rest follows in one transaction with the expiry.
        if not self.redis.hsetnx(key, "lesson", state.lesson_id):
            return False
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping={"token_hash": token_hash, "step": state.step, "revealed": int(state.revealed),
                                "nicknames": int(state.nicknames), "created": state.created,
                                "expires": state.expires})
        pipe.expireat(key, int(state.expires) + 1)
        pipe.execute()
        return True

    def _load(self, code: str) -> tuple[ClassState, str] | None:
        data = self.redis.hgetall(self._key("class", code))
        if not data or b"expires" not in data:
            return None
        d = {k.decode(): v.decode() for k, v in data.items()}
        state = ClassState(code, d["lesson"], int(d["step"]), d["revealed"] == "1", d["nicknames"] == "1",
                           float(d["created"]), float(d["expires"]))
        return state, d["token_hash"]

    def _update(self, code: str, step: int, revealed: bool) -> None:
        self.redis.hset(self._key("class", code), mapping={"step": step, "revealed": int(revealed)})

    def _add_student(self, state: ClassState, student: str, nickname: str) -> bool:
        key, order = self._key("students", state.code), self._key("joined", state.code)
        if self.redis.hexists(key, student):
            return True
        if self.redis.hlen(key) >= MAX_STUDENTS:
            return False
        pipe = self.redis.pipeline()
        pipe.hsetnx(key, student, nickname)
        pipe.expireat(key, int(state.expires) + 1)
        added, _ = pipe.execute()
        if added:  # only the first join of a student counts in the order
            pipe = self.redis.pipeline()
            pipe.rpush(order, student)
            pipe.expireat(order, int(state.expires) + 1)
            pipe.execute()
        return True

    def _has_student(self, code: str, student: str) -> bool:
        return bool(self.redis.hexists(self._key("students", code), student))

    def _put_answer(self, state: ClassState, student: str, step: int, encoded: str) -> None:
        key = self._key("answers", state.code, step)
        pipe = self.redis.pipeline()
        pipe.hset(key, student, encoded)
        pipe.expireat(key, int(state.expires) + 1)
        pipe.execute()

    def _answer_of(self, code: str, student: str, step: int) -> str | None:
        value = self.redis.hget(self._key("answers", code, step), student)
        return None if value is None else value.decode()

    def _answers(self, code: str, step: int) -> list[str]:
        return [v.decode() for v in self.redis.hvals(self._key("answers", code, step))]

    def _students(self, code: str) -> list[tuple[str, str]]:
        pipe = self.redis.pipeline()
        pipe.lrange(self._key("joined", code), 0, -1)
        pipe.hgetall(self._key("students", code))
        order, names = pipe.execute()
        names = {k.decode(): v.decode() for k, v in names.items()}
        return [(s.decode(), names.get(s.decode(), "")) for s in order]

    def _all_answers(self, code: str) -> list[tuple[str, int, str]]:
        rows = []
        for key in self.redis.scan_iter(match=self._key("answers", code) + ":*", count=100):
            step = int(key.decode().rsplit(":", 1)[1])
            rows += [(s.decode(), step, v.decode()) for s, v in self.redis.hgetall(key).items()]
        return rows

    def close(self) -> None:
        self.redis.close()


def store_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a store raises when its file or server fails (a page shows them instead of a traceback)."""
    errors: tuple[type[BaseException], ...] = (ClassError, sqlite3.Error, OSError)
    try:
        import redis
    except ImportError:
        return errors
    return (*errors, redis.RedisError)


# ---- the choice ----------------------------------------------------------------------------------------

_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def store_from_env(setting: str | None = None) -> Store:
    """The store $DENSENET_VIZ_STORE names (one per process and setting): unset or `sqlite:///path` for SQLite (the
    default file when no path), `redis://...` or `rediss://...` for Redis."""
    setting = (os.environ.get(STORE_ENV, "") if setting is None else setting).strip()
    with _stores_lock:
        if setting not in _stores:
            if setting.startswith(("redis://", "rediss://", "unix://")):
                _stores[setting] = RedisStore(setting)
            elif not setting or setting.startswith("sqlite://"):
                path = setting.removeprefix("sqlite://").removeprefix("/") if setting else ""
                _stores[setting] = SQLiteStore(("/" + path) if path else None)
            else:
                raise ClassError(f"{STORE_ENV} must be sqlite:///path or redis://host:port/db, got {setting[:40]!r}")
        return _stores[setting]


def describe(store: Store) -> str:
    """Which store this is, for the teacher's screen and the benchmark (no password)."""
    if isinstance(store, RedisStore):
        from urllib.parse import urlsplit

        parts = urlsplit(store.url)
        return f"Redis at {parts.hostname}:{parts.port or 6379}"
    if isinstance(store, SQLiteStore):
        return f"SQLite file {store.path}"
    return type(store).__name__
