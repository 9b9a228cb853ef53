"""The data of one inbound call in the Stasis application, and the table of legal state moves.

Everything here is a frozen dataclass; the deciding modules (``call``, ``routing``, ``walk``, ``ivr``, ``talk``,
``ending``) return changed copies made with ``dataclasses.replace``. The dicts a ``Call`` holds (availability,
calls answered today) are never mutated after construction; a change makes a new dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from bridge.domain.commands import CallType, Command
from bridge.domain.events import CrmClient
from bridge.domain.records import replace
from bridge.domain.scheme import Availability, Plan
from bridge.domain.status import talk_seconds


class State(Enum):
    NEW = "new"
    """Created by ``start_call``; waits for ``CallStarted``."""
    GREETING = "greeting"
    """Answered; the line's greeting plays before the CRM lookup and routing."""
    LOOKUP = "lookup"
    """Answered, music on, waiting (bounded) for the CRM to say who the caller is."""
    RINGING = "ringing"
    """At least one leg (agent, mobile, number) is ringing for the caller."""
    HOLDING = "holding"
    """Hold until free: music, nobody rings, waiting for a queue member to become available."""
    MENU_PROMPT = "menu_prompt"
    MENU_WAIT = "menu_wait"
    VOICEMAIL_PROMPT = "voicemail_prompt"
    VOICEMAIL_RECORDING = "voicemail_recording"
    TALKING = "talking"
    WRAP_UP = "wrap_up"
    """The caller is gone and every CRM leg is finished; waiting (bounded) for recordings to attach."""
    DONE = "done"
    """Terminal: every further event is ignored."""


PRE_TALK = frozenset(
    {
        State.GREETING,
        State.LOOKUP,
        State.RINGING,
        State.HOLDING,
        State.MENU_PROMPT,
        State.MENU_WAIT,
        State.VOICEMAIL_PROMPT,
    }
)
"""The caller waits and nobody has answered yet."""
LIVE = PRE_TALK | {State.VOICEMAIL_RECORDING, State.TALKING}
"""The caller is on the line."""

_ROUTED = frozenset({State.RINGING, State.HOLDING, State.MENU_PROMPT, State.VOICEMAIL_PROMPT})
"""Where running an action can take the call (besides the end)."""
_END = frozenset({State.WRAP_UP, State.DONE})

MOVES: dict[State, frozenset[State]] = {
    State.NEW: _ROUTED | _END | {State.LOOKUP, State.GREETING},
    State.GREETING: _ROUTED | _END | {State.LOOKUP},
    State.LOOKUP: _ROUTED | _END,
    State.RINGING: _ROUTED | _END | {State.TALKING},
    State.HOLDING: _ROUTED | _END | {State.TALKING},
    State.MENU_PROMPT: _ROUTED | _END | {State.MENU_WAIT, State.TALKING},
    State.MENU_WAIT: _ROUTED | _END | {State.TALKING},
    State.VOICEMAIL_PROMPT: _END | {State.VOICEMAIL_RECORDING, State.TALKING},
    State.VOICEMAIL_RECORDING: _END,
    State.TALKING: _END | {State.RINGING},
    State.WRAP_UP: frozenset({State.DONE}),
    State.DONE: frozenset(),
}
"""Legal moves of the call core itself; anything else is a bug in the core and raises ``IllegalMove``."""


class IllegalMove(RuntimeError):
    """The core tried a state move its own rules forbid (a bug, never bad input)."""


@dataclass(frozen=True)
class Leg:
    """An outgoing channel ringing (or talking) for the caller."""

    id: str
    started_at: datetime
    ext: str = ""
    user_id: int = 0
    """Bitrix24 user whose card follows this leg (0: an external number, no card)."""
    number: str = ""


@dataclass(frozen=True)
class CrmLeg:
    """One Bitrix24 call (one ``register`` ... ``finish``), named by its unique EXTERNAL_CALL_ID ``id``."""

    id: str
    user_id: int
    shown: tuple[int, ...] = ()
    """Users whose card is open now."""
    finished: bool = False
    recording: str = ""
    recording_ready: bool = False
    attached: bool = False


@dataclass(frozen=True)
class Talk:
    """One conversation: the caller with ``leg`` (employee ``ext`` / ``user_id``) on CRM leg ``crm_leg``."""

    crm_leg: str
    leg: str
    ext: str
    user_id: int
    answered_at: datetime
    ended_at: datetime | None = None
    walk: Walk | None = field(default=None, compare=False)
    """The walk the answer interrupted: it goes on if the leg never joins the caller (not part of what the
    conversation is, so not compared)."""

    @property
    def seconds(self) -> int:
        """Talk time in whole seconds (0 while the conversation goes on)."""
        return 0 if self.ended_at is None else talk_seconds(self.answered_at, self.ended_at)


class WalkKind(Enum):
    QUEUE = "queue"
    """``in_order`` / ``evenly``: one member at a time."""
    EVERYBODY = "everybody"
    TARGETS = "targets"
    """Employees rung directly (employee, responsible, supervisor), with their own rules."""
    NUMBER = "number"
    HOLD = "hold"
    TRANSFER = "transfer"
    """A blind transfer's new leg."""


