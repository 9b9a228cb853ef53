"""An independent model of what the shell would see, to check the core's invariants step by step.

It knows nothing of the core's internals: it follows the PBX legs from the commands (``RingAgent`` ...) and the
events fed (``LegEnded`` ...), and the Bitrix24 cards from the CRM commands, then compares the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from bridge.domain.commands import (
    CancelLeg,
    Command,
    ConnectLeg,
    CrmAdopt,
    CrmAttachRecord,
    CrmFinish,
    CrmHide,
    CrmRegister,
    CrmShow,
    HangupCaller,
    PlayPrompt,
    RingAgent,
    RingNumber,
    StopPrompt,
)
from bridge.domain.events import CallerHungUp, Event, Intercepted, LegEnded, PromptFinished, Transferred
from bridge.domain.scheme import MAX_EVERYBODY_DEVICES, Plan
from bridge.domain.state import Call, State, WalkKind


@dataclass
class Ledger:
    plan: Plan
    ringing: dict[str, int] = field(default_factory=dict)
    """PBX leg -> user whose phone it rings (0: nobody's)."""
    talking: tuple[str, int] | None = None
    talk_started: dict[str, datetime] = field(default_factory=dict)
    registered: list[str] = field(default_factory=list)
    finished: dict[str, CrmFinish] = field(default_factory=dict)
    finished_at: dict[str, datetime] = field(default_factory=dict)
    shown: dict[str, set[int]] = field(default_factory=dict)
    attached: set[str] = field(default_factory=set)
    leg_users: dict[str, int] = field(default_factory=dict)
    playing: str = ""
    """The prompt the caller hears now."""

    def _user_of_number(self, number: str) -> int:
        return next((e.user_id for e in self.plan.employees.values() if e.mobile and e.mobile == number), 0)

    def _open_leg(self) -> str | None:
        open_legs = [leg for leg in self.registered if leg not in self.finished]
        assert len(open_legs) <= 1, f"two CRM legs open at once: {open_legs}"
        return open_legs[0] if open_legs else None

    def feed(self, before: Call, event: Event, now: datetime, after: Call, commands: list[Command]) -> None:
        if before.state is State.DONE:
            assert commands == [], "a command after the end"
            assert replace(after, ignored="", warning="") == replace(before, ignored="", warning="")
            assert after.ignored and after.deadline is None
            return
        self._event(event, before, after, now)
        for command in commands:
            self._command(command, now)
        open_leg = self._open_leg()
        if "pending" in self.talk_started and open_leg is not None:
            self.talk_started[open_leg] = self.talk_started.pop("pending")
        self._check(after)

    def _event(self, event: Event, before: Call, after: Call, now: datetime) -> None:
        if (isinstance(event, PromptFinished) and event.prompt == self.playing) or isinstance(event, CallerHungUp):
            self.playing = ""
        if isinstance(event, Intercepted):
            emp = self.plan.employees.get(event.ext)
            self.leg_users[event.leg] = emp.user_id if emp else 0
        if isinstance(event, LegEnded):
            self.ringing.pop(event.leg, None)
            if self.talking and self.talking[0] == event.leg:
                self.talking = None
        if isinstance(event, Transferred) and before.state is State.TALKING:
            emp = self.plan.employees.get(event.ext)
            user = emp.user_id if emp else 0
            self.leg_users[event.leg] = user
            self.talking = None
            self.talk_started.pop("pending", None)
            if event.attended:
                self.talking = (event.leg, user)
                crm = after.crm_leg
                if crm is not None:
                    self.talk_started[crm.id] = now
            else:
                self.ringing[event.leg] = user

    def _command(self, command: Command, now: datetime) -> None:
        if isinstance(command, RingAgent):
            self.ringing[command.leg] = self.leg_users[command.leg] = self.plan.employees[command.ext].user_id
        elif isinstance(command, RingNumber):
            self.ringing[command.leg] = self.leg_users[command.leg] = self._user_of_number(command.number)
        elif isinstance(command, CancelLeg):
            self.ringing.pop(command.leg, None)
            if self.talking and self.talking[0] == command.leg:
                self.talking = None
        elif isinstance(command, ConnectLeg):
            self.ringing.pop(command.leg, None)
            self.talking = (command.leg, self.leg_users.get(command.leg, 0))
            self.talk_started["pending"] = now
        elif isinstance(command, PlayPrompt):
            assert not self.playing, f"{command.prompt} plays over {self.playing}"
            self.playing = command.prompt
        elif isinstance(command, StopPrompt):
            assert command.prompt == self.playing, f"stopped {command.prompt}, but {self.playing!r} plays"
            self.playing = ""
        elif isinstance(command, HangupCaller):
            self.playing = ""
        elif isinstance(command, CrmRegister | CrmAdopt):
            assert command.crm_leg not in self.registered, "registered twice"
            self._open_leg()
            self.registered.append(command.crm_leg)
            self.shown[command.crm_leg] = set()
        elif isinstance(command, CrmShow):
            assert command.crm_leg not in self.finished, "show after finish"
            self.shown[command.crm_leg] |= set(command.user_ids)
        elif isinstance(command, CrmHide):
            assert set(command.user_ids) <= self.shown[command.crm_leg], "hid a card that was not shown"
            self.shown[command.crm_leg] -= set(command.user_ids)
        elif isinstance(command, CrmFinish):
            self._finish(command, now)
        elif isinstance(command, CrmAttachRecord):
            assert command.crm_leg in self.finished, "attach before finish"
            assert command.crm_leg not in self.attached, "attached twice"
            self.attached.add(command.crm_leg)

    def _finish(self, command: CrmFinish, now: datetime) -> None:
        assert command.crm_leg in self.registered, "finish of an unregistered leg"
        assert command.crm_leg not in self.finished, f"second finish of {command.crm_leg}"
        assert command.user_id > 0, "a finish without a user (Bitrix24 refuses it for good)"
        assert self.shown[command.crm_leg] <= {command.user_id}, "finish left another user's card open"
        self.shown[command.crm_leg] = set()
        self.finished[command.crm_leg] = command
        self.finished_at[command.crm_leg] = now
        started = self.talk_started.get(command.crm_leg)
        if command.duration == 0:
            assert command.status_code == "304"
        else:
            assert command.status_code == "200"
            assert started is not None, "talk time without a conversation"
            talk = (now - started).total_seconds()
            assert command.duration == max(1, int(talk + 0.5)), "DURATION is not the talk time"

    def _check(self, call: Call) -> None:
        assert len(self.ringing) <= MAX_EVERYBODY_DEVICES, "more than 10 devices ring"
        if call.walk is not None and call.walk.kind is WalkKind.QUEUE:
            assert len(self.ringing) <= 1, "a sequential walk rings two members"
        open_leg = self._open_leg()
        for leg, users in self.shown.items():
            if leg != open_leg:
                assert not users, f"card open on a finished leg {leg}"
        if open_leg is not None:
            expected = {u for u in self.ringing.values() if u > 0}
            if self.talking and self.talking[1] > 0 and call.talk and call.talk.crm_leg == open_leg:
                expected.add(self.talking[1])
            assert self.shown[open_leg] == expected, f"cards {self.shown[open_leg]} but ringing/talking {expected}"
        if call.state in (State.WRAP_UP, State.DONE):
            assert not self.ringing, f"legs still ring after the end: {self.ringing}"
            assert set(self.registered) == set(self.finished), "a registered leg was never finished"
        if call.state is State.DONE:
            assert call.deadline is None
