"""What the call core would do with one call: the core driven by a simulated clock, PBX and CRM. Pure.

``b24-bridge explain`` prints the trail. The simulated world:

* nobody answers unless told: ``answers[ext_or_number]`` = seconds that device rings before it answers,
  counted from the start of each leg (a leg that would need longer gives up at the core's ring timeout);
* a prompt ends as soon as it starts; the caller presses the next key of ``press`` as soon as a menu waits
  for one;
* the CRM answers the lookup at once: the caller is a client of ``responsible`` (an extension), or unknown;
* a conversation lasts ``talk`` seconds, then the agent hangs up; the caller hangs up ``hangup`` seconds after
  the call arrived (if given), wherever the call is then;
* recordings are stored as soon as the call waits for them;
* at equal times the core's own timer comes before the PBX's events (so an answer at exactly the ring
  timeout shows the race rule: the late answer still wins).

The simulation stops when the call is done, after ``MAX_STEPS`` steps, or ``HORIZON_SECONDS`` after the start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bridge.domain.call import start_call, step
from bridge.domain.commands import (
    CancelLeg,
    Command,
    ConnectLeg,
    CrmFinish,
    HangupCaller,
    LookupCrm,
    PlayPrompt,
    RingAgent,
    RingNumber,
    StopPrompt,
)
from bridge.domain.events import (
    CallerHungUp,
    CallStarted,
    CrmClient,
    CrmLookedUp,
    DtmfReceived,
    Event,
    LegAnswered,
    LegEnded,
    LegOutcome,
    PromptFinished,
    RecordingReady,
    TimerFired,
)
from bridge.domain.scheme import Action, Availability, Plan, ToNumber
from bridge.domain.state import Call, State

MAX_STEPS = 400
HORIZON_SECONDS = 4 * 3600.0
DTMF_KEYS = frozenset("0123456789*#")
SKIPPED_AS = {
    Availability.BUSY: "busy",
    Availability.UNREGISTERED: "not registered",
    Availability.ABSENT: "absent today in Bitrix24",
    Availability.NOT_CLOCKED_IN: "not clocked in",
    Availability.OFFLINE: "offline in Bitrix24",
}
"""How a trail names why a walk passes an agent over."""


class ExplainError(ValueError):
    """The question cannot be asked of this plan (unknown line or extension, a bad key)."""


@dataclass(frozen=True)
class TrailStep:
    offset: float
    """Seconds after the call arrived."""
    event: str
    commands: tuple[Command, ...]
    state: str
    ringing: tuple[str, ...]
    """Extensions and numbers ringing after the step."""
    note: str = ""
    """Why the event was ignored, a warning of the core, or which agents a walk that starts here skips and why."""


@dataclass(frozen=True)
class Trail:
    line: str
    line_name: str
    caller: str
    at: datetime
    steps: tuple[TrailStep, ...]
    status: str
    """STATUS_CODE of the last ``finish`` ('' when Bitrix24 would receive none)."""
    handled_by: str
    complete: bool
    """The call ended within the simulation."""
    final_state: str
    ring_seconds: float = 5.0
    """One ring of the plan (ring times are shown in rings too)."""


@dataclass
class _World:
    """The simulated PBX, CRM and caller: what comes back for each command, and when."""

    answers: Mapping[str, float]
    client: CrmClient | None
    press: str
    talk: float
    now: float = 0.0
    agenda: list[tuple[float, int, str, Event]] = field(default_factory=list)
    """(offset, order, tag, event): tag names what the event belongs to (a leg, a prompt, the caller)."""
    who: dict[str, str] = field(default_factory=dict)
    stored: set[str] = field(default_factory=set)
    serial: int = 0

    def at(self, offset: float, tag: str, event: Event) -> None:
        self.serial += 1
        self.agenda.append((offset, self.serial, tag, event))

    def drop(self, tag: str) -> None:
        """Forget what ``tag`` would still do; an answer at this very moment is already on its way (the race)."""
        self.agenda = [
            item for item in self.agenda if item[2] != tag or (item[0] <= self.now and isinstance(item[3], LegAnswered))
        ]

    def next(self, deadline: float | None) -> tuple[float, Event] | None:
        first = min(self.agenda, default=None)
        if deadline is not None and (first is None or deadline <= first[0]):
            return max(deadline, self.now), TimerFired()
        if first is None:
            return None
        self.agenda.remove(first)
        return max(first[0], self.now), first[3]

    def react(self, call: Call, commands: list[Command]) -> None:
        for command in commands:
            if isinstance(command, RingAgent | RingNumber):
                self._ring(
                    command.leg, command.ext if isinstance(command, RingAgent) else command.number, command.timeout
                )
            elif isinstance(command, CancelLeg):
                self.drop(command.leg)
            elif isinstance(command, ConnectLeg):
                self.drop(command.leg)
                self.at(self.now + self.talk, command.leg, LegEnded(command.leg, LegOutcome.HANGUP))
            elif isinstance(command, PlayPrompt):
                self.at(self.now, command.prompt, PromptFinished(command.prompt))
            elif isinstance(command, StopPrompt):
                self.drop(command.prompt)
            elif isinstance(command, HangupCaller):
                self.drop("caller")
            elif isinstance(command, LookupCrm):
                self.at(self.now, "crm", CrmLookedUp(self.client))
        if call.state is State.MENU_WAIT and self.press and not any(item[2] == "dtmf" for item in self.agenda):
            digit, self.press = self.press[0], self.press[1:]
            self.at(self.now, "dtmf", DtmfReceived(digit))
        waiting = {leg.recording for leg in call.crm_legs if leg.recording and not leg.attached}
        for name in sorted(waiting - self.stored if call.state is State.WRAP_UP else set()):
            self.stored.add(name)
            self.at(self.now, "recording", RecordingReady(name))

    def _ring(self, leg: str, device: str, timeout: float) -> None:
        self.who[leg] = device
        wait = self.answers.get(device)
        if wait is not None and wait <= timeout:
            self.at(self.now + wait, leg, LegAnswered(leg))
        else:
            self.at(self.now + timeout, leg, LegEnded(leg, LegOutcome.NO_ANSWER))

    def describe(self, event: Event, caller: str) -> str:
        if isinstance(event, CallStarted):
            return f"{caller} calls"
        if isinstance(event, LegAnswered):
            return f"{self.who.get(event.leg, event.leg)} answers"
        if isinstance(event, LegEnded):
            outcome = "hangs up" if event.outcome is LegOutcome.HANGUP else "does not answer"
            return f"{self.who.get(event.leg, event.leg)} {outcome}"
        if isinstance(event, CrmLookedUp):
            return "the CRM knows the caller" if event.client else "the CRM does not know the caller"
        if isinstance(event, DtmfReceived):
            return f"the caller presses {event.digit}"
        if isinstance(event, PromptFinished):
            return "the prompt ends"
        if isinstance(event, RecordingReady):
            return f"recording {event.name} is stored"
        if isinstance(event, CallerHungUp):
            return "the caller hangs up"
        return "timer"


def explain(
    plan: Plan,
    *,
    line: str,
    caller: str,
    at: datetime,
    agents: Mapping[str, Availability] | None = None,
    answers: Mapping[str, float] | None = None,
    responsible: str | None = None,
    press: str = "",
    talk: float = 60.0,
    hangup: float | None = None,
) -> Trail:
    """Run one call through the core on a simulated clock; raises ``ExplainError`` for a bad question."""
    client = _check(plan, line, agents or {}, answers or {}, responsible, press)
    world = _World(answers or {}, client, press, talk)
    call = start_call(plan, "explain", at)
    world.at(0.0, "start", CallStarted(line, caller, crm_key="explain", availability=dict(agents or {})))
    if hangup is not None:
        world.at(hangup, "caller", CallerHungUp())
    steps: list[TrailStep] = []
    while call.state is not State.DONE and len(steps) < MAX_STEPS:
        deadline = (call.deadline - at).total_seconds() if call.deadline else None
        upcoming = world.next(deadline)
        if upcoming is None or upcoming[0] > HORIZON_SECONDS:
            break
        world.now, event = upcoming
        before = call
        call, commands = step(call, event, at + timedelta(seconds=world.now))
        world.react(call, commands)
        ringing = tuple(leg.ext or leg.number for leg in call.ringing)
        note = "; ".join(n for n in (call.ignored or call.warning, _skips(before, call, agents or {})) if n)
        steps.append(
            TrailStep(world.now, world.describe(event, caller), tuple(commands), call.state.value, ringing, note)
        )
    finishes = [c for s in steps for c in s.commands if isinstance(c, CrmFinish)]
    return Trail(
        line=line,
        line_name=plan.lines[line].name,
        caller=caller,
        at=at,
        steps=tuple(steps),
        status=finishes[-1].status_code if finishes else "",
        handled_by=call.handled_by,
        complete=call.state is State.DONE,
        final_state=call.state.value,
        ring_seconds=plan.ring_seconds,
    )


def _skips(before: Call, after: Call, agents: Mapping[str, Availability]) -> str:
    """A walk starts in this step: the agents it passes over (availability is fixed for the whole trail)."""
    walk = after.walk
    if walk is None or (before.walk is not None and (before.walk.queue, before.walk.order) == (walk.queue, walk.order)):
        return ""
    queue = after.plan.queues.get(walk.queue)
    members = walk.order or (queue.members if queue else ())
    skipped = [
        f"{ext} ({SKIPPED_AS[agents[ext]]})"
        for ext in members
        if agents.get(ext, Availability.AVAILABLE) is not Availability.AVAILABLE
    ]
    return f"skips {', '.join(skipped)}" if skipped else ""


def _check(
    plan: Plan,
    line: str,
    agents: Mapping[str, Availability],
    answers: Mapping[str, float],
    responsible: str | None,
    press: str,
) -> CrmClient | None:
    if line not in plan.lines:
        known = ", ".join(sorted(plan.lines)) or "none"
        raise ExplainError(f"line {line!r} is not configured (lines: {known})")
    for ext in [*agents, *([responsible] if responsible else [])]:
        if ext not in plan.employees:
            raise ExplainError(f"extension {ext!r} is not an employee of the plan")
    numbers = external_numbers(plan)
    for device in answers:
        if device not in plan.employees and device not in numbers:
            raise ExplainError(f"{device!r} is neither an employee's extension nor a number the plan dials")
    bad = sorted(set(press) - DTMF_KEYS)
    if bad:
        raise ExplainError(f"--press takes the keys 0-9 * #, not {''.join(bad)!r}")
    if responsible is None:
        return None
    return CrmClient("CONTACT", 0, responsible_user_id=plan.employees[responsible].user_id)


def external_numbers(plan: Plan) -> set[str]:
    """External numbers the plan may ring: mobiles, busy-rule forwards, number actions."""
    numbers = {emp.mobile for emp in plan.employees.values() if emp.mobile}
    actions: list[Action] = [emp.on_busy for emp in plan.employees.values() if emp.on_busy]
    actions += [rule.then for line in plan.lines.values() for rule in line.rules]
    actions += [line.fallback for line in plan.lines.values()] + [q.final for q in plan.queues.values()]
    actions += [a for menu in plan.menus.values() for _, a in menu.options] + [m.on_fail for m in plan.menus.values()]
    return numbers | {a.number for a in actions if isinstance(a, ToNumber)}
