"""Class mode's room logic: the distribution of answers (histogram bins, choice bars), what a screen shows at a
step, the computed answer from the lesson's own question, looking around without seeing ahead."""

from __future__ import annotations

import itertools

import pytest

from densenet_viz.classroom import room
from densenet_viz.classroom.store import ClassState
from densenet_viz.lessons import shipped_lessons

LESSONS = {lesson.id: lesson for lesson in shipped_lessons()}
CHANNELS = LESSONS["01-channels-into-a-layer"]  # step 1: 128 + 4·32 = 256 channels
POOLING = LESSONS["08-average-pooling-transitions"]  # step 2: a choice, "average pooling"


def state(step: int = 0, revealed: bool = False) -> ClassState:
    return ClassState("ABCDEF", "x", step, revealed, False, 0.0, 1e12)


def test_integer_answers_get_one_bar_per_value_and_the_answer_falls_in_a_bar():
    question = CHANNELS.steps[0].question
    assert question.answer.value == 128 + 4 * 32
    values = [256.0, 256.0, 250.0, 252.0, 256.0]
    hidden = room.distribution(question, values)
    assert hidden.answer is None and hidden.total == 5 and hidden.correct == 3
    assert sum(hidden.counts) == 5 and hidden.labels[0] == "250" and hidden.labels[-1] == "256"
    assert dict(zip(hidden.labels, hidden.counts, strict=True))["256"] == 3
    shown = room.distribution(question, [240.0, 241.0], revealed=True)
    assert shown.answer == 256 and shown.labels[-1] == "256" and shown.edges[0] <= 240 < 256 <= shown.edges[-1]


def test_spread_out_numbers_get_at_most_a_dozen_equal_bins_holding_every_answer():
    question = CHANNELS.steps[0].question
    values = [float(v) for v in range(0, 100_000, 997)]  # 101 answers over a wide range
    dist = room.distribution(question, values, revealed=True)
    assert len(dist.counts) <= room.MAX_BINS and sum(dist.counts) == len(values)
    assert dist.edges[0] == 0 and dist.edges[-1] == max(values)
    widths = {round(b - a, 6) for a, b in itertools.pairwise(dist.edges)}
    assert len(widths) == 1
    assert room.distribution(question, []).counts == (0,)
    assert room.distribution(question, [3.5, 3.5]).counts == (2,)


def test_choices_are_counted_per_option_in_the_lessons_order():
    question = POOLING.steps[1].question
    dist = room.distribution(question, ["average pooling", "max pooling", "average pooling", 3.0])
    assert dist.labels == question.options and dist.counts == (1, 2, 0) and dist.total == 4 and dist.correct == 2
    assert room.distribution(question, [], revealed=True).answer == "average pooling"


def test_a_step_shows_its_answer_and_explanation_only_when_revealed():
    hidden = room.class_view(CHANNELS, state(0))
    assert (hidden.number, hidden.steps, hidden.revealed, hidden.answer_text, hidden.why) == (1, 3, False, "", "")
    assert hidden.page == "growth" and hidden.query["show"] == "k"
    shown = room.class_view(CHANNELS, state(0, revealed=True))
    assert shown.answer_text == "Answer: 256 channels" and "earlier layers" in shown.why
    assert room.may_answer(state(0), hidden) and not room.may_answer(state(0, True), shown)


def test_looking_around_reaches_only_steps_the_class_has_reached():
    now = state(1)
    assert room.looked_at(CHANNELS, now, 1).revealed  # a passed step shows its answer
    assert room.looked_at(CHANNELS, now, 2) == room.class_view(CHANNELS, now)
    assert room.looked_at(CHANNELS, now, 3).number == 2  # ahead of the class: the class's step instead
    assert room.looked_at(CHANNELS, now, None).number == 2
    assert not room.may_answer(now, room.looked_at(CHANNELS, now, 1))


@pytest.mark.parametrize(("given", "text"), [(None, "did not answer"), (256.0, "right"), (200.0, "You answered 200.")])
def test_a_students_verdict(given, text):
    assert text in room.verdict(CHANNELS.steps[0].question, given)


def test_the_csv_checker_uses_the_lessons_own_check():
    correct = room.checker(POOLING)
    assert correct(1, "average pooling") and not correct(1, "max pooling") and not correct(1, 3.0)
    assert not correct(99, 1.0)


def test_the_projector_chart_is_a_valid_figure_with_the_answer_drawn_only_when_revealed():
    import plotly.graph_objects as go

    from densenet_viz.viz.class_charts import ANSWER_COLOR, distribution_figure

    number = CHANNELS.steps[0].question
    hidden = distribution_figure(room.distribution(number, [250.0, 256.0, 256.0]), number.unit)
    go.Figure(hidden.to_dict())  # plotly's own validation of the dict the page sends
    assert not hidden.layout.shapes and sum(hidden.data[0].y) == 3 and "3 answers" in hidden.layout.title.text
    shown = distribution_figure(room.distribution(number, [250.0, 256.0, 256.0], revealed=True), number.unit)
    go.Figure(shown.to_dict())
    assert shown.layout.shapes[0].x0 == 256 and "256" in shown.layout.annotations[0].text
    choice = POOLING.steps[1].question
    bars = distribution_figure(room.distribution(choice, ["average pooling"], revealed=True))
    go.Figure(bars.to_dict())
    assert list(bars.data[0].x) == list(choice.options)
    assert bars.data[0].marker.color[choice.options.index("average pooling")] == ANSWER_COLOR
