"""The classroom benchmark: its protocol client against scripted server messages, and a quick real run."""

import asyncio
import re
import threading
from argparse import Namespace
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from densenet_viz.bench import classroom
from densenet_viz.bench.stream import Session, page_cookies, run_sync

SLIDER_ID = "$$ID-0123456789abcdef-growth_rate"
CURVES_ID = "$$ID-fedcba9876543210-train_curves"


def _table_rows(markdown: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in markdown.splitlines() if line.startswith("| ")]


def _tables(markdown: str) -> list[dict[str, list[str]]]:
    """Each markdown table as {header: column values}."""
    tables = []
    for block in markdown.split("\n\n"):
        rows = _table_rows(block)
        if rows:
            tables.append({h: [r[i] for r in rows[1:]] for i, h in enumerate(rows[0])})
    return tables


class FakeSocket:
    """A websocket that answers every BackMsg with the next scripted list of ForwardMsgs."""

    def __init__(self, replies: list[list[ForwardMsg]]):
        self.replies, self.sent, self.inbox = replies, [], asyncio.Queue()

    async def send(self, data: bytes) -> None:
        back = BackMsg()
        back.ParseFromString(data)
        self.sent.append(back)
        for msg in self.replies.pop(0) if self.replies else []:
            self.inbox.put_nowait(msg.SerializeToString())

    async def recv(self) -> bytes:
        return await self.inbox.get()


def _finished(status=ForwardMsg.FINISHED_SUCCESSFULLY) -> ForwardMsg:
    msg = ForwardMsg()
    msg.script_finished = status
    return msg


def _slider() -> ForwardMsg:
    msg = ForwardMsg()
    msg.delta.new_element.slider.id = SLIDER_ID
    return msg


def _exception(text: str) -> ForwardMsg:
    msg = ForwardMsg()
    msg.delta.new_element.exception.type = "ValueError"
    msg.delta.new_element.exception.message = text
    return msg


def test_rerun_counts_exception_boxes_and_sends_widget_changes_by_element_id():
    query = ForwardMsg()
    query.page_info_changed.query_string = "preset=densenet121&k0=65"
    ws = FakeSocket([[_slider(), query, _finished()], [_slider(), _exception("boom"), _finished()]])
    session = Session(ws, "k0=65")

    first = run_sync(session.rerun("growth", timeout=5))
    assert first.finished and first.exceptions == []
    assert session.widget_ids == {"growth_rate": SLIDER_ID}
    session.slider("growth_rate", 20)
    second = run_sync(session.rerun("growth", timeout=5))
    assert second.finished and second.exceptions == ["ValueError: boom"]

    sent = [b.rerun_script for b in ws.sent]
    assert [s.page_name for s in sent] == ["growth", "growth"]
    # The browser sends the URL the app last set, and the moved slider under its element id.
    assert [s.query_string for s in sent] == ["k0=65", "preset=densenet121&k0=65"]
    (widget,) = sent[1].widget_states.widgets
    assert widget.id == SLIDER_ID and list(widget.double_array_value.data) == [20.0]


def test_waiting_for_a_result_answers_auto_reruns_until_the_element_is_drawn():
    press = ForwardMsg()
    press.delta.new_element.button.id = "$$ID-00-train_start"
    auto = ForwardMsg()
    auto.auto_rerun.interval, auto.auto_rerun.fragment_id = 0.05, "progress"
    curves = ForwardMsg()
    curves.delta.new_element.plotly_chart.id = CURVES_ID
    ws = FakeSocket([
        [press, _finished()],  # the page as first drawn
        [auto, _finished()],  # Train pressed: a job queued, the page polls through a fragment
        [_finished(ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY)],  # first poll: not done yet
        [curves, _finished(ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY)],  # second poll: the result
    ])  # fmt: skip
    session = Session(ws, "")
    run_sync(session.rerun("training", timeout=5))
    result = run_sync(session.rerun("training", press="train_start", until_key="train_curves", timeout=5))
    assert result.finished
    sent = [b.rerun_script for b in ws.sent]
    assert sent[1].widget_states.widgets[0].trigger_value
    assert [(s.fragment_id, s.is_auto_rerun) for s in sent[2:]] == [("progress", True)] * 2


def test_a_missing_result_is_unfinished_not_a_hang():
    ws = FakeSocket([[_finished()]])
    result = run_sync(Session(ws, "").rerun("training", until_key="train_curves", timeout=0.3))
    assert not result.finished and 0.3 <= result.seconds < 2


def test_page_cookies_keeps_the_affinity_and_xsrf_cookies():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Set-Cookie", "SERVERID=app2; path=/")
            self.send_header("Set-Cookie", "_streamlit_xsrf=2|ab|cd|123; Path=/; SameSite=Lax")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cookies = page_cookies(f"http://127.0.0.1:{server.server_port}", timeout=5)
    finally:
        server.shutdown()
    assert cookies == {"SERVERID": "app2", "_streamlit_xsrf": "2|ab|cd|123"}


