"""A lean HTTP/1.1 keep-alive client for the REST POSTs, on httptools' C parser (llhttp).

aiohttp's ClientSession spends about 300 µs of CPU on a small JSON POST (some 230 Python calls); this path spends a
fraction of that: one prebuilt request written in one send, one parser fed straight from ``data_received``, one
future. It does only what the REST calls need: POST to ``http://`` or ``https://`` (TLS with the system's CAs and
the host's name checked), keep-alive with a few idle connections an origin (one request per connection at a time;
one idle past :data:`KEEPALIVE` s, or closed by the server, is dropped before reuse), ``Connection: close``,
``Content-Length``, chunked and close-delimited answers, 307/308 followed with the same POST, and one deadline over
the whole exchange. Other 3xx come back as they are, with their ``Location`` (only a 3xx's is read). Failures
before a whole answer raise :class:`HttpError` (:class:`CannotConnect` when the request provably never left) or
:class:`OSError` (a reset); the deadline raises :class:`TimeoutError`. No header is read as it comes (httptools
would call back for each): the two the client needs are found in the answer's head when needed.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from functools import cache
from typing import NamedTuple, cast

import httptools
from yarl import URL

KEEPALIVE = 15.0
"""Seconds an idle connection is kept (aiohttp's default): fewer chances that the server closes it as we send."""
MAX_IDLE = 4
"""Idle connections kept an origin; the delivery has at most a few requests in flight."""
MAX_REDIRECTS = 10


class HttpError(Exception):
    """The exchange failed before a whole answer came: the request may or may not have reached the server."""


class CannotConnect(HttpError):
    """No connection could be made (refused, no route, name lookup, TLS handshake): the request never left."""


class ServerDisconnected(HttpError):
    def __init__(self) -> None:
        super().__init__("the server closed the connection before a whole answer")


class BadAnswer(HttpError):
    """The server's bytes are not an HTTP/1.1 answer (or a redirect points nowhere usable)."""


class TooManyRedirects(HttpError):
    def __init__(self) -> None:
        super().__init__(f"more than {MAX_REDIRECTS} redirects")


class Answer(NamedTuple):
    status: int
    body: bytes
    location: str | None
    """The ``Location`` header, as sent (a 3xx's new address)."""


@cache
def default_tls() -> ssl.SSLContext:
    """The system's CAs, host names checked (building a context costs milliseconds: one a process)."""
    return ssl.create_default_context()


_HEAD_END = re.compile(rb"\r?\n\r?\n")
"""Where an answer's head ends (llhttp also takes bare LFs)."""


class _Connection(asyncio.Protocol):
    """One connection and its parser; one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Answer] | None = None
        self._chunks: list[bytes] = []
        self._head: list[bytes] = []
        """The bytes received until the answer's headers were complete (some of its body too, maybe): its two
        headers of interest are read from them only when needed (see :meth:`_header`), not through a callback per
        header."""
        self._headers_done = False

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for (an idle connection's 408, say): out of step for good
            self.abort()
            return
        if not self._headers_done:
            self._head.append(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BadAnswer(f"unreadable answer: {exc}"))
            self.abort()

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost ends any exchange

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._headers_done and not self._framed():
            self._finish(keep=False)
        else:
            self._fail(ServerDisconnected())

    # --- httptools callbacks ---

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:  # an interim answer (100 Continue unasked): the real one follows
            self._chunks = []
            self._headers_done = False  # the head bytes stay: _header skips the interim answers' heads
            return
        self._finish(keep=self.parser.should_keep_alive())

    # --- the exchange ---

    def _finish(self, *, keep: bool) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():  # a second answer to one request: the connection is out of step
            self.abort()
            return
        self.reusable = keep
        body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        status = self.parser.get_status_code()
        location = self._header(b"location") if 300 <= status < 400 else None
        waiter.set_result(Answer(status, body, None if location is None else location.decode("latin-1")))

    def _framed(self) -> bool:
        """The answer says where its body ends (a length or chunks); else the body runs to the close."""
        return self._header(b"content-length") is not None or self._header(b"transfer-encoding") is not None

    def _header(self, name: bytes) -> bytes | None:
        """The value of the final answer's header ``name`` (lower case), the last one when it came more than once;
        None when it did not come. Read from the head bytes the parser has accepted (1xx answers skipped)."""
        raw = b"".join(self._head)
        start = 0
        while True:
            end = _HEAD_END.search(raw, start)
            stop = len(raw) if end is None else end.start()
            lines = raw[start:stop].split(b"\n")
            status = lines[0].split(b" ", 2)
            if end is not None and len(status) > 1 and status[1][:1] == b"1":  # an interim answer: the next head
                start = end.end()
                continue
            found = None
            for line in lines[1:]:
                key, colon, value = line.partition(b":")
                if colon and key.strip().lower() == name:
                    found = value.strip(b" \t\r")
            return found

    def _fail(self, exc: HttpError) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    async def exchange(self, request: bytes, loop: asyncio.AbstractEventLoop) -> Answer:
        """Send one whole request, wait for its whole answer."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise ServerDisconnected()
        waiter: asyncio.Future[Answer] = loop.create_future()
        self._waiter = waiter
        self._chunks = []
        self._head = []
        self._headers_done = self.reusable = False
        self.transport.write(request)
        try:
            return await waiter
        finally:
            self._waiter = None

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort()


class _Pool:
    """Connections to one origin."""

    def __init__(self, url: URL, tls: ssl.SSLContext | None) -> None:
        self.host = url.raw_host or ""
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.tls = (tls or default_tls()) if url.scheme == "https" else None
        self.idle: list[_Connection] = []
        self.closed = False

    def take(self, now: float) -> _Connection | None:
        """The most recently used idle connection that is still open and fresh; the others are closed."""
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE:
                return conn
            conn.abort()
        return None

    async def connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        try:
            _, conn = await loop.create_connection(_Connection, self.host, self.port, ssl=self.tls)
        except OSError as exc:  # ssl.SSLError is one too
            raise CannotConnect(f"Cannot connect to host {self.host}:{self.port}: {exc}") from exc
        return conn

    def give_back(self, conn: _Connection, now: float) -> None:
        if self.closed or conn.closed or not conn.reusable or len(self.idle) >= MAX_IDLE:
            conn.abort()
            return
        conn.idle_since = now
        self.idle.append(conn)

    def close(self) -> None:
        self.closed = True
        while self.idle:
            self.idle.pop().abort()


class LeanHttp:
    """POSTs over pooled keep-alive connections; safe for concurrent use by many tasks of one event loop."""

    def __init__(self, headers: dict[str, str], *, tls: ssl.SSLContext | None = None) -> None:
        """``headers`` go with every request; ``tls`` checks the servers of https:// addresses (default: the
        system's CAs)."""
        self._tls = tls
        self._headers = "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")
        self._pools: dict[tuple[str, str, int | None], _Pool] = {}

    async def post(self, url: URL, body: bytes, timeout: float) -> Answer:
        """The answer to POSTing ``body`` to ``url``, 307/308 followed, all within ``timeout`` seconds."""
        loop = asyncio.get_running_loop()  # once: each look-up is a getpid() system call
        async with asyncio.timeout(timeout):
            for _ in range(MAX_REDIRECTS + 1):
                if url.scheme not in ("http", "https") or not url.raw_host:
                    raise BadAnswer("not an http(s) address")
                answer = await self._post_once(url, body, loop)
                if answer.status not in (307, 308) or answer.location is None:
                    return answer
                try:
                    url = url.join(URL(answer.location))
                except ValueError as exc:
                    raise BadAnswer(f"a redirect to an unusable address: {exc}") from None
        raise TooManyRedirects()

    async def _post_once(self, url: URL, body: bytes, loop: asyncio.AbstractEventLoop) -> Answer:
        key = (url.scheme, url.raw_host or "", url.port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(url, self._tls)
        conn = pool.take(loop.time()) or await pool.connect(loop)
        target, host = url.raw_path_qs.encode("ascii"), (url.host_port_subcomponent or "").encode("ascii")
        request = b"POST %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n%s" % (
            target,
            host,
            self._headers,
            len(body),
            body,
        )
        try:
            answer = await conn.exchange(request, loop)
        except BaseException:
            conn.abort()  # failed, timed out or cancelled: what else it may still receive belongs to no one
            raise
        pool.give_back(conn, loop.time())
        return answer

    def idle(self) -> int:
        """Pooled connections waiting for a request and still open (the server may close one at any time)."""
        return sum(not conn.closed for pool in self._pools.values() for conn in pool.idle)

    async def close(self) -> None:
        """Close every idle connection (one in use closes when its exchange ends)."""
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()
        await asyncio.sleep(0)  # let the transports report their close
