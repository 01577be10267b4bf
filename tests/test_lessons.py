"""Lessons: every shipped answer equals an independently derived value, malformed files get errors that name the
line and the field, and the page keeps progress and reopens a step from its link."""

from __future__ import annotations

import math

import pytest
from apptest_helpers import open_page, shown

from densenet_viz import PRESETS, build_model
from densenet_viz import settings as us
from densenet_viz.app import keys
from densenet_viz.lessons import (
    LESSONS_DIR_ENV,
    LessonError,
    StepRecord,
    check,
    open_from_link,
    parse_lesson,
    progress,
    read_lesson,
    reveal,
    shipped_lessons,
    teacher_lessons,
    verdict,
)
from densenet_viz.lessons.loader import LESSON_DIR


def _built_params(name: str) -> int:
    """Parameters of the real module (a second method beside analyze()'s closed form)."""
    return sum(p.numel() for p in build_model(PRESETS[name], device="meta").parameters())


# Published errors as docs/reference.md gives them: the closest ResNet to DenseNet-201's 22.58 % (fb.resnet.torch).
_FIGURE3_RESNETS = {"ResNet-18": 30.43, "ResNet-34": 26.73, "ResNet-50": 24.01, "ResNet-101": 22.44,
                    "ResNet-152": 22.16, "ResNet-200": 21.66}  # fmt: skip

# (lesson id, step number) -> the answer derived without the app: the paper's formulas and docs/reference.md.
EXPECTED = {
    ("01-channels-into-a-layer", 1): math.floor(0.5 * (64 + 6 * 32)) + 32 * (5 - 1),  # 256
    ("01-channels-into-a-layer", 2): math.floor(0.5 * (64 + 6 * 12)) + 12 * (5 - 1),  # 116
    ("01-channels-into-a-layer", 3): 64 + 12 * (6 - 1),
    ("02-connections-in-a-block", 1): 6 * 7 // 2,
    ("02-connections-in-a-block", 2): 4 * 5 // 2,
    ("02-connections-in-a-block", 3): 12 * 13 // 2,
    ("03-compression", 1): math.floor(0.5 * (64 + 6 * 32)),
    ("03-compression", 2): 64 + 6 * 32,
    ("03-compression", 3): math.floor(0.3 * (64 + 6 * 32)),  # 76.8 -> 76
    ("04-fewer-parameters", 1): min(_FIGURE3_RESNETS, key=lambda t: abs(_FIGURE3_RESNETS[t] - 22.58)),
    ("04-fewer-parameters", 2): 44_549_160 / 20_013_928,
    ("04-fewer-parameters", 3): 7_801_405_440 / 4_291_365_888,
    ("05-training-memory", 1): 1_043_559_936 / 2**20,  # 995.2 MiB at batch 8
    ("05-training-memory", 2): 503_312_384 / 2**20,  # 480.0 MiB
    ("05-training-memory", 3): 1_043_559_936 / 503_312_384,
    ("06-growth-rate-tradeoff", 1): _built_params("densenet_100_12") / 1e6,
    ("06-growth-rate-tradeoff", 2): 4.10,
    ("06-growth-rate-tradeoff", 3): _built_params("densenet_100_24") / _built_params("densenet_100_12"),
    ("06-growth-rate-tradeoff", 4): 3.74,
    ("07-feature-reuse", 1): 4 * 5 // 2 + (4 + 1),  # L(L+1)/2 layer cells + the transition reading all L+1
    ("08-average-pooling-transitions", 1): 224 // 4 // 2,
    ("08-average-pooling-transitions", 2): "average pooling",  # the paper, Sec. 3: "2x2 average pooling layer"
    ("08-average-pooling-transitions", 3): math.floor(0.5 * (64 + 6 * 32)),
}


def test_eight_lessons_ship_and_every_question_is_checked_here():
    lessons = shipped_lessons()
    assert len(lessons) >= 8
    asked = {(lesson.id, i + 1) for lesson in lessons for i, s in enumerate(lesson.steps) if s.question}
    assert asked == set(EXPECTED)


@pytest.mark.parametrize(("lesson_id", "step"), sorted(EXPECTED))
def test_every_computed_answer_equals_the_derived_value(lesson_id, step):
    lesson = next(x for x in shipped_lessons() if x.id == lesson_id)
    question = lesson.steps[step - 1].question
    expected = EXPECTED[(lesson_id, step)]
    if isinstance(expected, str):
        assert question.answer.value == expected
    else:
        assert question.answer.value == pytest.approx(expected, rel=1e-6)
        assert question.check(expected) and not question.check(expected * 1.2 + 1)
    assert question.answer.why


def test_every_step_link_reopens_its_settings_with_only_its_controls():
    pages = us.PAGES
    for lesson in shipped_lessons():
        for step in lesson.steps:
            if step.page is None:
                continue
            assert step.page in pages
            state = us.settings_from_query(step.query)
            assert not state.warnings and state.settings == step.settings
            expected = set(us.BY_NAME) if step.show is None else set(step.show)
            assert state.visible == expected


