"""Class mode as pages/classroom.py lays it out: start or join a class, the teacher's projector view, a student's
phone view that follows the class.

The URL says who is looking: `?class=CODE` a student (with `&me=ID` once joined, so a reload keeps their
answers), `?class=CODE&teacher=TOKEN` the teacher (every control checks the token in the store). Screens
follow the class by polling the store from a fragment every POLL_S: the teacher's live count and
distribution redraw in place; a student's poll reruns the page only when the class's step or revealed flag
changed. Every text a person typed (codes, nicknames) is shown through markup.plain.
"""

from __future__ import annotations

from urllib.parse import quote

import segno
import streamlit as st

from .. import lessons as ls
from .. import markup
from .. import settings as us
from ..classroom import room
from ..classroom import store as cs
from ..viz.class_charts import distribution_figure
from . import keys
from .lessons import server_lessons

POLL_S = 1.0  # a screen sees a change within this (plus a rerun): the issue asks for 2 s
QR_SCALE = 6


def store() -> cs.Store:
    """The class store this server uses ($DENSENET_VIZ_STORE)."""
    return cs.store_from_env()


def base_url() -> str:
    """This page's address without its query (what a student's link starts with)."""
    return (getattr(st.context, "url", None) or "").split("?")[0]


def student_link(code: str) -> str:
    """The link students open: this page with the class's code."""
    return f"{base_url()}?{keys.CLASS_URL}={quote(code)}"


def qr_alt(link: str, code: str) -> str:
    """The QR code's alt text: what it is and where it leads."""
    return f"QR code: join class {code} at {link}"


def qr_svg(link: str, code: str) -> str:
    """The join link as an SVG QR code, made here (no service on the internet), its title the alt text."""
    return segno.make(link, error="m").svg_inline(scale=QR_SCALE, dark="#000000", light="#ffffff",
                                                  title=qr_alt(link, code))


def qr_png(link: str) -> bytes:
    """The join link's QR code as a PNG, for a slide."""
    import io

    out = io.BytesIO()
    segno.make(link, error="m").save(out, kind="png", scale=10, border=4)
    return out.getvalue()


def page() -> None:
    """The whole Class page: which view the URL asks for, with store failures shown as errors."""
    try:
        _route()
    except cs.store_errors() as exc:
        st.error(f"The class store cannot be used: {markup.message(exc)}")


def _route() -> None:
    code_text = st.query_params.get(keys.CLASS_URL, "")
    if not code_text:
        st.title("Class")
        st.markdown("A teacher leads a lesson; the class predicts each answer on their phones; the projector shows "
                    "how the class answered, then the answer the app computes from the live model.")
        join_form()
        start_form()
        return
    code = cs.normalise_code(code_text)
    state = store().get(code) if code else None
    if state is None:
        st.title("Class")
        st.error(f"No class with the code {markup.quoted(code_text)} is running here: check the code, or ask the "
                 "teacher (a class ends a few hours after it starts).")
        join_form()
        return
    lesson = server_lessons().get(state.lesson_id)
    if lesson is None:
        st.error(f"This class follows the lesson {markup.quoted(state.lesson_id)}, which this server does not have.")
        return
    token = st.query_params.get(keys.TEACHER_URL)
    if token is not None:
        if store().is_teacher(code, token):
            teacher_view(state, token, lesson)
        else:
            st.error("This teacher link is not valid for this class: only the link the class was started with "
                     "controls it. Students join with the class's code.")
        return
    student_view(state, lesson)


# ---- starting and joining ------------------------------------------------------------------------------


def join_form() -> None:
    """A student types the join code."""
    with st.form(keys.CLASS_JOIN, border=True):
        st.subheader("Join a class")
        typed = st.text_input("Code on the teacher's screen", max_chars=12, key=keys.CLASS_CODE,
                              placeholder="e.g. K7MXQ2")
        if st.form_submit_button("Join", type="primary"):
            code = cs.normalise_code(typed)
            if not code or store().get(code) is None:
                st.error(f"No class with the code {markup.quoted(typed)} is running here.")
            else:
                st.query_params.from_dict({keys.CLASS_URL: code})
                st.rerun()


def start_form() -> None:
    """A teacher starts a class from a lesson."""
    # The server's lessons only: every replica has them, where a lesson uploaded into one session is not.
    lessons = server_lessons()
    with st.form(keys.CLASS_START, border=True):
        st.subheader("Teachers: start a class")
        chosen = st.selectbox("Lesson", list(lessons), format_func=lambda i: lessons[i].title, key=keys.CLASS_LESSON)
        nicknames = st.checkbox("Students may give a nickname", key=keys.CLASS_NICKNAMES,
                                help="Nicknames are listed for you only, never next to an answer.")
        if st.form_submit_button("Start the class", type="primary"):
            new = store().create_class(chosen, nicknames=nicknames)
            st.query_params.from_dict({keys.CLASS_URL: new.state.code, keys.TEACHER_URL: new.token})
            st.rerun()


