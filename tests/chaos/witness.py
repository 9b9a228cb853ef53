"""What really happened on the PBX: who talked with each followed caller, from when to when.

Built from the AMI events the simulated Asterisk emits (``BridgeEnter``, ``BridgeLeave``, ``Hangup``), the way a
call recorder beside a real PBX would see them. A conversation is an agent's channel (``Local/<ext>@agents``) in
the same bridge as the caller's channel; it ends when either leaves the bridge or hangs up.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from bridge.sim.asterisk import AsteriskSimulator

AGENT_CHANNEL = re.compile(r"^Local/(?P<ext>[0-9]+)@agents-[0-9a-f]+;1$")


@dataclass
class Conversation:
    ext: str
    agent_channel: str
    started: float
    ended: float | None = None

    @property
    def seconds(self) -> float:
        return 0.0 if self.ended is None else self.ended - self.started


class PbxWitness:
    def __init__(self, pbx: AsteriskSimulator, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._members: dict[str, dict[str, str]] = {}
        """bridge id -> channel uniqueid -> channel name"""
        self._followed: set[str] = set()
        self._talks: dict[str, list[Conversation]] = {}
        pbx.bus.ami_sinks.append(self._on_event)

    def follow(self, channel: str) -> None:
        """Watch the conversations of the caller on ``channel`` (its channel in the Stasis application)."""
        self._followed.add(channel)
        self._talks.setdefault(channel, [])

    def conversations(self, channel: str) -> list[Conversation]:
        return list(self._talks.get(channel, []))

    def _on_event(self, headers: list[tuple[str, str]]) -> None:
        fields = dict(headers)
        event = fields.get("Event")
        uniqueid = fields.get("Uniqueid", "")
        if event == "BridgeEnter":
            bridge = fields.get("BridgeUniqueid", "")
            self._members.setdefault(bridge, {})[uniqueid] = fields.get("Channel", "")
            self._connect(bridge)
        elif event == "BridgeLeave":
            self._members.get(fields.get("BridgeUniqueid", ""), {}).pop(uniqueid, None)
            self._end(uniqueid)
        elif event == "Hangup":
            for members in self._members.values():
                members.pop(uniqueid, None)
            self._end(uniqueid)

    def _connect(self, bridge: str) -> None:
        members = self._members[bridge]
        callers = [uid for uid in members if uid in self._followed]
        agents = [(uid, m["ext"]) for uid, name in members.items() if (m := AGENT_CHANNEL.match(name))]
        now = self._clock()
        for caller in callers:
            talks = self._talks[caller]
            for agent, ext in agents:
                if not any(t.agent_channel == agent and t.ended is None for t in talks):
                    talks.append(Conversation(ext, agent, now))

    def _end(self, uniqueid: str) -> None:
        now = self._clock()
        for caller, talks in self._talks.items():
            for talk in talks:
                if talk.ended is None and uniqueid in (caller, talk.agent_channel):
                    talk.ended = now
