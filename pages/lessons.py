"""Lessons: guided steps that ask a student to predict a number, then reveal what the live model says."""

import streamlit as st

from densenet_viz import lessons as ls
from densenet_viz import markup
from densenet_viz import settings as us
from densenet_viz.app import keys, ui
from densenet_viz.app import lessons as lesson_source

ui.get_state()
ss = st.session_state
st.title("Lessons")
st.markdown(
    "Each lesson is a short sequence of steps. Predict the answer first, then **Check** it; **Reveal** shows "
    "the number the app computes from the live model, and why. A step's button opens the page that shows it, "
    "with the lesson's model and only the controls the step names."
)


with st.expander("Teachers: open your own lesson file"):
    st.markdown("A lesson is a small TOML file (the format is in docs/lessons.md). Upload one for this session, or "
                f"put it in the server's lesson folder (`{ls.LESSONS_DIR_ENV}`) for the whole class; it is checked "
                "before it is shown and nothing in it is run.")
    upload = st.file_uploader("Lesson file (.toml)", type=["toml"], key=keys.LESSON_UPLOAD, max_upload_size=1)
    if upload is not None:
        lesson_source.take_upload(upload)
for error in lesson_source.from_teacher_folder(ls.teacher_folder())[1]:
    st.warning(f"A lesson in the teacher's folder cannot be used: {markup.message(error)}")
try:
    lessons = lesson_source.session_lessons()
except ls.LessonError as exc:
    ui.stop_with_error(f"A shipped lesson is broken: {markup.message(exc)}")

# A student's link (?lesson=...&step=...) reopens its step: read once, before the widgets exist.
if keys.LESSON_PICK_LESSON not in ss:
    ss[keys.LESSON_PICK_LESSON], ss[keys.LESSON_STEP], problems = ls.open_from_link(
        lessons, st.query_params.get("lesson", ""), st.query_params.get("step", "1"))
    for problem in problems:
        st.warning(problem)
if ss.get(keys.LESSON_PICK_LESSON) not in lessons:
    ss[keys.LESSON_PICK_LESSON] = next(iter(lessons))


def _reset_step() -> None:
    ss[keys.LESSON_STEP] = 1


lesson = lessons[st.selectbox("Lesson", list(lessons), format_func=lambda i: lessons[i].title,
                              key=keys.LESSON_PICK_LESSON, on_change=_reset_step)]
if not 1 <= ss.get(keys.LESSON_STEP, 1) <= len(lesson.steps):
    ss[keys.LESSON_STEP] = 1
if lesson.summary:
    st.caption(lesson.summary)
record = ss.setdefault(keys.LESSON_PROGRESS, {}).setdefault(lesson.id, {})
answered, correct, asked = ls.progress(lesson, record)
st.progress(answered / asked if asked else 1.0,
            text=f"{answered} of {asked} questions answered, {correct} correct")

def _step_label(n: int) -> str:
    return f"{n}" + (" ✓" if n - 1 in record and record[n - 1].correct else "")


number = st.segmented_control("Step", list(range(1, len(lesson.steps) + 1)), key=keys.LESSON_STEP,
                              format_func=_step_label)
number = number or 1
step = lesson.steps[number - 1]
st.query_params["lesson"], st.query_params["step"] = lesson.id, str(number)

st.markdown(step.text)
if step.page:
    url = f"./{step.page}?{us.query_string(step.query)}" + (f"&{us.PROJECTOR_KEY}=1" if ui.is_projector() else "")
    shown = ", ".join(us.BY_NAME[n].label for n in step.show) if step.show else "none"
    st.link_button(f"Open the {step.page} page for this step", url, icon=":material/open_in_new:",
                   key=keys.lesson_link(number),
                   help=f"Opens in a new tab with this step's model; controls you may change: "
                        f"{'all' if step.show is None else shown}.")

question = step.question
if question is not None:
    st.subheader("Your prediction")
    st.markdown(question.prompt)
    answer_key = keys.lesson_answer(lesson.id, number)
    if question.kind == "choice":
        given = st.radio("Your answer", question.options, index=None, key=answer_key)
    else:
        given = st.number_input(f"Your answer ({question.unit})" if question.unit else "Your answer", value=None,
                                format="%g", key=answer_key)
    check_col, reveal_col = st.columns(2)
    checked = check_col.button("Check", key=keys.lesson_check(lesson.id, number), type="primary")
    revealed = reveal_col.button("Reveal", key=keys.lesson_reveal(lesson.id, number))
    entry = record.setdefault(number - 1, ls.StepRecord())
    if checked:
        if ls.check(entry, question, given):
            st.rerun()  # redraw the progress bar above with this answer counted
        st.warning("Enter an answer first (or press Reveal).")
    if revealed and ls.reveal(entry):
        st.rerun()
    right = ls.verdict(entry, question, given)
    if right is not None:
        (st.success if right else st.error)("Right." if right else "Not quite: try again, or press Reveal.")
    if entry.revealed:
        st.info(f"**Answer: {ls.format_answer(question)}**"
                + (f" (within ±{question.tolerance:g})" if question.tolerance else ""))
        st.markdown(question.answer.why)
        if question.explain:
            st.markdown(question.explain)

base = (getattr(st.context, "url", None) or "").split("?")[0]
st.caption("Link to this step (for a student or a slide):")
st.code(f"{base}?lesson={lesson.id}&step={number}", language="text", wrap_lines=True)  # no unfocusable scroller
