"""Poll a condition instead of sleeping a fixed time (the wazo-test-helpers habit)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "",
) -> T:
    """Call ``check`` until it returns a truthy value without raising ``AssertionError``.

    ``check`` may be sync or async. Returns the last truthy value; on timeout re-raises the last
    assertion (or fails with ``message``).
    """
    deadline = time.monotonic() + timeout
    last_error: AssertionError | None = None
    while True:
        try:
            result = check()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
            if result:
                return result  # type: ignore[return-value]
            last_error = None
        except AssertionError as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            if last_error is not None:
                raise last_error
            raise AssertionError(message or f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
