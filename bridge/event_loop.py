"""The daemon's event loop: uvloop when it is installed (a dependency on Linux and macOS: about 5 % less CPU per
call on the walk workload, see bench/history.md), else asyncio's own."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on uvloop's loop when uvloop can be imported."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop has no Windows build; asyncio's loop serves there
        return asyncio.run(main)
    return uvloop.run(main)


def name() -> str:
    """The running loop's kind, for the daemon's start line: ``uvloop`` or ``asyncio``."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
