"""ARI REST requests over the events WebSocket (Asterisk 20.14+, 21.9+, 22.4+; ``res/ari/ari_websocket_requests.c``).

A request is a text frame ``{"type": "RESTRequest", "request_id", "method", "uri", "query_strings",
"message_body", "content_type"}``; the answer comes back on the same socket, among the events, as ``{"type":
"RESTResponse", "request_id", "status_code", "reason_phrase", "uri", "content_type", "message_body", ...}``.
It saves the HTTP request and the aiohttp/aioswagger work around it, which is most of a REST call's CPU.

What Asterisk 20.20.1 does (checked on the real PBX, ``tests/real``):

* ``uri`` is relative to ``/ari/`` and must not start with ``/`` (``/asterisk/ping`` is ``405 Invalid method``);
* the socket's requests are served one at a time, in order, by the thread that reads the socket; an operation
  that goes through the channel's command queue (``answer``, ``bridges/addChannel``, ``setChannelVar``:
  :data:`CHANNEL_QUEUED`) waits there until a prompt the channel plays has ended, and every request queued behind
  it on the socket waits too (a 30 s prompt held a ``GET /asterisk/ping`` for 30 s; over HTTP it answered at once).
  Only the channel that plays is held: the same operations on another channel (while the caller plays a prompt in
  the bridge: answer an agent's leg, add it to that bridge, set its variable) are answered at once. So they stay on
  HTTP only for a channel that may be playing a prompt or recording (``AriRest.occupied``): the bridge plays and
  records on callers only, never on an agent's leg;
* a response that would be a file (``recordings/stored/{name}/file``) is ``406 Not Acceptable.  Use HTTP GET``;
* a PBX older than 20.14 reads the frames and ignores them (``res/ari/resource_events.c``: "We don't process any
  input, but we'll consume it waiting for EOF"): nothing comes back. ``auto`` therefore sends a probe
  (``GET asterisk/ping``) and keeps to HTTP until the PBX answers it.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import orjson
import structlog

from bridge.pbx.events import PbxError

log = structlog.get_logger(__name__)

HTTP_ONLY = frozenset({("recordings", "getStoredFile"), ("events", "eventWebsocket")})
"""Operations the socket cannot carry: a file answer, the socket itself."""
CHANNEL_QUEUED = {("channels", "answer"): "channelId", ("channels", "setChannelVar"): "channelId",
                  ("bridges", "addChannel"): "channel"}  # fmt: skip
"""Operations that wait in the command queue of the channel(s) named by that parameter (comma-separated for
``addChannel``): behind a prompt or a recording on it they would hold up the socket's queue."""


PROBE_URI = "asterisk/ping"
TEXT = aiohttp.WSMsgType.TEXT
BYTE_FRAMES = hasattr(aiohttp.ClientWebSocketResponse, "send_frame")
"""``send_frame`` (aiohttp 3.11+) takes orjson's bytes as they are; an older aiohttp gets a str (``send_str``)."""


