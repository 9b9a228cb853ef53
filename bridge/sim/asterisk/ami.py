"""The AMI TCP server: banner, CRLF framing, login, event fan-out, and the fault hooks.

Frames are ``Name: value`` lines ended by an empty line; the server reads ``\\r\\n`` or ``\\n``.
Writes go through one queue per session so that order holds; ``chunk_size`` splits every write
into pieces of that many bytes (with a short pause between them) so that a client's reads can end
inside a multi-byte UTF-8 character. ``silent`` keeps the TCP connection open but drops every
action and event (a half-open connection); ``drop_all`` aborts the sockets. Each session's event
mask, filters and the user's ``read``/``write`` classes work as on Asterisk (:mod:`.ami_access`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog

from bridge.sim.asterisk.ami_access import SYSTEM, Access, get_perm
from bridge.sim.asterisk.model import Headers, ari_time, now

log = structlog.get_logger(__name__)

BANNER = b"Asterisk Call Manager/9.0.0\r\n"


def encode(headers: Headers) -> bytes:
    return "".join(f"{name}: {value}\r\n" for name, value in headers).encode() + b"\r\n"


@dataclass
class AmiRequest:
    """An action as received: ordered headers with case-insensitive lookup."""

    headers: Headers

    def get(self, name: str, default: str = "") -> str:
        values = self.getall(name)
        return values[-1] if values else default

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    @property
    def action(self) -> str:
        return self.get("Action")

    def reply(self, *fields: tuple[str, str]) -> Headers:
        """A response carrying this action's ActionID after the first header, as Asterisk does."""
        first, *rest = fields
        action_id = self.get("ActionID")
        return [first, *([("ActionID", action_id)] if action_id else []), *rest]


ActionHandler = Callable[["AmiSession", AmiRequest], Awaitable[None]]


@dataclass(eq=False)
class AmiSession:
    server: AmiServer
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    number: int
    authenticated: bool = False
    username: str = ""
    access: Access = field(default_factory=Access)
    outbox: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)

    def send(self, headers: Headers) -> None:
        self.send_bytes(encode(headers))

    def send_bytes(self, data: bytes) -> None:
        self.outbox.put_nowait(data)

    def event(self, headers: Headers) -> None:
        """An event as Asterisk queues it: sent when the user's classes, the mask and the filters let it through.

        An event without ``Privilege`` (one a test injects) passes any mask, not the filters."""
        if not self.authenticated or self.server.silent:
            return
        data = encode(headers)
        privilege = next((value for name, value in headers if name == "Privilege"), "")
        if self.access.wants(privilege, data.decode()):
            self.send_bytes(data)

    def close_after_flush(self) -> None:
        self.outbox.put_nowait(None)

    def abort(self) -> None:
        transport = self.writer.transport
        if not transport.is_closing():
            transport.abort()


