"""The client-side twin of a portal's leaky bucket, shared by every request of the process.

Bitrix24 adds 1 per request to a per-portal counter that drains ``rate`` per second and answers 503
``QUERY_LIMIT_EXCEEDED`` once it passes ``burst``. We keep one :class:`aiolimiter.AsyncLimiter` per portal with the
same drain rate and a slightly smaller size (``burst - SAFETY_MARGIN``), acquired before every HTTP request (a batch
counts once), so that concurrent requests never overflow the portal's bucket. Bridges that share a PostgreSQL
journal also share the portal's budget: behind the local limiter each request takes its slot from a
:class:`SharedPace` (:mod:`bridge.leadership.budget`).
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from typing import Protocol

from aiolimiter import AsyncLimiter

SAFETY_MARGIN = 2
"""Requests of head-room kept below the portal's bucket size (latency jitter, a clock that drifts)."""

_registry: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AsyncLimiter]] = weakref.WeakKeyDictionary()


class SharedPace(Protocol):
    """The portal's budget shared with other bridges (one per portal per process)."""

    async def take(self) -> None:
        """Wait until this process may send one request to the portal."""
        ...

    def overflowed(self) -> None:
        """The portal answered 503 QUERY_LIMIT_EXCEEDED: its bucket is full."""
        ...


def make_limiter(rate: float, burst: int) -> AsyncLimiter:
    """A bucket that drains ``rate``/s like the portal's, ``SAFETY_MARGIN`` smaller."""
    capacity = max(1, burst - SAFETY_MARGIN)
    return AsyncLimiter(capacity, capacity / rate)


def limiter_for(portal: str, rate: float, burst: int) -> AsyncLimiter:
    """The one limiter of ``portal`` in this process (per event loop; the first caller's rate and burst win)."""
    per_loop = _registry.setdefault(asyncio.get_running_loop(), {})
    limiter = per_loop.get(portal.lower())
    if limiter is None:
        limiter = per_loop[portal.lower()] = make_limiter(rate, burst)
    return limiter


def bucket_level(limiter: AsyncLimiter) -> float:
    """Approximate fill of the bucket now (0 = empty)."""
    limiter.has_capacity(0)  # lets the bucket leak up to now
    return float(getattr(limiter, "_level", 0.0))


def fill_bucket(limiter: AsyncLimiter) -> None:
    """Mark the bucket full: the portal just told us its own one overflowed, so fall back into step with it.

    aiolimiter has no public setter for the level; when its internals change this degrades to a no-op and the
    caller's pause alone keeps us in step.
    """
    limiter.has_capacity(0)
    if hasattr(limiter, "_level"):
        limiter._level = float(limiter.max_rate)


@dataclass
class CrmStats:
    """Counters for the metrics endpoint (plain attributes, read at scrape time)."""

    limiter: AsyncLimiter | None = field(default=None, repr=False)
    requests: int = 0
    """HTTP requests sent to the portal (a batch counts once)."""
    commands: int = 0
    """REST methods carried by those requests (a batch counts each of its commands)."""
    query_limit_exceeded: int = 0
    errors: int = 0
    retries: int = 0
    token_refreshes: int = 0

    def bucket_level(self) -> float:
        return bucket_level(self.limiter) if self.limiter is not None else 0.0
