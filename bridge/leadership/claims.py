"""Which bridge carries out a click-to-call, when several share one portal (a PostgreSQL journal).

Bitrix24 posts ``ONEXTERNALCALLSTART`` to every handler bound on the portal, so every bridge gets it. Exactly one
must act: the one whose PBX has the employee's phone. Each bridge weighs the event by what it knows itself:

* ``HOME`` (2): its PBX has the employee's device (``GET /deviceStates/{device}`` is not ``INVALID``, as a real
  Asterisk answers for an endpoint or extension it lacks) and the call's line is one of its lines (or none is
  named): it claims at once;
* ``DEVICE`` (1): its PBX has the device, the line is another's (two offices with the same extension numbers:
  the line says which): it claims after :data:`GRACE`;
* ``LINE`` (0): its PBX lacks the device (or the user has no extension) but the line is its own: after twice
  :data:`GRACE` it claims, only to close Bitrix24's card saying why (nobody else could ring the employee);
* neither: it leaves the event to the other bridges.

A claim is a row keyed by the event's CALL_ID in the shared journal: the first bridge to write it has the call,
whatever the others weigh; the later ones log ``clicktocall.left_to_other_bridge``. While the journal is
unreachable only a ``HOME`` bridge acts (``clicktocall.claim_failed``). A bridge that waits on standby
for its PBX (``[cluster] standby``) never claims: the bridge holding that PBX does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

import structlog

from bridge.journal.marks import JournalError
from bridge.leadership.lease import DB_ERRORS
from bridge.pbx.events import PbxError

log = structlog.get_logger(__name__)

GRACE = 1.0
"""Seconds a weaker claim waits for a stronger one (the employee's phone rings this much later in such a case)."""


class Weight(IntEnum):
    NONE = -1
    LINE = 0
    DEVICE = 1
    HOME = 2


class DeviceStates(Protocol):
    async def request(self, resource: str, operation: str, **params: object) -> Any: ...


class ClaimJournal(Protocol):
    bridge: str

    async def claim(self, event: str) -> tuple[str, str]: ...


@dataclass(frozen=True)
class Verdict:
    act: bool
    """This bridge carries the click-to-call out (rings the employee, or closes the card)."""
    has_device: bool
    """Its PBX has the employee's device."""
    why: str = ""
    """Why not (for the log)."""


class ClickToCallClaims:
    def __init__(
        self,
        journal: ClaimJournal,
        pbx: DeviceStates,
        device: Callable[[str], str],
        lines: Callable[[], set[str]],
        holds_pbx: Callable[[], bool],
        *,
        grace: float = GRACE,
    ) -> None:
        self.journal = journal
        self.pbx = pbx
        self.device = device
        self.lines = lines
        self.holds_pbx = holds_pbx
        self.grace = grace

    async def has_device(self, ext: str | None) -> bool:
        """This PBX has the employee's device. A PBX that does not answer counts as having it (its own bridge
        is the best guess; a dead link fails the call visibly rather than leaving it to nobody)."""
        if not ext:
            return False
        device = self.device(ext)
        try:
            found = await self.pbx.request("deviceStates", "get", deviceName=device)
        except PbxError as exc:
            log.warning("clicktocall.device_unknown", device=device, error=str(exc))
            return True
        return not (isinstance(found, dict) and found.get("state") == "INVALID")

    async def weigh(self, ext: str | None, line: str) -> tuple[Weight, bool]:
        has_device = await self.has_device(ext)
        own_line = not line or line in self.lines()
        if has_device:
            return (Weight.HOME if own_line else Weight.DEVICE), True
        return (Weight.LINE if own_line else Weight.NONE), False

    async def decide(self, call_id: str, ext: str | None, line: str) -> Verdict:
        """Whether this bridge carries out the click-to-call ``call_id`` (see the module's docstring)."""
        if not self.holds_pbx():
            return Verdict(False, False, "this bridge is on standby for its PBX")
        weight, has_device = await self.weigh(ext, line)
        if weight is Weight.NONE:
            return Verdict(False, False, f"extension {ext or '(none)'} and line {line or '(none)'} are not here")
        delay = (Weight.HOME - weight) * self.grace
        if delay:
            await asyncio.sleep(delay)
        try:
            bridge, pbx = await self.journal.claim(call_id)
        except (*DB_ERRORS, JournalError) as exc:
            # the shared journal is away: a bridge with the phone and the line is the best guess, the others stand by
            act = weight is Weight.HOME
            log.warning("clicktocall.claim_failed", crm_call=call_id, error=type(exc).__name__, acting=act)
            return Verdict(act, has_device, "" if act else "the journal is unreachable; left to the phone's bridge")
        if bridge != self.journal.bridge:
            return Verdict(False, has_device, f"taken by bridge {bridge} (pbx {pbx})")
        return Verdict(True, has_device)
