"""Which bridge carries out a click-to-call (bridge.leadership.claims), on a real PostgreSQL journal and the
Asterisk simulator's device states: claims racing for one CALL_ID leave exactly one winner, a standby never
claims, and a PBX that lacks the employee's device leaves the call to one that has it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from bridge.journal.per_pbx import PbxJournal
from bridge.leadership.claims import ClickToCallClaims, Weight
from bridge.pbx.events import PbxError

CALL_ID = "externalCall.00000000000000000000000000000000.1795306061"


@pytest.fixture
async def journals(pg_url: str) -> AsyncIterator[list[PbxJournal]]:
    opened = []
    for i in range(4):
        journal = await PbxJournal.open_postgres(pg_url, password=os.environ["B24_TEST_PG_PASSWORD"], bridge=f"b{i}")
        assert isinstance(journal, PbxJournal)
        journal.pbx = f"pbx-{i}"
        opened.append(journal)
    yield opened
    for journal in opened:
        await journal.close()


class Pbx:
    """A PBX's answer to ``GET /deviceStates/{device}`` for the devices it has (INVALID for others)."""

    def __init__(self, *devices: str, down: bool = False) -> None:
        self.devices = set(devices)
        self.down = down

    async def request(self, resource: str, operation: str, **params: object) -> object:
        assert (resource, operation) == ("deviceStates", "get")
        if self.down:
            raise PbxError(0, "connection refused", action="deviceStates.get")
        name = str(params["deviceName"])
        return {"name": name, "state": "NOT_INUSE" if name in self.devices else "INVALID"}


def claims(journal: PbxJournal, pbx: Pbx, lines: set[str], *, holds: bool = True) -> ClickToCallClaims:
    return ClickToCallClaims(journal, pbx, "PJSIP/{}".format, lambda: lines, lambda: holds, grace=0.05)


async def test_bridges_racing_for_one_click_to_call_leave_exactly_one_winner(journals: list[PbxJournal]) -> None:
    won = await asyncio.gather(*(j.claim(CALL_ID) for j in journals))
    assert len(set(won)) == 1, "every bridge sees the same winner"
    winner = won[0][0]
    assert winner in {j.bridge for j in journals} and won[0][1] == f"pbx-{winner[1:]}"
    assert await journals[0].claim(CALL_ID) == won[0], "a later claim finds it taken"


async def test_the_bridge_with_the_phone_acts_and_a_standby_or_a_stranger_does_not(
    journals: list[PbxJournal],
) -> None:
    home = claims(journals[0], Pbx("PJSIP/1001"), {"111"})
    only_line = claims(journals[1], Pbx("PJSIP/1002"), {"222"})
    standby = claims(journals[2], Pbx("PJSIP/1001"), {"111"}, holds=False)
    stranger = claims(journals[3], Pbx("PJSIP/1003"), {"333"})
    verdicts = await asyncio.gather(*(c.decide(CALL_ID, "1001", "222") for c in (home, only_line, standby, stranger)))
    assert [v.act for v in verdicts] == [True, False, False, False]
    assert verdicts[0].has_device and "b0" in verdicts[1].why
    assert "standby" in verdicts[2].why and "not here" in verdicts[3].why


async def test_the_weights(journals: list[PbxJournal]) -> None:
    c = claims(journals[0], Pbx("PJSIP/1001"), {"111"})
    assert await c.weigh("1001", "111") == (Weight.HOME, True)
    assert await c.weigh("1001", "") == (Weight.HOME, True), "no line named: the phone decides"
    assert await c.weigh("1001", "999") == (Weight.DEVICE, True)
    assert await c.weigh("1002", "111") == (Weight.LINE, False)
    assert await c.weigh(None, "111") == (Weight.LINE, False)
    assert await c.weigh("1002", "999") == (Weight.NONE, False)
    down = claims(journals[0], Pbx(down=True), {"111"})
    assert await down.weigh("1002", "111") == (Weight.HOME, True), "a PBX that does not answer: its own bridge acts"


class Unreachable:
    """A shared journal whose database has gone away."""

    bridge = "b9"

    async def claim(self, event: str) -> tuple[str, str]:
        raise OSError("connection refused")


async def test_with_the_journal_away_only_the_bridge_with_the_phone_and_the_line_acts() -> None:
    home = ClickToCallClaims(Unreachable(), Pbx("PJSIP/1001"), "PJSIP/{}".format, lambda: {"111"}, lambda: True,
                             grace=0.05)  # fmt: skip
    elsewhere = ClickToCallClaims(Unreachable(), Pbx("PJSIP/1001"), "PJSIP/{}".format, lambda: {"222"}, lambda: True,
                                  grace=0.05)  # fmt: skip
    assert (await home.decide(CALL_ID, "1001", "111")).act
    left = await elsewhere.decide(CALL_ID, "1001", "111")
    assert not left.act and "unreachable" in left.why
