"""The Class page through AppTest: a teacher starts a class, students join by link or code and answer, the teacher
sees the count and distribution, moves on and reveals; only the teacher's token controls the class."""

from __future__ import annotations

import csv
import io
import json

import pytest
from apptest_helpers import new_app, open_page, shown, values

from densenet_viz.app import keys
from densenet_viz.classroom import store as cs

LESSON = "01-channels-into-a-layer"  # step 1 asks for 256 channels, step 2 for 116


@pytest.fixture(params=["sqlite", "redis"])
def class_store(request, tmp_path, monkeypatch):
    """The page's store, chosen as a deployment chooses it: $DENSENET_VIZ_STORE."""
    if request.param == "sqlite":
        setting = f"sqlite://{tmp_path}/classes.sqlite3"
    else:
        setting = request.getfixturevalue("redis_url")
    monkeypatch.setenv(cs.STORE_ENV, setting)
    cs._stores.clear()
    made = cs.store_from_env()
    if request.param == "redis":
        made.redis.flushdb()
    yield made
    cs._stores.clear()


def start_class(nicknames: bool = False):
    """A teacher opens the Class page, picks the lesson and presses Start: the AppTest and the class's code and
    token (from the teacher's URL)."""
    at = open_page("classroom")
    at.selectbox(key=keys.CLASS_LESSON).set_value(LESSON)
    at.checkbox(key=keys.CLASS_NICKNAMES).set_value(nicknames)
    at.button(key="FormSubmitter:class_start-Start the class").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at, param(at, keys.CLASS_URL), param(at, keys.TEACHER_URL)


def param(at, key: str) -> str:
    """A URL query value as the page left it (AppTest keeps a string, or a list of repeated values)."""
    value = at.query_params[key]
    return value if isinstance(value, str) else value[-1]


def open_as(query: dict):
    at = open_page("classroom", query)
    return at


def texts(at) -> str:
    return "\n".join(shown(m.value) for kind in ("markdown", "success", "info", "error", "warning", "caption",
                                                 "subheader", "title") for m in at.get(kind)).replace("**", "")


def live_count(at) -> str:
    return next(shown(m.value).strip("*") for m in at.markdown if "students answered" in m.value)


def test_a_class_runs_end_to_end(class_store):
    teacher, code, token = start_class()
    assert class_store.get(code).lesson_id == LESSON
    page = texts(teacher)
    assert f"Join code: {code}" in page and "Step 1 of 3" in page
    (qr,) = [img for e in teacher.get("image") for img in e.proto.imgs]  # made here: an SVG, not a fetched image
    assert qr.alt == f"QR code: join class {code} at ?class={code}" and qr.url.startswith("data:image/svg+xml")
    assert live_count(teacher) == "0 of 0 students answered"

    students = [open_as({keys.CLASS_URL: code}) for _ in range(3)]  # by the link: joined at once, anonymously
    assert class_store.student_count(code) == 3
    for i, (at, value) in enumerate(zip(students, (256, 250, 256), strict=True)):
        assert "Step 1 of 3" in texts(at) and keys.ME_URL in at.query_params
        at.number_input(key=f"class_answer_{code}_0").set_value(value)
        at.button(key=keys.CLASS_SEND).click().run()
        assert f"Sent: {value}" in texts(at), i
        assert not at.button(key=keys.CLASS_SEND).proto.disabled
    students[1].number_input(key=f"class_answer_{code}_0").set_value(256)  # changed its mind: the last answer wins
    students[1].button(key=keys.CLASS_SEND).click().run()
    teacher.run()
    assert live_count(teacher) == "3 of 3 students answered"
    (chart,) = [e for e in teacher.get("plotly_chart") if e.key == keys.CLASS_LIVE]
    bars = json.loads(chart.proto.spec)["data"][0]
    assert sum(values(bars["y"])) == 3 and "shapes" not in json.loads(chart.proto.spec)["layout"]

    teacher.button(key=keys.CLASS_REVEAL).click().run()
    spec = json.loads(next(e for e in teacher.get("plotly_chart") if e.key == keys.CLASS_LIVE).proto.spec)
    assert spec["layout"]["shapes"][0]["x0"] == 256  # the computed answer on the histogram
    assert "Answer: 256 channels: 3 of 3 right." in texts(teacher)
    for at in students:
        at.run()
        assert "Answer: 256 channels" in texts(at) and "right" in texts(at)
        assert not [w for w in at.get("number_input") if w.key.startswith("class_answer")]  # closed once revealed

    teacher.button(key=keys.CLASS_NEXT).click().run()
    assert class_store.get(code).step == 1 and not class_store.get(code).revealed
    assert "Step 2 of 3" in texts(teacher) and live_count(teacher) == "0 of 3 students answered"
    for at in students:
        at.run()
        assert "Step 2 of 3" in texts(at) and "Answer:" not in texts(at)

    # A student looks back at step 1 (its answer shown), then returns to the class.
    look = students[0]
    look.get("button_group")[0].set_value(1).run()
    assert "You are looking at step 1" in texts(look) and "Answer: 256 channels" in texts(look)
    look.button(key=keys.CLASS_RETURN).click().run()
    assert "Step 2 of 3" in texts(look) and "You are looking" not in texts(look)

    teacher.button(key=keys.CLASS_BACK).click().run()
    assert class_store.get(code).step == 0
    csv_button = teacher.get("download_button")
    assert csv_button
    rows = list(csv.reader(io.StringIO(class_store.results_csv(code, token))))
    assert rows[0] == ["student", "step", "answer"] and len(rows) == 4


