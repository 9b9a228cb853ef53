"""After a restart: the journal's calls that never ended, reconciled with what the PBX has now.

A call whose channel is gone ended while the daemon was down: it is finished with what the journal knows (the
registered user; talk time unknown, so 0 and 304 for a call that never reached a conversation we saw). A call
whose channel is still up is adopted: watched until it ends, then finished with the talk time seen since the
restart (a lower bound) when it was in a bridge with someone, for the one employee whose card was still open
(in a conversation only the talker's is), else as missed. Both are logged as ``call.reconciled``. Cards the
journal last showed are hidden first, so nobody is left with one open. The routing of an adopted call is not
resumed: Asterisk keeps it where it is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from bridge.domain.commands import CrmFinish, CrmHide, CrmShow
from bridge.domain.status import ANSWERED, MISSED
from bridge.journal.rows import CARD_KINDS, CallRow, OpRow

log = structlog.get_logger(__name__)


LiveView = Callable[[], Awaitable[tuple[set[str], set[str]]]]
"""Returns the ids that exist on the PBX now (channel ids and AMI Linkedids) and those in a conversation."""


class Journalish(Protocol):
    def calls(self, status: str | None = None, since: Any = None, crm_leg: str | None = None) -> list[CallRow]: ...

    def operations(self, crm_leg: str | None) -> list[OpRow]: ...

    def append(self, cmd: Any, *, linkedid: str = "", pbx_call: str = "") -> int: ...


class AriView(Protocol):
    async def channels(self) -> list[dict[str, Any]]: ...

    async def request(self, resource: str, operation: str, **params: object) -> Any: ...


class AmiView(Protocol):
    @property
    def connected(self) -> bool: ...

    async def core_show_channels(self) -> list[dict[str, str]]: ...


async def pbx_live_view(ari: AriView, ami: AmiView) -> tuple[set[str], set[str]]:
    """What exists on the PBX now: channel ids and Linkedids, and those in a conversation (a bridge of two+)."""
    live: set[str] = set()
    talking: set[str] = set()
    for channel in await ari.channels():
        live.add(str(channel.get("id")))
    bridges = await ari.request("bridges", "list")
    for bridge in bridges if isinstance(bridges, list) else []:
        members = [str(c) for c in bridge.get("channels", [])] if isinstance(bridge, dict) else []
        if len(members) >= 2:
            talking.update(members)
    if ami.connected:
        for row in await ami.core_show_channels():
            linkedid = row.get("Linkedid", "")
            live.update(x for x in (row.get("Uniqueid", ""), linkedid) if x)
            if row.get("BridgeId") and linkedid:
                talking.add(linkedid)
    return live, talking


@dataclass
class _Adopted:
    row: CallRow
    talking_since: float | None = None


async def recover_open_calls(
    journal: Journalish,
    ready: Callable[[], bool],
    live_view: LiveView,
    known: Callable[[str], bool],
    notify: Callable[[], None],
    *,
    poll: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Finish or adopt every open call of the journal that this process does not know (``known``)."""
    rows = [row for row in journal.calls(status="open") if row.pbx_call and not known(row.pbx_call)]
    if not rows:
        return
    while not ready():  # noqa: ASYNC110 - the PBX links expose a flag, not an event
        await asyncio.sleep(poll / 4)
    adopted = {row.crm_leg: _Adopted(row) for row in rows}
    first = True
    while adopted:
        live, talking = await live_view()
        now = clock()
        for leg, item in list(adopted.items()):
            pbx_call = item.row.pbx_call
            if pbx_call in live:
                if first:
                    log.info("call.reconciled", call_id=pbx_call, crm_leg=leg, found="still up, adopted")
                if pbx_call in talking and item.talking_since is None:
                    item.talking_since = now
                continue
            talked = item.talking_since is not None
            duration = max(1, int(now - item.talking_since + 0.5)) if item.talking_since is not None else 0
            status = ANSWERED if talked else MISSED
            open_cards = cards_left_open(journal.operations(leg))
            user = item.row.user_id or 0
            if status == ANSWERED and len(open_cards) == 1:
                user = open_cards[0]  # in a conversation only the talker's card stays open
            keys = {"linkedid": item.row.linkedid, "pbx_call": pbx_call}
            still_shown = tuple(u for u in open_cards if u != user)
            if still_shown:  # finish closes the owner's card; nobody else may be left with one open
                journal.append(CrmHide(leg, still_shown), **keys)
            journal.append(CrmFinish(leg, user, duration, status), **keys)
            log.info("call.reconciled", call_id=pbx_call, crm_leg=leg, found="ended", status=status, duration=duration)
            del adopted[leg]
            notify()
        first = False
        if adopted:
            await asyncio.sleep(poll)


def cards_left_open(operations: list[OpRow]) -> list[int]:
    """Users whose card for this leg the journal last showed (sent or not), in the order they were shown."""
    shown: dict[int, None] = {}
    for op in operations:
        if op.kind not in CARD_KINDS or not op.readable:
            continue
        command = op.command
        if isinstance(command, CrmShow):
            shown.update(dict.fromkeys(command.user_ids))
        elif isinstance(command, CrmHide):
            for user in command.user_ids:
                shown.pop(user, None)
    return list(shown)
