"""The journal's contract tests run on both backends: this opens either one behind the same synchronous face.

SQLite: :class:`bridge.journal.Journal` itself. PostgreSQL: :class:`PgBlocking`, which runs each call of the
async journal to its end on an event loop of its own (a thread), all in one task, as one caller of the journal
would; a ``with journal.transaction():`` block thus holds the transaction across the calls inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from bridge.journal import AsyncJournal

Clock = Callable[[], float]


class PgBlocking:
    def __init__(self, url: str, clock: Clock, *, bridge: str = "", password: str | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._jobs: asyncio.Queue[tuple[Callable[[], Awaitable[Any]], Future[Any]]] | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._worker = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        self.aio: AsyncJournal = self.run(
            lambda: AsyncJournal.open_postgres(
                url, password=password or os.environ["B24_TEST_PG_PASSWORD"], clock=clock, bridge=bridge
            )
        )

    async def _serve(self) -> None:
        self._jobs = asyncio.Queue()
        while True:
            job, done = await self._jobs.get()
            try:
                done.set_result(await job())
            except BaseException as exc:
                done.set_exception(exc)

    async def _stop_serving(self) -> None:
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def run(self, job: Callable[[], Awaitable[Any]]) -> Any:
        done: Future[Any] = Future()
        while self._jobs is None:  # the worker has not started yet
            threading.Event().wait(0.001)
        self._loop.call_soon_threadsafe(self._jobs.put_nowait, (job, done))
        return done.result(timeout=60)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.aio, name)
        if not callable(attr) or not asyncio.iscoroutinefunction(attr):
            return attr
        return lambda *args, **kwargs: self.run(lambda: attr(*args, **kwargs))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        joined = self.run(self.aio._enter)
        try:
            yield
        except BaseException:
            self.run(lambda: self.aio._leave(joined, ok=False))
            raise
        self.run(lambda: self.aio._leave(joined, ok=True))

    def close(self) -> None:
        try:
            self.run(self.aio.close)
        finally:
            asyncio.run_coroutine_threadsafe(self._stop_serving(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def __enter__(self) -> PgBlocking:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