def test_options_refuse_unknown_pages():
    with pytest.raises(ValueError, match="unknown page"):
        classroom.Options(pages=("nowhere",))


def _args(**chosen) -> Namespace:
    parser = classroom.argparse.ArgumentParser()
    classroom.add_arguments(parser)
    return Namespace(**{**vars(parser.parse_args([])), **chosen})


@pytest.mark.slow
def test_quick_classroom_finishes_every_rerun_without_an_exception_box():
    """A few students on a freshly started app: every rerun reaches script_finished, no exception box."""
    quick = classroom.QUICK
    text = classroom.run(quick=True, args=_args())
    assert text.startswith("machine: ") and "Python loop" in text.splitlines()[0], text
    summary, pages, floor = _tables(text)
    assert summary["exception boxes"] == ["0"], text
    assert summary["failed/unfinished"] == ["0"], text
    # Each student: its first page, a reload if that page came without the sidebar, then every change.
    reloads = int(summary["no sidebar"][0])
    assert int(summary["reruns"][0]) == quick.students * (1 + quick.changes) + reloads
    assert float(summary["server CPU s"][0]) > 0
    assert 0.1 < float(summary["server RSS GiB"][0]) < 8
    overall = pages["page"].index("all reruns")
    assert int(pages["reruns"][overall]) == int(summary["reruns"][0])
    p50, p95, top = (float(pages[h][overall]) for h in ("p50 s", "p95 s", "max s"))
    assert 0 < p50 <= p95 <= top
    # The same students against Streamlit's floor page, in the same run: every rerun finished there too, and the
    # printed ratio is the quotient of the two CPU-per-rerun cells.
    assert floor["finished reruns"] == [summary["reruns"][0], str(quick.students * (1 + quick.changes))], text
    app, bare = (float(v) for v in floor["CPU s per rerun"])
    assert app > 0 and bare > 0
    ratio = float(re.search(r"app ÷ floor: \*\*([0-9.]+)x", text).group(1))
    assert ratio == pytest.approx(app / bare, rel=0.05, abs=0.01)


@pytest.mark.slow
def test_url_option_drives_a_running_server_and_starts_nothing(app_url):
    text = classroom.run(quick=False, args=_args(url=app_url, students=1, changes=1, arrival=0.0, think_min=0.1,
                                                 think_max=0.1, pages="growth"))  # fmt: skip
    summary, pages = _tables(text)
    assert summary["failed/unfinished"] == ["0"] and summary["exception boxes"] == ["0"], text
    assert summary["server CPU s"] == summary["server RSS GiB"] == ["n/a"]  # a deployment given by URL: not measured
    assert "Channel growth" in pages["page"]


def test_run_sync_also_runs_where_this_thread_already_runs_an_event_loop():
    async def inside_a_loop() -> int:  # as under Playwright's sync API or in a notebook
        pending = asyncio.sleep(0)
        with pytest.raises(RuntimeError):
            asyncio.run(pending)  # what the benchmark used to call, and failed with
        pending.close()
        return run_sync(asyncio.sleep(0, result=7))

    # In a thread of its own: Playwright's sync API, used by earlier tests, may leave this thread's loop running.
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, inside_a_loop()).result() == 7
    assert run_sync(asyncio.sleep(0, result=8)) == 8


def test_class_mode_matches_the_jth_answer_sent_with_the_teachers_screen_first_showing_j():
    from densenet_viz.bench import class_mode

    sends = [10.0, 10.5, 11.0]
    screen = [(9.0, 0), (10.2, 1), (11.2, 2), (12.2, 3), (13.2, 3)]
    assert class_mode.latencies(sends, screen) == pytest.approx([0.2, 0.7, 1.2])
    assert class_mode.latencies(sends, [(10.2, 1)]) == pytest.approx([0.2])  # never shown: not counted
    assert round(class_mode.BUDGET_MS, 6) == round(1000 * 0.5 / 120, 6)


@pytest.mark.slow
def test_quick_class_mode_sees_every_answer_and_measures_the_refresh(tmp_path):
    """Five students and a teacher on a freshly started app with its own SQLite store: every answer lands in the
    store and on the teacher's screen, no exception box, the refresh cost measured."""
    args = _args(class_mode=True, store=f"sqlite://{tmp_path}/classes.db")
    text = classroom.run(quick=True, args=args)
    assert text.startswith("machine: ") and f"SQLite file {tmp_path}/classes.db" in text, text
    (summary,) = _tables(text)
    assert summary["joined / answered (store)"] == ["5 / 5"], text
    assert summary["answers seen by the teacher"] == ["5"] and summary["failed"] == ["0"], text
    assert summary["exception boxes"] == ["0"], text
    p50, p95, top = (float(x) for x in summary["send → teacher p50 / p95 / max s"][0].split(" / "))
    assert 0 < p50 <= p95 <= top < 30
    assert float(summary["refresh CPU ms per student per s (budget)"][0].split()[0]) > 0
