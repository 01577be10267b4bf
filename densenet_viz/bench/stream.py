"""A Streamlit session driven over the app's own websocket protocol, as a browser tab drives it (no browser).

A browser first GETs the page (which sets Streamlit's XSRF cookie and, behind a balancer, its affinity
cookie), then opens `/_stcore/stream` with the subprotocols `streamlit, <xsrf token>` and those cookies,
and sends `BackMsg(rerun_script=ClientState(...))` for every page load and widget change; the server
answers with `ForwardMsg`s until `script_finished`. A widget change is a rerun whose `WidgetStates`
carry the widget's new value under its element id (read from the page's own deltas); a button press is
a `trigger_value`. Fragments with `run_every` ask the browser to rerun them (`auto_rerun`): so does this.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any, TypeVar
from urllib.parse import urlsplit

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.runtime.state.common import user_key_from_element_id
from websockets.asyncio.client import ClientConnection, connect

T = TypeVar("T")

XSRF_COOKIE = "_streamlit_xsrf"
FINISHED = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR}
FRAGMENT_FINISHED = ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(coro), also where this thread already runs an event loop (a notebook, Playwright's sync API):
    then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass
class RunResult:
    """One timed rerun: how long until the page (or the awaited element) was there, and what it showed."""

    page: str
    seconds: float
    finished: bool  # script_finished arrived (and, when awaited, the element was shown)
    exceptions: list[str] = field(default_factory=list)  # the message of every exception box
    missing: str = ""  # a widget the run should have drawn and did not


def page_cookies(base_url: str, timeout: float) -> dict[str, str]:
    """The cookies a browser gets with the page: Streamlit's XSRF cookie, a balancer's affinity cookie."""
    jar: dict[str, str] = {}
    with urllib.request.urlopen(base_url.rstrip("/") + "/", timeout=timeout) as response:
        for header in response.headers.get_all("Set-Cookie") or []:
            parsed = SimpleCookie()
            parsed.load(header)
            jar.update({name: morsel.value for name, morsel in parsed.items()})
    return jar


class Session:
    """One browser tab's session: its websocket, current URL query and page, and the widgets it has seen."""

    def __init__(self, ws: ClientConnection, query_string: str):
        self.ws = ws
        self.query_string = query_string
        self.page_hash = ""
        self.widget_ids: dict[str, str] = {}  # user key -> element id, from the page's deltas
        self.values: dict[str, WidgetState] = {}  # widgets this client has set, resent on every rerun
        self.fragments: dict[str, float] = {}  # fragment id -> run_every interval the server asked for

    def note_page(self, msg: ForwardMsg) -> bool:
        """Keep what a message says about the page (the script actually run, the URL, the fragments to poll), as
        the browser's frontend does; False for any other message."""
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            self.page_hash = msg.new_session.page_script_hash
        elif kind == "navigation":  # st.navigation names the page actually run
            self.page_hash = msg.navigation.page_script_hash
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        elif kind == "auto_rerun":
            self.fragments[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
        elif kind == "stop_auto_rerun":
            self.fragments.clear()
        else:
            return False
        return True

    @classmethod
    async def open(cls, base_url: str, query_string: str = "", timeout: float = 300.0) -> Session:
        """GET the page for its cookies, then open the websocket as the browser's frontend does."""
        cookies = await asyncio.to_thread(page_cookies, base_url, timeout)
        parts = urlsplit(base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        protocols = ["streamlit", cookies[XSRF_COOKIE]] if XSRF_COOKIE in cookies else ["streamlit"]
        headers = {"Origin": f"{parts.scheme}://{parts.netloc}"}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        ws = await connect(
            f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/_stcore/stream",
            subprotocols=protocols,  # type: ignore[arg-type]
            additional_headers=headers,
            max_size=None,  # Streamlit's messages may exceed websockets' 1 MiB default (server.maxMessageSize)
            ping_interval=None,  # browsers send no pings; a busy server would miss the pong and be dropped
            open_timeout=timeout,
        )
        return cls(ws, query_string)

    def set_widget(self, key: str, state: WidgetState) -> None:
        """Set the widget with this user key (it must have been drawn) to `state`'s value."""
        state.id = self.widget_ids[key]
        self.values[key] = state

    def slider(self, key: str, value: float) -> None:
        """Move the slider with this key to `value`, as a drag would."""
        state = WidgetState()
        state.double_array_value.data.append(float(value))
        self.set_widget(key, state)

    async def rerun(
        self, page: str, press: str | None = None, until_key: str | None = None, timeout: float = 300.0
    ) -> RunResult:
        """Rerun `page` with the widget values set so far (and a button pressed); time it to script_finished.

        With `until_key`, keep the session going (answering auto-reruns) until an element with that key
        was drawn and its run finished, as a user waits for a result that appears after a few reruns.
        """
        start = time.perf_counter()
        result = RunResult(page, 0.0, False)
        await self._send(page, press=press)
        seen = until_key is None
        deadline = start + timeout
        next_due = {fid: start + interval for fid, interval in self.fragments.items()}
        try:
            while True:
                now = time.perf_counter()
                due = min(next_due.values(), default=deadline)
                if now >= deadline:
                    break
                if due <= now:
                    fid = min(next_due, key=next_due.__getitem__)
                    next_due[fid] = now + self.fragments.get(fid, 1.0)
                    await self._send(page, fragment_id=fid)
                    continue
                try:
                    raw = await asyncio.wait_for(self.ws.recv(), timeout=min(due, deadline) - now)
                except TimeoutError:
                    continue
                msg = ForwardMsg()
                msg.ParseFromString(raw)
                kind = msg.WhichOneof("type")
                if kind == "delta":
                    seen = self._on_delta(msg, result, until_key) or seen
                elif self.note_page(msg):  # a fragment asked to be polled is due after its interval
                    now = time.perf_counter()
                    next_due = {fid: next_due.get(fid, now + every) for fid, every in self.fragments.items()}
                elif kind == "script_finished":
                    status = msg.script_finished
                    if (status in FINISHED or status == FRAGMENT_FINISHED) and seen:
                        result.finished = True
                        break
        except Exception:  # a closed or broken websocket is an unfinished rerun, not a crash of the client
            pass
        result.seconds = time.perf_counter() - start
        return result

    def _on_delta(self, msg: ForwardMsg, result: RunResult, until_key: str | None) -> bool:
        """Note widgets and exception boxes in one delta; True when it draws the awaited element."""
        element = msg.delta.new_element if msg.delta.HasField("new_element") else None
        if element is None:
            return False
        kind = element.WhichOneof("type")
        if kind == "exception":
            result.exceptions.append(f"{element.exception.type}: {element.exception.message}"[:500])
            return False
        body = getattr(element, kind, None) if kind else None
        element_id = getattr(body, "id", "") if body is not None else ""
        if not isinstance(element_id, str) or not element_id:
            return False
        key = user_key_from_element_id(element_id)
        if key:
            self.widget_ids[key] = element_id
        return key == until_key

    async def send(self, page: str, press: str | None = None, fragment_id: str = "", auto: bool = True) -> None:
        """Send one rerun without waiting for it: of the page, or of one fragment (as its run_every asks, or, with
        auto=False, as a widget inside the fragment does)."""
        await self._send(page, press=press, fragment_id=fragment_id, auto=auto)

    async def _send(self, page: str, press: str | None = None, fragment_id: str = "", auto: bool = True) -> None:
        """One BackMsg(rerun_script) with the current query, page and every widget value set so far."""
        back = BackMsg()
        state = back.rerun_script
        state.query_string = self.query_string
        state.page_name = page
        state.page_script_hash = self.page_hash
        state.widget_states.widgets.extend(self.values.values())
        if press:
            trigger = state.widget_states.widgets.add()
            trigger.id = self.widget_ids[press]
            trigger.trigger_value = True
        if fragment_id:
            state.fragment_id = fragment_id
            state.is_auto_rerun = auto
        await self.ws.send(back.SerializeToString())

    async def close(self) -> None:
        """Close the websocket, as closing the tab does."""
        await self.ws.close()