# ---- the teacher ------------------------------------------------------------------------------------------


def _move(code: str, token: str, step: int, steps: int) -> None:
    store().set_step(code, token, step, steps)


def _reveal(code: str, token: str, revealed: bool) -> None:
    store().reveal(code, token, revealed)


def teacher_view(state: cs.ClassState, token: str, lesson: ls.Lesson) -> None:
    """The projector: join code, link and QR code; the step; Back, Next, Reveal; the live count and distribution."""
    code = state.code
    view = room.class_view(lesson, state)
    st.title(f"Class {markup.plain(code)}: {markup.plain(lesson.title, 120)}")
    link = student_link(code)
    left, right = st.columns([3, 1])
    with left:
        st.markdown(f"### Join code: {markup.plain(code)}")
        st.markdown("Students open this link (or this page, and type the code); no account is needed.")
        st.code(link, language="text", wrap_lines=True)
        with st.expander("Your teacher link (keep it private: it controls the class)"):
            st.code(f"{base_url()}?{keys.CLASS_URL}={code}&{keys.TEACHER_URL}={token}", language="text",
                    wrap_lines=True)
            st.caption(f"The class and its answers are deleted {cs.CLASS_TTL_S // 3600} hours after it started. "
                       f"Store: {markup.plain(cs.describe(store()), 120)}.")
    with right:
        st.image(qr_svg(link, code), alt=qr_alt(link, code), width=240)
        st.download_button("QR code (PNG)", qr_png(link), file_name=f"class-{code}.png", mime="image/png",
                           key=keys.CLASS_QR)

    back, forward, reveal, export = st.columns(4)
    back.button("Back", key=keys.CLASS_BACK, disabled=state.step == 0, on_click=_move,
                args=(code, token, state.step - 1, len(lesson.steps)), icon=":material/arrow_back:")
    forward.button("Next", key=keys.CLASS_NEXT, disabled=state.step + 1 >= len(lesson.steps), type="primary",
                   on_click=_move, args=(code, token, state.step + 1, len(lesson.steps)),
                   icon=":material/arrow_forward:")
    reveal.button("Hide the answer" if state.revealed else "Reveal the answer", key=keys.CLASS_REVEAL,
                  disabled=view.question is None, on_click=_reveal, args=(code, token, not state.revealed))
    export.download_button("Results (CSV)", lambda: store().results_csv(code, token, room.checker(lesson)),
                           file_name=f"class-{code}-results.csv", mime="text/csv", key=keys.CLASS_CSV,
                           help="Every answer, by anonymous student number: no names, no ids.")
    st.subheader(f"Step {view.number} of {view.steps}")
    show_step(view)
    if view.question is not None:
        st.markdown(f"**Question:** {view.question.prompt}")
    live_answers(code, token, lesson)


@st.fragment(run_every=POLL_S)
def live_answers(code: str, token: str, lesson: ls.Lesson) -> None:
    """The count and distribution of the current step's answers, redrawn every POLL_S (no names)."""
    state = store().get(code)
    if state is None:
        st.warning("This class has ended.")
        return
    view = room.class_view(lesson, state)
    joined = store().student_count(code)
    if view.question is None:
        st.markdown(f"**{joined} students joined**")
        return
    values = store().answers(code, token, state.step)
    st.markdown(f"**{len(values)} of {joined} students answered**")
    dist = room.distribution(view.question, values, revealed=state.revealed)
    st.plotly_chart(distribution_figure(dist, view.question.unit), key=keys.CLASS_LIVE, config={"displaylogo": False})
    if state.revealed:
        st.success(f"**{view.answer_text}**: {dist.correct} of {dist.total} right.")
        st.markdown(view.why)
    nicknames = store().nicknames(code, token) if state.nicknames else []
    if nicknames:
        with st.expander(f"Nicknames ({len(nicknames)})"):
            st.markdown(", ".join(markup.plain(n) for n in nicknames))


# ---- the students ----------------------------------------------------------------------------------------


def show_step(view: room.StepView) -> None:
    """A step's text and the button that opens its page with its controls, as the lesson link would."""
    st.markdown(view.text)
    if view.page:
        st.link_button(f"Open the {view.page} page for this step", f"./{view.page}?{us.query_string(view.query)}",
                       icon=":material/open_in_new:", key=keys.class_page(view.number),
                       help="Opens in a new tab with this step's model and only the controls the step names.")


