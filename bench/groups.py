"""Agents of their own for every call in progress, as a real call centre under that load would need.

A real agent takes one call at a time: since the device-state model (issue 11) a PJSIP phone in use is busy for
every other call, so calls sharing one queue of four agents mostly end missed. A :class:`GroupWorkload` gives the
portal and the config ``groups`` groups of ``size`` agents: extensions ``5GGGGM`` (group ``GGGG``, member ``M``,
Bitrix24 user ``100000 + 10 x GGGG + M``), a queue ``group-GGGG`` ringing them all at once (``everybody``) and a
line ``749530GGGGG`` routed to it. The directory is refreshed at the production default's pace (the stage's 60 s is
for tests; with hundreds of agents a refresh is a page of ``user.get`` per 50 of them). :class:`FreeGroups` places
each call on the line of a group with no call in progress; a call for which no group is free is not placed, and
counted.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from bench.stack import ANSWER_AFTER, Live, Workload
from bridge.sim.asterisk import Answer
from bridge.sim.asterisk.parties import Party

MAX_GROUPS = 10_000
"""Four digits of group in an extension."""


def group_line(index: int) -> str:
    return f"749530{index:05d}"


def group_agent(index: int, member: int) -> str:
    return f"5{index:04d}{member}"


def seed_with(agents: dict[str, int], last_name: str) -> dict[str, Any]:
    """The simulator's default portal plus one employee per agent (extension -> user id), in department 2."""
    text = resources.files("bridge.sim.bitrix24").joinpath("default_seed.json").read_text(encoding="utf-8")
    seed: dict[str, Any] = json.loads(text)
    for ext, user in agents.items():
        seed["users"].append({"ID": user, "NAME": f"Agent {ext}", "LAST_NAME": last_name, "UF_PHONE_INNER": ext,
                              "UF_DEPARTMENT": [2], "TIMEMAN_STATUS": "OPENED"})  # fmt: skip
    return seed


def groups_for(calls: float) -> int:
    """Groups enough for ``calls`` calls in progress at most, with room for the ones a busy machine prolongs."""
    return min(MAX_GROUPS, int(calls * 3 / 2) + 10)


@dataclass
class GroupWorkload(Workload):
    """``groups`` lines, each with its own ``everybody`` queue of ``size`` agents answering after
    :data:`bench.stack.ANSWER_AFTER` s."""

    groups: int = 1
    size: int = 4

    def agents(self) -> dict[str, int]:
        """Extension -> Bitrix24 user id."""
        return {group_agent(index, member): 100_000 + index * 10 + member
                for index in range(self.groups) for member in range(self.size)}  # fmt: skip

    def tweak(self, data: dict[str, Any]) -> None:
        data["bitrix24"].pop("directory_refresh", None)  # the production default: the stage's is for tests
        for ext, user in self.agents().items():
            data["employees"]["map"][ext] = {"user_id": user}
        for index in range(self.groups):
            name = f"group-{index:04d}"
            members = [group_agent(index, member) for member in range(self.size)]
            data["queues"][name] = {"members": members, "distribution": "everybody", "rings_per_member": 3,
                                    "final": f"voicemail:{members[0]}"}  # fmt: skip
            data["lines"][group_line(index)] = {"name": f"Group {index}", "default_ext": members[0],
                                                "rules": [{"when": "always", "then": f"queue:{name}"}]}  # fmt: skip

    def seed(self) -> dict[str, Any] | None:
        return seed_with(self.agents(), "Group")

    def parties(self) -> dict[str, Party]:
        return {ext: Answer(after=ANSWER_AFTER) for ext in self.agents()}


@dataclass
class FreeGroups:
    """Which groups have no call in progress; a call's group is free again once its channels are gone."""

    line: Callable[[int], str]
    free: deque[int] = field(default_factory=deque)
    busy_skips: int = 0
    peak: int = 0
    """The most groups that had a call at once."""
    size: int = 0

    @classmethod
    def of(cls, count: int, line: Callable[[int], str] = group_line) -> FreeGroups:
        return cls(line, deque(range(count)), size=count)

    async def place(self, live: Live, caller: str, talk: float) -> bool:
        """Place a call on a free group's line; False (and counted) when every group has one."""
        if not self.free:
            self.busy_skips += 1
            return False
        index = self.free.popleft()
        self.peak = max(self.peak, self.size - len(self.free))
        call = await live.pbx.place_inbound_call(self.line(index), caller, hangup_after_answer=talk)
        live.calls.append(call)

        async def release() -> None:
            await call.ended()
            self.free.append(index)

        task = asyncio.create_task(release())
        live.background.add(task)
        task.add_done_callback(live.background.discard)
        return True