def test_progress_counts_answered_and_correct_questions():
    lesson = next(x for x in shipped_lessons() if x.id == "02-connections-in-a-block")
    assert progress(lesson, {}) == (0, 0, 3)
    assert progress(lesson, {0: StepRecord(answered=True, correct=True), 2: StepRecord(answered=True)}) == (2, 1, 3)


GOOD = '''title = "A small lesson"
settings = { preset = "densenet121" }

[[steps]]
text = "Block 1 has six layers."
page = "connectivity"
show = ["block_config"]

[steps.question]
kind = "number"
prompt = "Connections in block 1?"
quantity = "connections_in_block"
args = { block = 1 }
tolerance = 0
'''


def _line_of(text: str, marker: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if marker in line)


def test_the_small_example_loads():
    lesson = parse_lesson(GOOD, "small.toml")
    assert lesson.id == "small" and lesson.steps[0].question.answer.value == 21


# (what is wrong, the broken text, the text the error must contain, the marker of the line it must name)
MALFORMED = [
    ("not TOML", GOOD.replace('tolerance = 0', 'tolerance = '), "not valid TOML", "tolerance ="),
    ("missing title", GOOD.replace('title = "A small lesson"\n', ""), "title: missing field", None),
    ("wrong type", GOOD.replace('title = "A small lesson"', "title = 3"), "title: must be a text", "title = 3"),
    ("unknown field", GOOD.replace("tolerance = 0", "tolerance = 0\ncode = 'import os'"),
     "steps[1].question.code: unknown field", "code ="),
    ("no steps", 'title = "x"\nsteps = []\n', "steps: a lesson needs 1 to", "steps = []"),
    ("unknown page", GOOD.replace('page = "connectivity"', 'page = "nowhere"'), "steps[1].page: unknown page",
     'page = "nowhere"'),
    ("unknown control", GOOD.replace('show = ["block_config"]', 'show = ["depth"]'),
     "steps[1].show: unknown control 'depth'", "show ="),
    ("invalid setting", GOOD.replace('text = "Block 1 has six layers."', 'text = "x"\nsettings = { k = 999 }'),
     "steps[1].settings: URL setting k='999' must be in [1, 128]", "settings = { k"),
    ("unknown quantity", GOOD.replace('"connections_in_block"', '"accuracy"'),
     "steps[1].question.quantity: unknown quantity 'accuracy'", 'quantity = "accuracy"'),
    ("unanswerable", GOOD.replace("block = 1", "block = 9"), "block must be in [1, 4]", "args ="),
    ("bad kind", GOOD.replace('kind = "number"', 'kind = "essay"'), "steps[1].question.kind: must be one of",
     'kind = "essay"'),
    ("wrong option", GOOD.replace('kind = "number"', 'kind = "choice"').replace(
        '"connections_in_block"', '"transition_pooling"').replace("args = { block = 1 }", 'options = ["max", "sum"]')
     .replace("tolerance = 0", ""), "computed answer 'average pooling' is not among the options", "options ="),
    ("negative tolerance", GOOD.replace("tolerance = 0", "tolerance = -1"), "question.tolerance: must be 0 or more",
     "tolerance = -1"),
]


