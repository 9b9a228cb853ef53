"""The reconnect loop both PBX links share: one session after another, exponential backoff in between.

Asterisk does not queue events for a client that is away, so every session starts with a resync; the loop only
keeps sessions coming. :meth:`ReconnectingLink.stop` cancels the session wherever it is (connecting, logging in,
resyncing or reading), so stopping never waits for a silent peer.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import structlog

from bridge.logs import redact_text
from bridge.pbx.events import PbxError

log = structlog.get_logger(__name__)


class ReconnectingLink:
    """Subclasses implement :meth:`_session` (True once it got connected) and set ``link`` and ``max_delay``."""

    link = "pbx"
    retry_initial = 0.5
    """First pause after a failed or ended session; it doubles up to ``max_delay``."""

    def __init__(self, max_delay: float) -> None:
        self.max_delay = max_delay
        self._up = asyncio.Event()
        self._stopping = asyncio.Event()
        self._current: asyncio.Task[bool] | None = None
        self.changed_at = datetime.now(UTC)
        """When the link last went up or down (for the status page)."""
        self.last_error = ""
        self.error_at: datetime | None = None

    @property
    def connected(self) -> bool:
        """The session is up (for ARI: subscribed and resynchronised)."""
        return self._up.is_set()

    @connected.setter
    def connected(self, value: bool) -> None:
        if value is not self._up.is_set():
            self.changed_at = datetime.now(UTC)
        if value:
            self._up.set()
        else:
            self._up.clear()

    async def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the session to be up; True if it is."""
        if not self._up.is_set() and timeout > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._up.wait()
        return self._up.is_set()

    async def run(self) -> None:
        """Connect, and reconnect with backoff, until :meth:`stop`."""
        delay = self.retry_initial
        while not self._stopping.is_set():
            self._current = asyncio.create_task(self._session())
            try:
                if await self._current:
                    delay = self.retry_initial
            except asyncio.CancelledError:
                if not self._stopping.is_set():
                    raise
            except (OSError, TimeoutError, PbxError) as exc:
                status = exc.status if isinstance(exc, PbxError) else None
                self.last_error, self.error_at = _describe(exc), datetime.now(UTC)
                log.warning("pbx.connect_failed", link=self.link, error=self.last_error, status=status)
            finally:
                self._current = None
            if self._stopping.is_set():
                break
            log.info("pbx.reconnecting", link=self.link, delay=delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            delay = min(delay * 2, self.max_delay)

    async def stop(self) -> None:
        """End the current session and the loop; :meth:`run` returns soon after."""
        self._stopping.set()
        if self._current is not None:
            self._current.cancel()

    def _end(self) -> None:
        """From inside a session: it is the last one (the loop does not reconnect)."""
        self._stopping.set()

    async def _session(self) -> bool:
        raise NotImplementedError


def _describe(exc: BaseException) -> str:
    """An error for the log: its type and message, with any registered secret masked."""
    return redact_text(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:300]