class Stage(Enum):
    """Where a ``TARGETS`` walk is with the current employee."""

    DEVICE = "device"
    MOBILE = "mobile"
    FORWARD = "forward"
    """The employee's busy rule sent the call to a number."""


@dataclass(frozen=True)
class Walk:
    kind: WalkKind
    queue: str = ""
    order: tuple[str, ...] = ()
    """QUEUE: the members in walk order (one pass); TARGETS: the employees to try."""
    position: int = -1
    """QUEUE: index into ``order`` repeated ``passes`` times; TARGETS: index into ``order``."""
    stage: Stage = Stage.DEVICE
    ring_seconds: float = 0.0
    """How long one member / target / offer rings; for EVERYBODY the whole group (0 = endlessly)."""
    offered: frozenset[str] = frozenset()
    """HOLD: members offered the call since they last became available."""
    hold_until: datetime | None = None


@dataclass(frozen=True)
class MenuVisit:
    menu: str
    replays: int = 0
    invalid: bool = False
    """The prompt playing is the menu's invalid-key prompt (the menu prompt follows it)."""


@dataclass(frozen=True)
class Call:
    plan: Plan = field(repr=False)
    call_id: str
    started_at: datetime
    state: State = State.NEW
    line: str = ""
    caller: str = ""
    crm_key: str = ""
    linkedid: str = ""
    call_type: CallType = CallType.INCOMING
    availability: Mapping[str, Availability] = field(default_factory=dict)
    answered_today: Mapping[str, int] = field(default_factory=dict)
    open_leads: Mapping[str, int] = field(default_factory=dict)
    open_deals: Mapping[str, int] = field(default_factory=dict)
    last_assigned: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    client: CrmClient | None = None
    rule_index: int = 0
    """The next rule of the line's chain to try when the current action cannot run (past the end: fallback)."""
    hops: int = 0
    walk: Walk | None = None
    ringing: tuple[Leg, ...] = ()
    released: tuple[Leg, ...] = ()
    """Legs the core cancelled whose end the PBX has not confirmed yet."""
    grace: tuple[str, ...] = ()
    """Legs released by the core's own ring timeout in the previous step: their late answer still wins."""
    talk: Talk | None = None
    talks: tuple[Talk, ...] = ()
    """Finished conversations."""
    crm_legs: tuple[CrmLeg, ...] = ()
    menu: MenuVisit | None = None
    prompt: str = ""
    """Id of the prompt playing now."""
    music: bool = False
    voicemail_user: int = 0
    held: tuple[Command, ...] = ()
    """A voicemail's task, held until its recording is attached (it links the recording) or given up on."""
    last_queue: str = ""
    timer: datetime | None = None
    serial: int = 0
    ended_at: datetime | None = None
    ignored: str = ""
    """Why the last event changed nothing (the shell logs it); empty when it was handled."""
    warning: str = ""
    """A problem the last step met and worked around (unknown line, routing loop, no CRM owner)."""

    @property
    def deadline(self) -> datetime | None:
        """When the shell must feed ``TimerFired``; None when no timer is due."""
        timer, walk = self.timer, self.walk
        hold_until = walk.hold_until if walk else None
        if hold_until is None:
            return timer
        return hold_until if timer is None or hold_until < timer else timer

    @property
    def crm_leg(self) -> CrmLeg | None:
        """The CRM leg open now (registered, not finished)."""
        if self.crm_legs and not self.crm_legs[-1].finished:
            return self.crm_legs[-1]
        return None

    @property
    def handled_by(self) -> str:
        """Extension of the employee who talked longest over all finished conversations ('' if nobody)."""
        totals: dict[str, int] = {}
        for talk in self.talks:
            if talk.ext:
                totals[talk.ext] = totals.get(talk.ext, 0) + talk.seconds
        return max(totals, key=lambda ext: totals[ext], default="")


Step = tuple[Call, list[Command]]


def move(call: Call, state: State, **changes: Any) -> Call:
    """``call`` in ``state`` with ``changes`` (one new record, not two); raises ``IllegalMove`` if the table does not
    allow it."""
    if state is call.state:
        return replace(call, **changes) if changes else call
    if state not in MOVES[call.state]:
        raise IllegalMove(f"{call.state.value} -> {state.value}")
    return replace(call, state=state, **changes)


def next_id(call: Call, kind: str) -> tuple[Call, str]:
    """A new id unique within the call, e.g. ``<call_id>-leg3``."""
    serial, new = new_id(call, kind)
    return replace(call, serial=serial), new


def new_id(call: Call, kind: str) -> tuple[int, str]:
    """:func:`next_id` for a caller that makes a new call record anyway: the serial to keep in it, and the id."""
    serial = call.serial + 1
    return serial, f"{call.call_id}-{kind}{serial}"


def is_available(call: Call, ext: str) -> bool:
    """A known employee whose device and day allow a call now (extensions not reported count as free)."""
    emp = call.plan.employees.get(ext)
    return (
        emp is not None
        and not emp.dismissed
        and call.availability.get(ext, Availability.AVAILABLE) is Availability.AVAILABLE
    )