@pytest.mark.parametrize(("what", "text", "message", "marker"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_lesson_gets_a_clear_error_naming_the_line(what, text, message, marker):
    with pytest.raises(LessonError) as err:
        parse_lesson(text, "broken.toml")
    said = str(err.value)
    assert said.startswith("broken.toml") and message in said, said
    if marker is not None:
        assert f"line {_line_of(text, marker)}" in said, said


def test_bytes_that_are_not_utf8_or_too_large_are_refused_before_parsing():
    with pytest.raises(LessonError, match="not UTF-8"):
        read_lesson(b'title = "\xff\xfe"', "bad.toml")
    with pytest.raises(LessonError, match="larger than 64 KiB"):
        read_lesson(b"#" * (65 * 1024), "big.toml")


def test_the_lessons_page_checks_reveals_and_counts_progress():
    at = open_page("lessons")
    assert at.selectbox(key="lesson_pick").value == "01-channels-into-a-layer"
    assert at.query_params["lesson"] == ["01-channels-into-a-layer"] or at.query_params["lesson"] == \
        "01-channels-into-a-layer"
    at.number_input(key="answer_01-channels-into-a-layer_1").set_value(200).run()
    at.button(key="check_01-channels-into-a-layer_1").click().run()
    assert any("Not quite" in shown(e.value) for e in at.error)
    assert at.get("progress")[0].proto.text.startswith("1 of 3 questions answered, 0 correct")
    at.number_input(key="answer_01-channels-into-a-layer_1").set_value(EXPECTED[("01-channels-into-a-layer", 1)])
    at.button(key="check_01-channels-into-a-layer_1").click().run()
    assert at.get("progress")[0].proto.text.startswith("1 of 3 questions answered, 1 correct")
    at.button(key="reveal_01-channels-into-a-layer_1").click().run()
    assert any("Answer: 256 channels" in shown(i.value) for i in at.info)
    (link,) = at.get("link_button")
    assert link.proto.url == "./growth?preset=densenet121&show=k"


def test_a_students_link_reopens_its_step():
    at = open_page("lessons", {"lesson": "05-training-memory", "step": "2"})
    assert at.selectbox(key="lesson_pick").value == "05-training-memory"
    assert at.session_state["lesson_step"] == 2
    assert not at.warning
    assert "memory-efficient mode (`checkpoint`): it recomputes" in " ".join(m.value for m in at.markdown)
    bad = open_page("lessons", {"lesson": "no-such-lesson", "step": "99"})
    assert any("does not exist" in shown(w.value) for w in bad.warning)


def test_a_teachers_folder_adds_its_lessons_and_names_a_broken_file(tmp_path, monkeypatch):
    good, broken = tmp_path / "mine.toml", tmp_path / "broken.toml"
    good.write_text(GOOD)
    broken.write_text(GOOD.replace('"connections_in_block"', '"accuracy"'))
    monkeypatch.setenv(LESSONS_DIR_ENV, str(tmp_path))
    at = open_page("lessons")
    assert any("broken.toml" in shown(w.value) and f"line {_line_of(broken.read_text(), 'quantity =')}" in w.value
               for w in at.warning)
    assert any("A small lesson" in title for title in at.selectbox(key="lesson_pick").options)
    assert not at.exception


def test_no_teacher_folder_means_no_teacher_lessons_and_a_missing_one_is_named(tmp_path):
    assert teacher_lessons("") == ((), ())
    lessons, errors = teacher_lessons(tmp_path / "nowhere")
    assert lessons == () and "not a folder" in errors[0]


def test_shipped_lesson_files_are_all_found():
    assert sorted(p.stem for p in LESSON_DIR.glob("*.toml")) == sorted(x.id for x in shipped_lessons())


def test_the_documented_example_is_a_valid_lesson():
    doc = (LESSON_DIR.parents[2] / "docs" / "lessons.md").read_text()
    section = doc.split("## The lesson format", 1)[1]
    example = section.split("```toml\n", 1)[1].split("\n```", 1)[0]
    lesson = parse_lesson(example, "example.toml")
    assert lesson.steps[0].question.answer.value == 6 * 7 // 2
    assert lesson.steps[0].query == {"preset": "densenet121", "k": "12", "show": "blocks"}


def test_the_lesson_query_keys_belong_to_the_page_not_to_the_settings():
    state = us.settings_from_query({"lesson": "03-compression", "step": "2", "k": "12"})
    assert not state.warnings and state.settings["growth_rate"] == 12
    assert set(us.PAGE_KEYS) == {"lesson", "step", us.PROJECTOR_KEY, *keys.CLASS_URL_KEYS}  # and the Class page's


def test_check_reveal_and_verdict_follow_what_the_student_did():
    lesson = next(x for x in shipped_lessons() if x.id == "02-connections-in-a-block")
    question = next(s.question for s in lesson.steps if s.question is not None and s.question.kind == "number")
    right, wrong = question.answer.value, question.answer.value + 10 * (question.tolerance + 1)
    record = StepRecord()
    assert not check(record, question, None) and record == StepRecord()  # nothing typed: nothing recorded
    assert verdict(record, question, right) is None  # nothing checked yet
    assert check(record, question, wrong) and record.answered and not record.correct
    assert verdict(record, question, wrong) is False and verdict(record, question, right) is None  # typed since
    assert check(record, question, right) and record.correct and verdict(record, question, right) is True
    assert check(record, question, wrong) and record.correct  # a right answer once checked stays earned
    assert reveal(record) and not reveal(record) and record.revealed
    assert verdict(record, question, wrong) is None  # the answer is on screen: no verdict


def test_a_link_opens_its_lesson_and_step_or_says_what_was_wrong():
    lessons = {x.id: x for x in shipped_lessons()}
    first = next(iter(lessons))
    assert open_from_link(lessons, "02-connections-in-a-block", "2") == ("02-connections-in-a-block", 2, [])
    lesson_id, step, problems = open_from_link(lessons, "[x](http://e.example)", "٣")
    assert (lesson_id, step) == (first, 1) and len(problems) == 2
    assert "](" not in problems[0] and "\\[x\\]" in problems[0]  # the link's text is escaped, never a link
    assert open_from_link(lessons, first, str(len(lessons[first].steps) + 1))[1:] == (
        1, [f"The link's step “{len(lessons[first].steps) + 1}” does not exist in this lesson; showing step 1."])
