"""A scripted HTTP/1.1 server on 127.0.0.1 for the lean HTTP client's tests: it reads each request whole and
writes whatever bytes the test's ``answer`` returns, so a test can play any server, well-behaved or not."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Answer = Callable[[int, bytes, bytes], Awaitable[bytes | None]]
"""(request number from 0, head, body) -> the bytes to send; None closes the connection without an answer."""


def ok(body: bytes = b'{"result": true}', *, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body), extra, body
    )  # fmt: skip


@dataclass
class Request:
    connection: int
    head: bytes
    body: bytes

    def header(self, name: str) -> str | None:
        for line in self.head.decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


@dataclass
class HttpPeer:
    answer: Answer
    close_after_answer: bool = False
    tls: ssl.SSLContext | None = None
    connections: int = 0
    ended_by_client: int = 0
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    _handlers: list[asyncio.Task[None]] = field(default_factory=list)

    def url(self, path: str = "/rest/1/c0de/batch.json", host: str = "127.0.0.1") -> str:
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    async def __aenter__(self) -> HttpPeer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self.writers:
            writer.close()
        await asyncio.wait_for(asyncio.gather(*self._handlers, return_exceptions=True), 10)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self.writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.append(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.ended_by_client += 1
                    return
                request = Request(number, head, b"")
                request.body = await reader.readexactly(int(request.header("Content-Length") or 0))
                self.requests.append(request)
                reply = await self.answer(len(self.requests) - 1, head, request.body)
                if reply is None:
                    return
                try:
                    writer.write(reply)
                    await writer.drain()
                except ConnectionError:  # the client gave up on this connection
                    return
                if self.close_after_answer:
                    return
        finally:
            writer.close()