def _student_id(state: cs.ClassState) -> str | None:
    """This session's anonymous id in the class: from the session, else from the URL (a reload), if it joined."""
    mine = st.session_state.setdefault(keys.CLASS_ME, {})
    student = mine.get(state.code) or st.query_params.get(keys.ME_URL)
    if student and store().is_student(state.code, student):
        mine[state.code] = student
        if st.query_params.get(keys.ME_URL) != student:
            st.query_params[keys.ME_URL] = student
        return student
    return None


def _join(code: str, nickname: str = "") -> None:
    student = cs.new_student_id()
    store().join(code, student, nickname)
    st.session_state.setdefault(keys.CLASS_ME, {})[code] = student
    st.query_params[keys.ME_URL] = student


def student_view(state: cs.ClassState, lesson: ls.Lesson) -> None:
    """A student's phone: join (a nickname if allowed), then the class's step, the question, Send, the answer."""
    code = state.code
    student = _student_id(state)
    st.title(f"Class {markup.plain(code)}")
    st.caption(markup.plain(lesson.title, 120))
    if student is None:
        if not state.nicknames:
            _join(code)
            student = _student_id(state)
        else:
            with st.form(keys.CLASS_JOIN):
                nickname = st.text_input("Nickname (optional; only your teacher sees it)",
                                         max_chars=cs.MAX_NICKNAME_CHARS, key=keys.CLASS_NICKNAME)
                if st.form_submit_button("Join", type="primary"):
                    _join(code, nickname)
                    st.rerun()
            return
    look = st.session_state.get(keys.CLASS_LOOK)
    view = room.looked_at(lesson, state, look)
    following = view.number == state.step + 1 and look in (None, state.step + 1)
    st.session_state[keys.CLASS_DRAWN] = (code, state.step, state.revealed)
    reached = list(range(1, state.step + 2))
    if len(reached) > 1:
        st.segmented_control("Look at step", reached, default=view.number, key=keys.class_step_pick(state.step),
                             on_change=_look, args=(state.step,))
    if not following:
        st.info(f"You are looking at step {view.number}; the class is at step {state.step + 1}.")
        st.button("Back to the class", key=keys.CLASS_RETURN, type="primary", on_click=_back_to_class)
    st.subheader(f"Step {view.number} of {view.steps}")
    show_step(view)
    question = view.question
    if question is not None:
        st.markdown(f"**Your prediction:** {question.prompt}")
        mine = store().my_answer(code, student, view.number - 1)
        if room.may_answer(state, view):
            answer_box(code, student, state.step, question)
        if view.revealed:
            st.info(f"**{markup.plain(view.answer_text)}**")
            st.markdown(view.why)
            st.caption(markup.plain(room.verdict(question, mine)))
        elif not room.may_answer(state, view):
            st.caption("Answers are closed for this step.")
    follow(code, state.step + 1 if not following else None)


@st.fragment
def answer_box(code: str, student: str, step: int, question: ls.Question) -> None:
    """The prediction and Send: a fragment, so sending reruns only this box (a class sends at once)."""
    answer_key = keys.class_answer(code, step)
    if question.kind == "choice":
        given = st.radio("Your answer", question.options, index=None, key=answer_key)
    else:
        label = f"Your answer ({question.unit})" if question.unit else "Your answer"
        given = st.number_input(label, value=None, format="%g", key=answer_key)
    if st.button("Send", key=keys.CLASS_SEND, type="primary"):
        if given is None:
            st.warning("Enter an answer first.")
        else:
            try:
                store().answer(code, student, step, given)
            except cs.ClassError as exc:  # the teacher moved on or revealed meanwhile
                st.warning(markup.message(exc))
                return
    mine = store().my_answer(code, student, step)
    if mine is not None:
        st.success(f"Sent: {markup.plain(_shown(mine))}. You can change it until the teacher reveals the answer.")


def _shown(value: float | str) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _look(step: int) -> None:
    picked = st.session_state.get(keys.class_step_pick(step))
    st.session_state[keys.CLASS_LOOK] = None if picked in (None, step + 1) else picked


def _back_to_class() -> None:
    st.session_state[keys.CLASS_LOOK] = None


@st.fragment(run_every=POLL_S)
def follow(code: str, class_step: int | None) -> None:
    """Poll the class: when the teacher moves or reveals, rerun the page so this screen shows it."""
    state = store().get(code)
    if state is None:
        st.warning("This class has ended.")
        return
    drawn = st.session_state.get(keys.CLASS_DRAWN)
    if drawn != (code, state.step, state.revealed):
        if st.session_state.get(keys.CLASS_LOOK) is None:
            st.rerun()
        st.caption(f"The class is now at step {state.step + 1}.")
        return
    st.caption("Following the class live." if class_step is None else f"The class is at step {class_step}.")
