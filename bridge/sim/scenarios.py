"""A scripted stretch of a small call centre's day (the built-in ``demo.toml``), for ``b24-bridge demo``.

The day is a list of acts played one after the other; the scenarios of one act run together (each uses its own
agents, so their scripted phones never contradict each other) a moment apart. Every scenario places its call(s)
on the simulators, waits until the PBX is done with them, and carries the :class:`~bridge.sim.verdict.Expect`
that Bitrix24 must hold afterwards. One act is a Bitrix24 outage: its calls reach Bitrix24 only after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.domain.scheme import Availability
from bridge.sim.asterisk import Answer, Busy, NeverAnswer, Party, Unregistered
from bridge.sim.stage import Stage
from bridge.sim.verdict import ANSWERED, CALLBACK, INCOMING, MISSED, OUTGOING, Expect

SALES, SUPPORT_IVR, SUPPORT_ALL, NIGHT = "74951112233", "74951112244", "74951112255", "74951112266"
LEADS = "74951112277"
CALL_WAIT = 60.0
"""No scripted call may take longer on the PBX than this (seconds)."""


@dataclass(frozen=True)
class Pace:
    """The day's clock: how long a ring is, how long people talk, how long Bitrix24 is away."""

    ring: float
    talk: float
    outage: float
    stagger: float

    @property
    def voicemail(self) -> float:
        """How long a caller speaks after the voicemail beep."""
        return self.talk


NORMAL = Pace(ring=1.0, talk=3.0, outage=30.0, stagger=0.7)
FAST = Pace(ring=0.15, talk=0.8, outage=3.0, stagger=0.05)

Play = Callable[[Stage, Pace], Awaitable[str]]
"""Places the scenario's call(s) and returns once the PBX is done; returns Bitrix24's own CALL_ID when Bitrix24
registered the call itself (click-to-call), else ''."""


@dataclass(frozen=True)
class Scenario:
    name: str
    story: str
    expect: Callable[[Pace], Expect]
    play: Play


@dataclass(frozen=True)
class Act:
    scenarios: tuple[Scenario, ...]
    outage: bool = False
    """Bitrix24 is away for ``pace.outage`` seconds from the act's start."""
    tidy: Callable[[Stage], Awaitable[None]] | None = None
    """Put back what the act changed on the PBX (device states) before the next one."""


async def _inbound(
    s: Stage, line: str, caller: str, parties: Mapping[str, Party], name: str = "", **script: Any
) -> str:
    for ext, party in parties.items():
        s.pbx.set_party(ext, party)
    call = await s.pbx.place_inbound_call(line, caller, name, **script)
    await asyncio.wait_for(call.ended(), CALL_WAIT)
    return ""


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise TimeoutError("the daemon did not learn the scripted device states in time")
        await asyncio.sleep(0.05)


async def _free_again(s: Stage) -> None:
    s.pbx.set_device_state("PJSIP/1001", "NOT_INUSE")
    s.pbx.set_endpoint_state("PJSIP/1002", "online")
    book = s.daemon.dispatcher.availability
    await _until(lambda: book.of("1001") is book.of("1002") is Availability.AVAILABLE)


def _never(*exts: str) -> dict[str, Party]:
    return {ext: NeverAnswer() for ext in exts}


# --- the scenarios -----------------------------------------------------------------------------------------


async def _answered_at_once(s: Stage, p: Pace) -> str:
    return await _inbound(s, SALES, "79990001001", {"1001": Answer(after=0.5 * p.ring)}, "Мария Соколова",
                          hangup_after_answer=p.talk)  # fmt: skip


async def _after_hours(s: Stage, p: Pace) -> str:
    return await _inbound(s, NIGHT, "79990001002", {}, hangup_after=1.0 + p.voicemail)


async def _desk_phone(s: Stage, p: Pace) -> str:
    s.pbx.set_party("79990001003", Answer(after=p.ring, talk=p.talk))
    call = await s.pbx.place_outbound_call("1004", "79990001003")
    await asyncio.wait_for(call.ended(), CALL_WAIT)
    return ""