class SocketRest:
    """REST over one events WebSocket: requests matched to responses by ``request_id``.

    ``ready`` is False until the PBX has answered once (``auto``'s probe) or the setting says ``on``. When the socket
    goes, :meth:`fail_all` fails every pending request with :class:`PbxError` (status 0). A request not answered
    within its timeout fails with ``TimeoutError``: one timer for all of them, set for the earliest deadline (a
    timeout context per request cost a timer handle and two reschedules each).
    """

    def __init__(self, socket: aiohttp.ClientWebSocketResponse, *, ready: bool) -> None:
        self.socket = socket
        self.ready = ready
        self.pending: dict[str, tuple[asyncio.Future[dict[str, Any]], float]] = {}
        """Request id -> its answer to be and its deadline (loop time)."""
        self._ids = itertools.count(1)
        self._probe: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._loop = asyncio.get_running_loop()
        self.closed = ""

    async def probe(self) -> None:
        """Ask ``GET asterisk/ping`` without waiting: its answer (:meth:`take`) makes the socket ready."""
        self._probe = str(next(self._ids))
        await self._send({"type": "RESTRequest", "request_id": self._probe, "method": "GET", "uri": PROBE_URI})

    def take(self, message: dict[str, Any]) -> bool:
        """A decoded RESTResponse (the link's reader decodes every frame once): the answer of a pending request or of
        the probe, or one nobody waits for any more. Always True (taken)."""
        request_id = str(message.get("request_id") or "")
        if request_id and request_id == self._probe:
            self._probe, self.ready = None, True
            log.info("pbx.rest_over_websocket", link="ari", mode="auto")
            return True
        entry = self.pending.pop(request_id, None)
        if entry is not None:
            try:  # noqa: SIM105 (a done() test for every answer, or suppress()'s three calls, cost more)
                entry[0].set_result(message)
            except asyncio.InvalidStateError:  # timed out (or failed) already, its request not yet resumed
                pass
        return True

    async def request(
        self,
        method: str,
        uri: str,
        query: list[dict[str, str]],
        body: dict[str, Any] | None,
        action: str,
        timeout: float,
    ) -> dict[str, Any]:
        """Send one request (``query``: ``{"name", "value"}`` items) and wait up to ``timeout`` seconds for its
        RESTResponse (``TimeoutError`` after that)."""
        request_id, waiter, frame = self.submit(method, uri, query, body, action, timeout)
        try:
            await self._send_frame(frame)
            return await waiter
        except (ConnectionError, RuntimeError) as exc:  # fail_all, or aiohttp: the socket closed under the send
            raise PbxError(0, str(exc) or f"ARI WebSocket closed ({type(exc).__name__})", action=action) from None
        finally:
            self.pending.pop(request_id, None)

    def submit(
        self,
        method: str,
        uri: str,
        query: list[dict[str, str]],
        body: dict[str, Any] | None,
        action: str,
        timeout: float,
    ) -> tuple[str, asyncio.Future[dict[str, Any]], bytes]:
        """:meth:`request` up to the send: the request id, its answer to be (registered in :attr:`pending`), and the
        frame to send."""
        if self.closed:
            raise PbxError(0, self.closed, action=action)
        request_id = str(next(self._ids))
        message: dict[str, Any] = {"type": "RESTRequest", "request_id": request_id, "method": method, "uri": uri}
        if query:
            message["query_strings"] = query
        if body:
            message["content_type"] = "application/json"
            message["message_body"] = orjson.dumps(body).decode()
        loop = self._loop
        waiter: asyncio.Future[dict[str, Any]] = loop.create_future()
        deadline = loop.time() + timeout
        self.pending[request_id] = (waiter, deadline)
        if self._timer is None or deadline < self._timer_at:
            self._watch(loop, deadline)
        return request_id, waiter, orjson.dumps(message)

    def fail_all(self, reason: str) -> None:
        """The socket is gone: every pending request fails with ``PbxError(0, reason)``, and so does every later one."""
        self.closed = reason
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self.pending = self.pending, {}
        for waiter, _ in pending.values():
            if not waiter.done():
                waiter.set_exception(ConnectionResetError(reason))

    def _watch(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(deadline, self._expire, loop), deadline

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """The timer: fail the requests past their deadline, set it again for the earliest of the others."""
        self._timer = None
        now, soonest = loop.time(), None
        for waiter, deadline in self.pending.values():
            if deadline <= now:
                if not waiter.done():
                    waiter.set_exception(TimeoutError())
            elif soonest is None or deadline < soonest:
                soonest = deadline
        if soonest is not None:
            self._watch(loop, soonest)

    async def _send(self, message: dict[str, Any]) -> None:
        await self._send_frame(orjson.dumps(message))

    async def _send_frame(self, frame: bytes) -> None:
        """orjson's bytes as they are with ``send_frame``; as a str on an aiohttp without it."""
        await (self.socket.send_frame(frame, TEXT) if BYTE_FRAMES else self.socket.send_str(frame.decode()))