class AmiServer:
    def __init__(
        self,
        *,
        username: str,
        secret: str,
        handler: ActionHandler,
        read: str = "all",
        write: str = "all",
        eventfilters: Sequence[str] = (),
    ) -> None:
        self.username, self.secret = username, secret
        self.read, self.write = read, write
        """The user's classes, as ``read =`` / ``write =`` in manager.conf."""
        self.eventfilters = list(eventfilters)
        """The user's ``eventfilter =`` lines: every session of the user starts with them."""
        self.handler = handler
        self.sessions: set[AmiSession] = set()
        self.chunk_size: int | None = None
        self.chunk_pause = 0.002
        self.silent = False
        self.dropped: list[str] = []  # actions ignored while silent
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._numbers = itertools.count(1)
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop_all()
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=2)
            for task in pending:
                task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def drop_all(self) -> None:
        for session in list(self.sessions):
            session.abort()

    def broadcast(self, headers: Headers) -> None:
        for session in list(self.sessions):
            session.event(headers)

    def broadcast_bytes(self, data: bytes) -> None:
        for session in list(self.sessions):
            if session.authenticated and not self.silent:
                session.send_bytes(data)

    # --- one connection --------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        session = AmiSession(self, reader, writer, next(self._numbers))
        self.sessions.add(session)
        log.info("sim.ami_connected", session=session.number)
        pump = asyncio.create_task(self._pump(session))
        session.send_bytes(BANNER)
        try:
            await self._read(session)
        except (ConnectionError, ValueError, asyncio.IncompleteReadError) as exc:
            log.info("sim.ami_disconnected", session=session.number, reason=type(exc).__name__)
        finally:
            self.sessions.discard(session)
            session.close_after_flush()
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(pump, 2)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)
            self._tasks.discard(task)

    async def _read(self, session: AmiSession) -> None:
        headers: Headers = []
        while True:
            line = await session.reader.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if text:
                name, sep, value = text.partition(":")
                if sep:
                    headers.append((name.strip(), value.removeprefix(" ")))
                else:
                    log.warning("sim.ami_bad_line", session=session.number, line=text[:80])
                continue
            if not headers:
                continue
            request, headers = AmiRequest(headers), []
            if self.silent:
                log.info("sim.ami_dropped_silent", session=session.number, action=request.action)
                self.dropped.append(request.action)
                continue
            if await self._dispatch(session, request):
                return

    async def _dispatch(self, session: AmiSession, request: AmiRequest) -> bool:
        """Handle one action; True when the session must end."""
        action = request.action.lower()
        if action == "login":
            return self._login(session, request)
        if action == "logoff":
            session.send(request.reply(("Response", "Goodbye"), ("Message", "Thanks for all the fish.")))
            return True
        if not session.authenticated or not session.access.may_run(action):
            session.send(request.reply(("Response", "Error"), ("Message", "Permission denied")))
            return False
        try:
            await self.handler(session, request)
        except Exception:
            log.exception("sim.ami_action_failed", action=request.action)
            session.send(request.reply(("Response", "Error"), ("Message", "Internal simulator error")))
        return False

    def _login(self, session: AmiSession, request: AmiRequest) -> bool:
        username, secret = request.get("Username"), request.get("Secret")
        if username != self.username or secret != self.secret:
            log.warning("sim.ami_login_failed", session=session.number, username=username)
            session.send(request.reply(("Response", "Error"), ("Message", "Authentication failed")))
            return True
        session.authenticated, session.username = True, username
        session.access = Access(read=get_perm(self.read), write=get_perm(self.write))
        session.access.set_mask(request.get("Events"))
        for pattern in self.eventfilters:
            if error := session.access.add_filter(pattern):
                log.warning("sim.ami_bad_eventfilter", pattern=pattern, error=error)
        session.send(request.reply(("Response", "Success"), ("Message", "Authentication accepted")))
        if session.access.mask & session.access.read & SYSTEM:  # part of the answer: no filter applies
            session.send(
                [("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", "23"), ("LastReload", "23"),
                 ("Status", "Fully Booted")]
            )  # fmt: skip
        peer = session.writer.get_extra_info("peername") or ("127.0.0.1", 0)
        local = session.writer.get_extra_info("sockname") or ("127.0.0.1", self.port)
        stamp = ari_time(now())
        session.event(
            [
                ("Event", "SuccessfulAuth"), ("Privilege", "security,all"), ("EventTV", stamp),
                ("Severity", "Informational"), ("Service", "AMI"), ("EventVersion", "1"),
                ("AccountID", username), ("SessionID", f"0x{id(session):x}"),
                ("LocalAddress", f"IPV4/TCP/{local[0]}/{local[1]}"),
                ("RemoteAddress", f"IPV4/TCP/{peer[0]}/{peer[1]}"),
                ("UsingPassword", "0"), ("SessionTV", stamp),
            ]
        )  # fmt: skip
        log.info("sim.ami_logged_in", session=session.number, username=username)
        return False

    async def _pump(self, session: AmiSession) -> None:
        writer = session.writer
        try:
            while True:
                data = await session.outbox.get()
                if data is None:
                    return
                size = self.chunk_size
                if not size or size <= 0:
                    writer.write(data)
                    await writer.drain()
                    continue
                for start in range(0, len(data), size):
                    writer.write(data[start : start + size])
                    await writer.drain()
                    await asyncio.sleep(self.chunk_pause)
        except (ConnectionError, RuntimeError):
            return
