"""Dialing one destination: a Local pair (the ``;1`` we hold, the ``;2`` robot) or one channel.

Outcomes follow section 3 of ``reference/asterisk.md`` and the recordings:

* answer: ``;2`` Up, ``;1`` Up, ``Dial ANSWER`` (then, for an ARI originate, ``StasisStart``);
* ring until the timeout: ``Dial`` ``""`` -> ``RINGING`` and no final ``Dial``; cause 19 on both;
* busy: ``Dial BUSY``; ``;1`` cause 0 "Unknown", ``;2`` cause 17 (congestion: 0 and 34);
* unavailable: ``Dial CHANUNAVAIL``, cause 20 on both; rejected: ``Dial NOANSWER``, cause 21.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge.sim.asterisk.causes import (
    CALL_REJECTED,
    CONGESTION,
    NO_ANSWER,
    NORMAL_CLEARING,
    SOFT_HANGUP_APPUNLOAD,
    SUBSCRIBER_ABSENT,
    USER_BUSY,
)
from bridge.sim.asterisk.model import Channel
from bridge.sim.asterisk.parties import (
    Answer,
    Busy,
    Congestion,
    NeverAnswer,
    Party,
    Reject,
    Unregistered,
    opening_steps,
    resource_of,
)

if TYPE_CHECKING:
    from bridge.sim.asterisk.pbx import HangupHow, Pbx

RING_STATES = ("RINGING",)


class Leg:
    """One dialed destination. ``party`` None means the ``;2`` is driven by someone else."""

    def __init__(
        self,
        pbx: Pbx,
        *,
        outer: Channel,
        inner: Channel | None,
        dialstring: str,
        party: Party | None,
        caller: Channel | None = None,
        timeout: float | None = None,
        report_timeout: bool = False,
        on_answer: Callable[[], None] | None = None,
        on_fail: Callable[[str], None] | None = None,
    ) -> None:
        self.pbx = pbx
        self.outer, self.inner = outer, inner
        self.dialstring = dialstring
        self.party = party
        self.caller = caller
        self.timeout = timeout
        self.report_timeout = report_timeout
        self.on_answer, self.on_fail = on_answer, on_fail
        self.finished = False
        self.begun = False
        outer.on_answer = self._answered
        outer.hangup_hooks.append(self._outer_gone)
        if inner is not None:
            inner.on_answer = self._inner_answered

    # --- start -----------------------------------------------------------------------------
    def begin(self, variables: dict[str, str] | None = None) -> None:
        """Dialing starts: variables and caller id reach the ``;2``, ``LocalBridge``, ``Dial ""``."""
        if self.begun:
            return
        self.begun = True
        if self.inner is not None:
            for name, value in (variables or {}).items():
                self.pbx.set_var(self.inner, name, value)
            self.pbx.set_caller(self.inner, self.outer.caller)
            self.pbx.set_connected(self.inner, self.outer.connected)
            self.pbx.local_bridge_event(self.outer, self.inner)
        self.dial_event("")
        if self.timeout is not None and self.timeout > 0:
            self.pbx.later(self.outer, self.timeout, self._timed_out)
        if self.party is not None:
            asyncio.get_running_loop().call_soon(self._run_party)

    def dial_event(self, status: str) -> None:
        after: dict[str, Any] = {"dialstatus": status, "forward": "", "dialstring": self.dialstring}
        if self.caller is not None:
            after["caller"] = self.caller.as_json()
        after["peer"] = self.outer.as_json()
        self.pbx.ari("Dial", after=after, channels=(self.caller, self.outer))
        fields = [*(self.caller.ami_fields() if self.caller else []), *self.outer.ami_fields("Dest")]
        if status == "":
            self.pbx.ami("DialBegin", [*fields, ("DialString", self.dialstring)])
        else:
            name = "DialState" if status in RING_STATES else "DialEnd"
            self.pbx.ami(name, [*fields, ("DialStatus", status)])

    # --- the party's script ----------------------------------------------------------------
    def _run_party(self) -> None:
        if self.finished or self.party is None:
            return
        party, robot = self.party, self.inner
        rang = False
        if robot is not None:
            for priority, (app, data) in enumerate(opening_steps(party, resource_of(self.dialstring)), 1):
                self.pbx.dialplan_step(robot, app, data, priority=priority)
                if app == "Ringing":
                    self._ring()
                    rang = True
        elif isinstance(party, NeverAnswer | Reject) or (isinstance(party, Answer) and party.after > 0):
            self._ring()
            rang = True
        if rang:
            self.dial_event("RINGING")
        owner = robot or self.outer
        match party:
            case Answer(after=after, talk=talk):
                self.pbx.later(owner, after, lambda: self._robot_answers(talk))
            case Busy(after=after):
                self.pbx.later(owner, after, lambda: self._refuse("Busy", "BUSY", USER_BUSY))
            case Congestion(after=after):
                self.pbx.later(owner, after, lambda: self._refuse("Congestion", "CONGESTION", CONGESTION))
            case Unregistered():
                self._robot_hangs_up(SUBSCRIBER_ABSENT, "CHANUNAVAIL")
            case Reject(after=after):
                self.pbx.later(owner, after, lambda: self._robot_hangs_up(CALL_REJECTED, "NOANSWER"))
            case NeverAnswer():
                pass

    def _ring(self) -> None:
        self.pbx.set_state(self.outer, "Ringing")

    def _robot_answers(self, talk: float | None) -> None:
        robot = self.inner
        if robot is not None:
            self.pbx.dialplan_step(robot, "Answer", "", priority=robot.priority + 1)
            self.pbx.answer(robot)
        elif self.pbx.devices.answer_leads(self.outer):  # the phone's INUSE is out; its channel events lag
            self.pbx.later(self.outer, self.pbx.devices.lag, lambda: self._phone_answers(talk))
            return
        else:
            self.pbx.answer(self.outer)
        self._talk(talk)

    def _phone_answers(self, talk: float | None) -> None:
        self.pbx.answer(self.outer)
        self._talk(talk)

    def _talk(self, talk: float | None) -> None:
        robot = self.inner
        if talk is None:
            return
        talker = robot or self.outer
        if robot is not None:
            self.pbx.dialplan_step(robot, "Wait", f"{talk:g}", priority=robot.priority + 1)
        how: HangupHow = "dialplan" if robot is not None else "remote"
        self.pbx.later(talker, talk, lambda: self.pbx.hangup(talker, NORMAL_CLEARING, how))

    def _refuse(self, app: str, status: str, robot_cause: int) -> None:
        """Busy() / Congestion() on the ``;2``: ``;1`` ends with cause 0 (as recorded)."""
        self.finished = True
        robot, outer = self.inner, self.outer
        if robot is not None:
            self.pbx.dialplan_step(robot, app, "", priority=robot.priority + 1)
        self.dial_event(status)
        self.pbx.begin_hangup(outer)
        if robot is None:
            self.pbx.detach(outer)
            self.pbx.destroy(outer, robot_cause)
        else:
            self.pbx.begin_hangup(robot)
            self.pbx.hangup_request(robot, 0, soft=False)
            if app == "Busy":
                self.pbx.set_state(robot, "Busy")
            self.pbx.hangup_request(robot, SOFT_HANGUP_APPUNLOAD, soft=True)
            self.pbx.detach(outer)
            self.pbx.destroy(outer, 0)
            self.pbx.destroy(robot, robot_cause)
        self._failed(status)

    def _robot_hangs_up(self, cause: int, status: str) -> None:
        self.finished = True
        robot = self.inner
        if robot is None:
            self.dial_event(status)
            self.pbx.begin_hangup(self.outer)
            self.pbx.detach(self.outer)
            self.pbx.destroy(self.outer, cause)
        else:
            self.pbx.dialplan_step(robot, "Hangup", str(cause), priority=robot.priority + 1)
            self.pbx.hangup(robot, cause, "dialplan", between=lambda: self.dial_event(status))
        self._failed(status)

    # --- answers, timeouts, cancels --------------------------------------------------------
    def _inner_answered(self) -> None:
        self.pbx.answer(self.outer)

    def _answered(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.dial_event("ANSWER")
        if self.on_answer is not None:
            self.on_answer()

    def _timed_out(self) -> None:
        if self.finished:
            return
        self.finished = True
        between = (lambda: self.dial_event("NOANSWER")) if self.report_timeout else None
        self.pbx.hangup(self.outer, NO_ANSWER, "timeout", between=between)
        self._failed("NOANSWER")

    def cancel(self) -> None:
        """The caller gave up (``Dial CANCEL``); the dialed channels go away."""
        if self.finished:
            return
        self.finished = True
        self.pbx.hangup(self.outer, NORMAL_CLEARING, "timeout", between=lambda: self.dial_event("CANCEL"))

    def _outer_gone(self) -> None:
        self.finished = True

    def _failed(self, status: str) -> None:
        if self.on_fail is not None:
            self.on_fail(status)
