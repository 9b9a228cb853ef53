"""Seeded call scripts for the lanes, each with what its call must end as in Bitrix24 (the ledger).

Every time a script depends on is kept a margin (``MARGIN`` of the ring window) away from the event it races with
(an answer well inside the ring window, a caller giving up well before anyone answers), so that the expected
outcome does not depend on scheduling jitter on a loaded machine. The ring window is the suite's time scale: a
longer one gives the daemon more room for slow PBX requests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from bridge.sim.asterisk import Answer, Busy, NeverAnswer, Party, Reject, Unregistered
from tests.chaos.callcentre import Lane, Timings, user_of

MARGIN = 0.3
"""Of the ring window."""
PROMPT_SECONDS = 0.3
"""The simulator's media length: the voicemail intro before recording starts."""
AGENT_PATIENCE = 3.0
"""An agent whose caller was to end the conversation hangs up this long after the script's talk time: nobody
stays on a silent line for ever (one the daemon never bridged, or one a killed daemon left behind)."""
ANSWERED, MISSED = "200", "304"

Kind = Literal["first_talks", "first_talks_caller_ends", "second_talks", "voicemail", "voicemail_max", "gives_up"]
KINDS: tuple[Kind, ...] = (
    "first_talks",
    "first_talks_caller_ends",
    "second_talks",
    "voicemail",
    "voicemail_max",
    "gives_up",
)


@dataclass(frozen=True)
class CallScript:
    seq: int
    lane: Lane
    kind: Kind
    caller: str
    first: Party
    second: Party
    hangup_after: float
    """Seconds after entering the app when the caller hangs up (``safety_hangup`` when the script says never)."""
    hangup_after_answer: float | None
    user_id: int
    """Who the call must be finished for: the talker, else the owner."""
    talk: float
    """Expected talk time in seconds (0 for a missed call)."""
    status: str

    @property
    def parties(self) -> dict[str, Party]:
        return {self.lane.first: self.first, self.lane.second: self.second}


def ring_time(party: Party, window: float) -> float:
    """How long a failing party holds the walk before it moves on."""
    if isinstance(party, NeverAnswer):
        return window
    if isinstance(party, Reject):
        return party.after
    return 0.0


def safety_hangup(timings: Timings) -> float:
    """Every caller hangs up at the latest this long after entering the app. No script lasts this long (two ring
    windows, the voicemail, talk and an agent's patience), so it only ends calls the daemon could not end."""
    return 4 * timings.ring_window + 6.0


class ScriptMaker:
    def __init__(self, seed: int, timings: Timings) -> None:
        self.rng = random.Random(seed)
        self.window = timings.ring_window
        self.margin = MARGIN * self.window
        self.safety = safety_hangup(timings)

    def failing(self) -> Party:
        """A party that will not take the call: never answers, busy, not registered, or rejects."""
        r = self.rng
        choice = r.choice(("never", "busy", "unregistered", "reject"))
        if choice == "never":
            return NeverAnswer()
        if choice == "busy":
            return Busy()
        if choice == "unregistered":
            return Unregistered()
        return Reject(after=round(r.uniform(0.1, self.window - self.margin), 2))

    def answer_after(self) -> float:
        return round(self.rng.uniform(0.05, self.window - self.margin), 2)

    def talk(self) -> float:
        return round(self.rng.uniform(1.0, 3.5), 2)

    def make(self, seq: int, lane: Lane, chosen: Kind | None = None) -> CallScript:
        r = self.rng
        kind: Kind = chosen if chosen is not None else r.choice(KINDS)
        caller = f"7999{seq:07d}"
        owner = user_of(lane.owner)
        talk = self.talk()
        hangup_after_answer: float | None = None
        if kind in ("first_talks", "first_talks_caller_ends"):
            after = self.answer_after()
            by_agent = kind == "first_talks"
            first: Party = Answer(after=after, talk=talk if by_agent else talk + AGENT_PATIENCE)
            hangup_after_answer = None if by_agent else talk
            # everybody: the second rings too, so it must lose the race by a margin (or never take the call)
            second = (
                self.failing() if r.random() < 0.6 else Answer(after=after + self.margin + r.uniform(0, 1), talk=2.0)
            )
            return CallScript(seq, lane, kind, caller, first, second, self.safety, hangup_after_answer,
                              user_of(lane.first), talk, ANSWERED)  # fmt: skip
        if kind == "second_talks":
            first = self.failing()
            by_agent = r.random() < 0.5
            hangup_after_answer = None if by_agent else talk
            second = Answer(after=self.answer_after(), talk=talk if by_agent else talk + AGENT_PATIENCE)
            return CallScript(seq, lane, kind, caller, first, second, self.safety, hangup_after_answer,
                              user_of(lane.second), talk, ANSWERED)  # fmt: skip
        first, second = self.failing(), self.failing()
        rung = [ring_time(first, self.window), ring_time(second, self.window)]
        to_voicemail = max(rung) if lane.everybody else sum(rung)
        if kind == "voicemail":
            hangup = to_voicemail + PROMPT_SECONDS + r.uniform(self.margin, self.margin + 1.0)
        elif kind == "voicemail_max":
            hangup = self.safety  # the daemon ends the message after voicemail_max_seconds
        else:  # gives_up: while the first agent still rings, long before anybody could answer
            first = NeverAnswer()
            second = self.failing() if not lane.everybody else NeverAnswer()
            hangup = r.uniform(0.15, self.window - self.margin)
        return CallScript(seq, lane, kind, caller, first, second, round(hangup, 2), None, owner, 0.0, MISSED)