async def _click_to_call(s: Stage, p: Pace) -> str:
    s.pbx.set_party("1006", Answer(after=0.5 * p.ring))
    s.pbx.set_party("79990001004", Answer(after=p.ring, talk=p.talk))
    call_id = await s.crm.click_to_call(16, "79990001004", line=SALES)
    await _until(lambda: any(c.number.endswith("79990001004") for c in s.daemon.dispatcher.ended), CALL_WAIT)
    return call_id


async def _walk(s: Stage, p: Pace) -> str:
    parties = {**_never("1001", "1002"), "1003": Answer(after=p.ring)}
    return await _inbound(s, SALES, "79990001005", parties, hangup_after_answer=p.talk)


async def _busy_and_unregistered(s: Stage, p: Pace) -> str:
    s.pbx.set_device_state("PJSIP/1001", "INUSE")
    s.pbx.set_endpoint_state("PJSIP/1002", "offline")
    book = s.daemon.dispatcher.availability
    await _until(lambda: (book.of("1001"), book.of("1002")) == (Availability.BUSY, Availability.UNREGISTERED))
    parties: dict[str, Party] = {"1001": Busy(), "1002": Unregistered(), "1003": Answer(after=0.5 * p.ring)}
    return await _inbound(s, SALES, "79990001006", parties, hangup_after_answer=p.talk)


async def _everybody(s: Stage, p: Pace) -> str:
    parties = {**_never("1001", "1002", "1003"), "1006": Answer(after=p.ring)}
    return await _inbound(s, SUPPORT_ALL, "79990001007", parties, hangup_after_answer=p.talk)


async def _ivr(s: Stage, p: Pace) -> str:
    parties = {**_never("1001"), "1002": Answer(after=0.5 * p.ring)}
    return await _inbound(s, SUPPORT_IVR, "79990001008", parties, dtmf=[(p.ring, "1")], hangup_after_answer=p.talk)


async def _responsible(s: Stage, p: Pace) -> str:
    parties = {**_never("1002"), "1005": Answer(after=0.5 * p.ring)}
    return await _inbound(s, SALES, "79161234567", parties, "Иван Петров", hangup_after_answer=p.talk)


async def _missed_to_voicemail(s: Stage, p: Pace) -> str:
    # 1001..1003 ring two rings each (1004 is away today), then the voicemail greeting, then the message
    walk = 3 * 2 * p.ring
    return await _inbound(s, SALES, "79990001010", _never("1001", "1002", "1003", "1004"),
                          hangup_after=walk + 1.0 + p.voicemail)  # fmt: skip


async def _new_lead(s: Stage, p: Pace) -> str:
    return await _inbound(s, LEADS, "79990001014", _never("1006"), hangup_after=2 * p.ring)


async def _callback(s: Stage, p: Pace) -> str:
    s.pbx.set_party("79990001011", Answer(after=p.ring))
    s.pbx.set_party("1001", Answer(after=0.5 * p.ring, talk=p.talk))
    await s.crm.callback_request("79990001011", "Please call me back about my order", line=SALES)
    await _until(lambda: any(c.number.endswith("79990001011") for c in s.daemon.dispatcher.ended), CALL_WAIT)
    return ""


async def _outage_answered(s: Stage, p: Pace) -> str:
    return await _inbound(s, SALES, "79990001012", {"1001": Answer(after=0.5 * p.ring)}, hangup_after_answer=p.talk)


async def _outage_voicemail(s: Stage, p: Pace) -> str:
    return await _inbound(s, NIGHT, "79990001013", {}, hangup_after=1.0 + p.voicemail)


def _users(*ids: int) -> frozenset[int]:
    return frozenset(ids)


