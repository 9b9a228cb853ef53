"""What goes through the dispatcher's one queue besides PBX facts, the queue itself, and what it reports."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.domain.events import CrmClient
from bridge.pbx.events import PbxEvent


@dataclass(frozen=True)
class LookupDone:
    call: str
    client: CrmClient | None


@dataclass(frozen=True)
class TimerDue:
    call: str
    observed: bool = False


@dataclass(frozen=True)
class DeviceSettled:
    """``SETTLE_SECONDS`` passed since ``ext``'s device state was unsettled for ``call`` (``presence``)."""

    call: str
    ext: str


@dataclass(frozen=True)
class CallSummary:
    """How a call ended, as the PBX side saw it (the demo and the logs compare it with Bitrix24)."""

    key: str
    kind: str
    line: str
    number: str
    handled_by: str
    status: str
    duration: int
    crm_legs: tuple[str, ...]
    caller_name: str = ""
    ended_at: datetime | None = None


Input = PbxEvent | LookupDone | TimerDue | DeviceSettled


class StampedQueue(asyncio.Queue[Any]):
    """A FIFO that remembers when each item was put, so the consumer can tell how long it waited."""

    def _init(self, maxsize: int) -> None:
        self._stamped: deque[tuple[float, Any]] = deque()
        self.taken_put_at = 0.0
        """When the item the last ``get`` returned was put (``time.perf_counter``)."""

    def qsize(self) -> int:
        return len(self._stamped)

    def empty(self) -> bool:
        return not self._stamped

    def oldest_wait(self) -> float:
        """Seconds the oldest item still queued has waited (0 when the queue is empty)."""
        return time.perf_counter() - self._stamped[0][0] if self._stamped else 0.0

    def get_nowait(self) -> Any:
        """As ``asyncio.Queue.get_nowait`` (which every ``get`` ends with), reading the deque itself instead of
        calling :meth:`empty` and :meth:`_get` (the dispatcher takes every input through it)."""
        if not self._stamped:
            raise asyncio.QueueEmpty
        self.taken_put_at, item = self._stamped.popleft()
        self._wakeup_next(self._putters)  # type: ignore[attr-defined]
        return item

    def _put(self, item: Any) -> None:
        self._stamped.append((time.perf_counter(), item))

    def _get(self) -> Any:
        self.taken_put_at, item = self._stamped.popleft()
        return item
