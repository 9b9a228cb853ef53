"""The comparison mode: what most existing bridges do. One REST call per command, no client-side pacing.

It is the same :class:`~bridge.crm.client.Bitrix24Client` with two changes made here, not in the client: a limiter
that never waits, and a :meth:`batch` that sends each command as its own request (``call()``) instead of one
``batch``. Commands of one call still go in order (a later one needs the CALL_ID that ``register`` returned);
different calls go concurrently, as a bridge that fires a request per PBX event does. The client's reaction to a
503 (its pause of a few requests' worth) stays on: that is the client's, not the pacing's.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

from aiolimiter import AsyncLimiter

from bridge.config import Bitrix24Settings
from bridge.crm.client import Bitrix24Client
from bridge.crm.envelope import BatchResult
from bridge.crm.errors import CrmError

_REFERENCE = re.compile(r"^\$result\[([^\[\]]+)\]\[([^\[\]]+)\]$")

Command = tuple[str, Mapping[str, Any]]


class NoPacing(AsyncLimiter):
    """A limiter that never waits (and so never keeps the portal's bucket from overflowing)."""

    def __init__(self) -> None:
        super().__init__(1, 1)

    async def acquire(self, amount: float = 1) -> None:
        return None

    def has_capacity(self, amount: float = 1) -> bool:
        return True


def reference_of(value: Any) -> tuple[str, str] | None:
    """``$result[key][FIELD]`` -> (key, FIELD); anything else -> None."""
    match = _REFERENCE.match(value) if isinstance(value, str) else None
    return (match.group(1), match.group(2)) if match else None


def call_groups(commands: Mapping[str, Command]) -> list[list[str]]:
    """Command keys grouped by the call they are about (in order); each group runs one after the other."""
    groups: dict[str, list[str]] = {}
    for key, (_method, params) in commands.items():
        call_id = params.get("CALL_ID")
        ref = reference_of(call_id)
        if ref is not None:
            group = ref[0]
        elif isinstance(call_id, str) and call_id:
            group = f"call:{call_id}"
        else:
            group = key
        groups.setdefault(group, []).append(key)
    return list(groups.values())


def resolve(params: Mapping[str, Any], results: Mapping[str, Any]) -> dict[str, Any] | None:
    """Fill ``$result[key][FIELD]`` values from earlier results; None when one cannot be filled."""
    filled: dict[str, Any] = {}
    for name, value in params.items():
        ref = reference_of(value)
        if ref is None:
            filled[name] = value
            continue
        earlier = results.get(ref[0])
        if not isinstance(earlier, dict) or ref[1] not in earlier:
            return None
        filled[name] = earlier[ref[1]]
    return filled


class OneCommandPerRequest(Bitrix24Client):
    """``batch()`` answered by one unpaced ``call()`` per command (see the module docstring)."""

    def __init__(self, settings: Bitrix24Settings, **kwargs: Any) -> None:
        super().__init__(settings, limiter=NoPacing(), **kwargs)

    async def batch(self, commands: Mapping[str, Command], *, halt: bool = False) -> BatchResult:
        outcome = BatchResult()
        await asyncio.gather(*(self._run_group(group, commands, outcome) for group in call_groups(commands)))
        return outcome

    async def _run_group(self, keys: list[str], commands: Mapping[str, Command], outcome: BatchResult) -> None:
        for key in keys:
            method, params = commands[key]
            filled = resolve(params, outcome.results)
            if filled is None:  # what it needs did not happen: "not carried out", as in a real batch
                continue
            try:
                outcome.results[key] = await self.call(method, filled)
            except CrmError as exc:
                outcome.errors[key] = exc