ANSWERED_AT_ONCE = Scenario(
    "answered at once", "Sales: the first agent (1001) picks up",
    lambda p: Expect("79990001001", INCOMING, 11, ANSWERED, p.talk, True, _users(11)), _answered_at_once,
)  # fmt: skip
AFTER_HOURS = Scenario(
    "after hours", "Night line, office closed: voicemail for 1005, then a task linking it",
    lambda p: Expect("79990001002", INCOMING, 15, MISSED, 0, True, task_for=15), _after_hours,
)  # fmt: skip
DESK_PHONE = Scenario(
    "desk phone", "1004 dials a client from the desk phone (seen on AMI only)",
    lambda p: Expect("79990001003", OUTGOING, 14, ANSWERED, p.talk, True, _users(14)), _desk_phone,
)  # fmt: skip
CLICK_TO_CALL = Scenario(
    "click-to-call", "User 16 clicks a number in the CRM: 1006 rings first, then the client",
    lambda p: Expect("79990001004", OUTGOING, 16, ANSWERED, p.talk, True, _users(16)), _click_to_call,
)  # fmt: skip
WALK = Scenario(
    "walk", "Sales: 1001 and 1002 do not answer, 1003 does",
    lambda p: Expect("79990001005", INCOMING, 13, ANSWERED, p.talk, True, _users(11, 12, 13)), _walk,
)  # fmt: skip
BUSY_UNREGISTERED = Scenario(
    "busy + unregistered", "Sales: 1001 on another call, 1002's phone offline; 1003 answers",
    lambda p: Expect("79990001006", INCOMING, 13, ANSWERED, p.talk, True, _users(13)), _busy_and_unregistered,
)  # fmt: skip
EVERYBODY = Scenario(
    "everybody", "Support group rings together; 1006 answers, the others' cards close",
    lambda p: Expect("79990001007", INCOMING, 16, ANSWERED, p.talk, True, _users(11, 12, 13, 16)), _everybody,
)  # fmt: skip
IVR = Scenario(
    "IVR", "Support menu: the caller presses 1 (sales); 1001 silent, 1002 answers",
    lambda p: Expect("79990001008", INCOMING, 12, ANSWERED, p.talk, True, _users(11, 12)), _ivr,
)  # fmt: skip
RESPONSIBLE = Scenario(
    "responsible -> supervisor", "Known client of 1002: 1002 rings the rule's 2 rings unanswered, 1005 answers",
    lambda p: Expect("79161234567", INCOMING, 15, ANSWERED, p.talk, True, _users(12, 15)), _responsible,
)  # fmt: skip
MISSED_VOICEMAIL = Scenario(
    "missed -> voicemail", "Sales: nobody answers (1004 away today); voicemail, then a task for 1005 linking it",
    lambda p: Expect("79990001010", INCOMING, 15, MISSED, 0, True, _users(11, 12, 13), task_for=15),
    _missed_to_voicemail,
)  # fmt: skip
NEW_LEAD = Scenario(
    "new lead", "Leads line, unknown caller, 1006 does not answer: the lead and the task go to 1001 (round robin)",
    lambda p: Expect("79990001014", INCOMING, 15, MISSED, 0, False, _users(16), task_for=11), _new_lead,
)  # fmt: skip
CALLBACK_REQUEST = Scenario(
    "callback", "A web-form callback: the client is dialled, then the sales queue (1001)",
    lambda p: Expect("79990001011", CALLBACK, 11, ANSWERED, p.talk, True, _users(11)), _callback,
)  # fmt: skip
OUTAGE_ANSWERED = Scenario(
    "outage: answered", "Bitrix24 away: 1001 answers; mirrored after it (SHOW=0, real start)",
    lambda p: Expect("79990001012", INCOMING, 11, ANSWERED, p.talk, True, offline=True), _outage_answered,
)  # fmt: skip
OUTAGE_VOICEMAIL = Scenario(
    "outage: voicemail", "Bitrix24 away: after-hours voicemail; record and task sent after it",
    lambda p: Expect("79990001013", INCOMING, 15, MISSED, 0, True, task_for=15, offline=True), _outage_voicemail,
)  # fmt: skip

DAY = (
    Act((ANSWERED_AT_ONCE, AFTER_HOURS, DESK_PHONE, CLICK_TO_CALL)),
    Act((WALK,)),
    Act((BUSY_UNREGISTERED,), tidy=_free_again),
    Act((EVERYBODY,)),
    Act((IVR,)),
    Act((RESPONSIBLE,)),
    Act((MISSED_VOICEMAIL,)),
    Act((NEW_LEAD,)),
    Act((CALLBACK_REQUEST,)),
    Act((OUTAGE_ANSWERED, OUTAGE_VOICEMAIL), outage=True),
)
