"""The chaos call centre: independent lanes, each a line with its own queue of two agents and an owner.

A scripted party belongs to an extension, not to a call, so two calls ringing the same agent at once could not
each get their own script. Every lane therefore has agents nobody else rings and carries one call at a time;
lanes run side by side. Even lanes walk their queue ``in_order``, odd lanes ring ``everybody``; a call nobody
answers goes to the owner's voicemail and is the owner's missed call (the line's ``default_ext``, whom the call
is registered for).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.sim.asterisk import AsteriskSimulator
from bridge.sim.bitrix24 import Bitrix24Simulator
from bridge.sim.bitrix24.seed import default_seed_data
from bridge.sim.stage import AMI_SECRET, APP_TOKEN, ARI_PASSWORD

APP = "b24bridge"
RINGS_PER_MEMBER = 2
VOICEMAIL_MAX_SECONDS = 2
REAL_RING_SECONDS = 5.0
"""One ring on a real site; the portal's 2 requests/s are scaled by the same factor as the ring."""
REAL_RATE = 2.0


@dataclass(frozen=True)
class Lane:
    index: int
    line: str
    first: str
    second: str
    owner: str
    everybody: bool

    @property
    def queue(self) -> str:
        return f"lane{self.index}"

    @property
    def agents(self) -> tuple[str, str]:
        return self.first, self.second


def user_of(ext: str) -> int:
    """Lane extensions are Bitrix24 users with the same number (2001 -> user 2001)."""
    return int(ext)


def make_lanes(count: int) -> list[Lane]:
    if not 1 <= count <= 99:
        raise ValueError("between 1 and 99 lanes")
    return [
        Lane(
            index=i,
            line=f"749530{i:05d}",
            first=str(2001 + 10 * i),
            second=str(2002 + 10 * i),
            owner=str(2009 + 10 * i),
            everybody=i % 2 == 1,
        )
        for i in range(count)
    ]


def seed_with(lanes: list[Lane]) -> dict[str, Any]:
    """The simulator's built-in portal plus one user per lane extension."""
    seed = default_seed_data()
    for lane in lanes:
        for ext in (*lane.agents, lane.owner):
            seed["users"].append(
                {"ID": user_of(ext), "NAME": f"Agent {ext}", "UF_PHONE_INNER": ext, "UF_DEPARTMENT": [2],
                 "WORK_POSITION": "Chaos agent", "TIMEMAN_STATUS": "OPENED"}
            )  # fmt: skip
    return seed


@dataclass(frozen=True)
class Timings:
    ring_seconds: float

    @property
    def ring_window(self) -> float:
        """How long one member rings (``in_order``) or the whole group rings (``everybody``)."""
        return self.ring_seconds * RINGS_PER_MEMBER

    @property
    def rate(self) -> float:
        return REAL_RATE * REAL_RING_SECONDS / self.ring_seconds


def chaos_config(
    pbx: AsteriskSimulator, crm: Bitrix24Simulator, workdir: Path, lanes: list[Lane], timings: Timings
) -> dict[str, Any]:
    """Like ``bridge.sim.stage.stage_config``, for the lanes instead of the demo call centre."""
    employees = {ext: {"user_id": user_of(ext)} for lane in lanes for ext in (*lane.agents, lane.owner)}
    queues = {
        lane.queue: {
            "members": list(lane.agents),
            "distribution": "everybody" if lane.everybody else "in_order",
            "rings_per_member": RINGS_PER_MEMBER,
            "final": f"voicemail:{lane.owner}",
            "missed_owner": lane.owner,
        }
        for lane in lanes
    }
    lines = {
        lane.line: {
            "name": f"Lane {lane.index}",
            "default_ext": lane.owner,
            "missed_task": lane.index % 3 == 0,
            "rules": [{"when": "always", "then": f"queue:{lane.queue}"}],
        }
        for lane in lanes
    }
    return {
        "asterisk": {
            "ari_url": pbx.ari_url,
            "ari_user": "b24bridge",
            "ari_password": ARI_PASSWORD,
            "app": APP,
            "ami_host": pbx.ami_host,
            "ami_port": pbx.ami_port,
            "ami_user": "b24bridge",
            "ami_secret": AMI_SECRET,
            "agent_endpoint": "Local/{ext}@agents",
            "trunk_endpoint": "Local/{number}@external",
            "device": "PJSIP/{ext}",
            "outbound_contexts": ["from-agents", "phones"],
            "ping_interval": 1.0,
            "reconnect_max_delay": 1.0,
        },
        "bitrix24": {
            "webhook_url": crm.webhook_url,
            "rate": timings.rate,
            "burst": 50,
            "application_token": APP_TOKEN,
            "events": "push",
            "register_timeout": 1.0,
            "request_timeout": 5.0,
            "directory_refresh": 60.0,
            "availability_ttl": 30.0,
        },
        "journal": {"path": str(workdir / "journal.db")},
        "http": {"listen": "127.0.0.1:0"},
        "routing": {
            "ring_seconds": timings.ring_seconds,
            "crm_lookup_timeout": 1.0,
            "voicemail_max_seconds": VOICEMAIL_MAX_SECONDS,
            "voicemail_prompt": "sound:vm-intro",
        },
        "employees": {"auto_map": True, "time_tracking": False, "map": employees},
        "queues": queues,
        "lines": lines,
    }


def toml_text(data: dict[str, Any]) -> str:
    """Write nested tables of strings, numbers, booleans and lists (of scalars or inline tables) as TOML."""
    out: list[str] = []

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int | float):
            return repr(item)
        if isinstance(item, str):
            return json.dumps(item)  # a JSON string is a TOML basic string
        if isinstance(item, list):
            return "[" + ", ".join(value(x) for x in item) + "]"
        if isinstance(item, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(v)}" for k, v in item.items()) + " }"
        raise TypeError(f"cannot write {type(item).__name__} as TOML")

    def table(path: list[str], body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict)}
        if path:
            out.append(f"[{'.'.join(json.dumps(p) for p in path)}]")
        out.extend(f"{json.dumps(k)} = {value(v)}" for k, v in scalars.items())
        for key, sub in body.items():
            if isinstance(sub, dict):
                table([*path, key], sub)

    table([], data)
    return "\n".join(out) + "\n"
