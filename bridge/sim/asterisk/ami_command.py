"""The CLI commands the AMI ``Command`` action answers (a small, honest subset)."""

from __future__ import annotations

import time
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.sim.asterisk.simulator import AsteriskSimulator

VERSION = "Asterisk 20.20.1 built by b24-bridge-sim @ localhost on a x86_64 running Linux"


def run_command(sim: AsteriskSimulator, command: str) -> tuple[bool, list[str]]:
    """Output lines for ``command``; False (and Asterisk's message) for commands it does not know."""
    words = command.split()
    normalized = " ".join(words).lower()
    if normalized == "core show version":
        return True, [VERSION]
    if normalized in ("core show channels", "core show channels verbose"):
        return True, _channels(sim)
    if normalized == "core show uptime":
        seconds = int(time.time() - sim.started_at)
        return True, [f"System uptime: {seconds} seconds", f"Last reload: {seconds} seconds"]
    if normalized == "pjsip show contacts":
        return True, _contacts(sim)
    return False, [f"No such command '{command}' (type 'core show help {command}' for other possible commands)"]


def _channels(sim: AsteriskSimulator) -> list[str]:
    channels = list(sim.pbx.channels.values())
    lines = [f"{'Channel':<40} {'Location':<30} {'State':<7} Application(Data)"]
    for channel in channels:
        location = f"{channel.exten}@{channel.context}:{channel.priority}"
        application = f"{channel.app_name}({channel.app_data})"
        lines.append(f"{channel.name:<40} {location:<30} {channel.state:<7} {application}")
    calls = len({c.linkedid for c in channels})
    lines.append(f"{len(channels)} active channel{'s' if len(channels) != 1 else ''}")
    lines.append(f"{calls} active call{'s' if calls != 1 else ''}")
    return lines


def _contacts(sim: AsteriskSimulator) -> list[str]:
    lines = [
        "  Contact:  <Aor/ContactUri..............................> <Hash....> <Status> <RTT(ms)..>",
        "=" * 90,
        "",
    ]
    found = 0
    for endpoint, state in sorted(sim.pbx.devices.endpoints.items()):
        tech, _, resource = endpoint.partition("/")
        if tech.upper() != "PJSIP" or state != "online":
            continue
        found += 1
        uri = f"{resource}/sip:{resource}@127.0.0.1:5060"
        lines.append(f"  Contact:  {uri:<46} {zlib.crc32(uri.encode()):010d} Avail         0.000")
    lines.append(f"Objects found: {found}")
    return lines