def test_a_student_joins_by_typing_the_code(class_store):
    _, code, _ = start_class()
    at = open_page("classroom")
    at.text_input(key=keys.CLASS_CODE).set_value(code.lower())
    at.button(key="FormSubmitter:class_join-Join").click().run()
    assert param(at, keys.CLASS_URL) == code
    assert f"Class {code}" in texts(at) and class_store.student_count(code) == 1
    wrong = open_page("classroom")
    wrong.text_input(key=keys.CLASS_CODE).set_value("[link](http://evil.example)")
    wrong.button(key="FormSubmitter:class_join-Join").click().run()
    (error,) = wrong.error
    assert "No class with the code" in error.value and "](http" not in error.value  # shown as plain text


def test_nicknames_when_allowed_are_for_the_teacher_only(class_store):
    teacher, code, token = start_class(nicknames=True)
    at = open_as({keys.CLASS_URL: code})
    assert class_store.student_count(code) == 0  # asked first
    at.text_input(key=keys.CLASS_NICKNAME).set_value("**Bold** <b>x</b>")
    at.button(key="FormSubmitter:class_join-Join").click().run()
    assert class_store.nicknames(code, token) == ["**Bold** <b>x</b>"]
    teacher.run()
    roll = [m.value for m in teacher.markdown if "Bold" in m.value]
    assert roll and "\\*\\*Bold\\*\\*" in roll[0]  # escaped by markup.plain, never rendered


def test_a_student_cannot_reveal_advance_or_read_the_answers(class_store):
    _, code, token = start_class()
    student = open_as({keys.CLASS_URL: code})
    for key in (keys.CLASS_NEXT, keys.CLASS_BACK, keys.CLASS_REVEAL, keys.CLASS_CSV):
        assert not [b for b in student.get("button") + student.get("download_button") if b.key == key]
    assert not [e for e in student.get("plotly_chart") if e.key == keys.CLASS_LIVE]
    assert "students answered" not in texts(student)
    for guess in ("", "x", token[:-1] + ("A" if token[-1] != "A" else "B")):
        forged = open_as({keys.CLASS_URL: code, keys.TEACHER_URL: guess})
        assert "teacher link is not valid" in texts(forged)
        assert not [b for b in forged.get("button") if b.key in (keys.CLASS_NEXT, keys.CLASS_REVEAL)]
    assert class_store.get(code).step == 0 and not class_store.get(code).revealed


def test_an_unknown_or_ended_class_says_so(class_store):
    at = open_as({keys.CLASS_URL: "ZZZZZZ"})
    assert "No class with the code" in texts(at)
    at = new_app({keys.CLASS_URL: "<script>"})
    at.run()
    at.switch_page("pages/classroom.py").run()
    assert not at.exception and "No class with the code" in texts(at)


def test_a_whole_lesson_runs_in_class_mode_and_the_csv_holds_every_step(class_store):
    from densenet_viz.lessons import shipped_lessons

    lesson = next(lesson for lesson in shipped_lessons() if lesson.id == LESSON)
    teacher, code, token = start_class()
    students = [open_as({keys.CLASS_URL: code}) for _ in range(2)]
    for number, step in enumerate(lesson.steps, start=1):
        right = float(step.question.answer.value)
        for at, value in zip(students, (right, right + 1), strict=True):
            at.run()
            assert f"Step {number} of {len(lesson.steps)}" in texts(at)
            at.number_input(key=keys.class_answer(code, number - 1)).set_value(value)
            at.button(key=keys.CLASS_SEND).click().run()
        teacher.run()
        assert live_count(teacher) == "2 of 2 students answered"
        teacher.button(key=keys.CLASS_REVEAL).click().run()
        assert "1 of 2 right" in texts(teacher)
        for at in students:
            at.run()
            assert step.question.answer.why.split("$")[0][:20] in texts(at)  # the lesson's own explanation
        if number < len(lesson.steps):
            teacher.button(key=keys.CLASS_NEXT).click().run()
    assert teacher.button(key=keys.CLASS_NEXT).proto.disabled  # the last step
    rows = list(csv.DictReader(io.StringIO(class_store.results_csv(code, token, lambda s, v: lesson.steps[s]
                                                                   .question.check(v)))))
    assert len(rows) == 2 * len(lesson.steps)
    assert [r["correct"] for r in rows] == ["true", "false"] * len(lesson.steps)
