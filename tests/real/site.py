"""One test's installation: the daemon configured against the kit's real PBX and a fresh Bitrix24 simulator.

The daemon's ``[asterisk]`` section is the one ``asterisk-conf/README.md`` gives a new user (the sample ARI and
AMI users, ``PJSIP/{ext}`` agents, the sample trunk, ``from-agents`` watched); only the ports and secrets are this
session's. The test drives the PBX as the outside world would: the phone farm's robots answer, ring or refuse
(``PHONE_10NN`` globals on the farm's AMI), inbound calls come through ``from-trunk`` (an AMI Originate of
``Local/<DID>@from-trunk`` whose other end is the kit's caller robot), and the provider behind the trunk answers
outbound calls (``EXT_<number>`` globals on the farm).
"""

from __future__ import annotations

import asyncio
import json
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bridge.config import parse_settings
from bridge.daemon import Daemon
from bridge.sim.bitrix24 import Bitrix24Simulator
from bridge.sim.stage import APP_TOKEN, STAGE_TIMING, free_port, launch_daemon, set_up_portal
from bridge.sim.verdict import CrmCall, Expect, calls_of, crm_call, verdict
from tests.eventually import eventually
from tests.real.ami import Ami
from tests.real.kit import Kit
from tests.real.samples import Credentials

REGISTERED = [f"10{n:02d}" for n in range(1, 9)]
UNREGISTERED_USER = {"ID": 19, "NAME": "Nikita", "LAST_NAME": "Offline", "UF_PHONE_INNER": "1009",
                     "UF_DEPARTMENT": [2], "WORK_POSITION": "Sales manager", "TIMEMAN_STATUS": "OPENED"}  # fmt: skip


@dataclass(frozen=True)
class RealPbx:
    """The session's kit, set up with the samples, and the secrets the samples were given."""

    kit: Kit
    secrets: Credentials
    boot_log: str
    """The PBX's ``messages.log`` from its start on the samples."""


def seed() -> dict[str, Any]:
    """The simulator's built-in portal plus an employee whose desk phone (1009) never registers."""
    text = resources.files("bridge.sim.bitrix24").joinpath("default_seed.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    data["users"].append(UNREGISTERED_USER)
    return data


def site_config(pbx: RealPbx, crm: Bitrix24Simulator, workdir: Path) -> dict[str, Any]:
    data = tomllib.loads((Path(__file__).parent / "routing.toml").read_text())
    ports = pbx.kit.ports
    data["asterisk"] = {
        "ari_url": f"http://127.0.0.1:{ports.pbx_http}",
        "ari_user": "b24bridge",
        "ari_password": pbx.secrets.ari_password,
        "app": "b24bridge",
        "ami_host": "127.0.0.1",
        "ami_port": ports.pbx_ami,
        "ami_user": "b24bridge",
        "ami_secret": pbx.secrets.ami_secret,
        "agent_endpoint": "PJSIP/{ext}",
        "trunk_endpoint": "PJSIP/{number}@trunk",
        "device": "PJSIP/{ext}",
        "outbound_contexts": ["from-agents"],
        "monitor_lines": ["74951112299"],
        "ping_interval": 1.0,
        "reconnect_max_delay": 1.0,
    }
    port = free_port()  # the handler's address goes to the portal before the daemon starts
    data["bitrix24"] = {
        "webhook_url": crm.webhook_url,
        "events": "push",
        "events_url": f"http://127.0.0.1:{port}/b24/events",
        "register_timeout": 5.0,
        "request_timeout": 5.0,
    }
    data["journal"] = {"path": str(workdir / "journal.db")}
    data["http"] = {"listen": f"127.0.0.1:{port}"}
    set_up_portal(crm, data)  # the outbound webhook for click-to-call, its token into the config
    return data


@dataclass
class Site:
    pbx: RealPbx
    crm: Bitrix24Simulator
    daemon: Daemon
    pbx_ami: Ami
    """The harness's own AMI user on the PBX (every event, with arrival times)."""
    farm_ami: Ami
    robots: set[str] = field(default_factory=set)

    async def _robot(self, name: str, behaviour: str) -> None:
        answer = await self.farm_ami.action("Setvar", Variable=name, Value=behaviour)
        assert answer.get("Response") == "Success", answer
        self.robots.add(name)

    async def phone(self, ext: str, result: str, ring: int = 1, talk: int = 0) -> None:
        """How desk phone ``ext`` answers the PBX's next calls (``talk`` 0: until the other side hangs up)."""
        await self._robot(f"PHONE_{ext}", f"{result},{ring},{talk}")

    async def provider(self, number: str, result: str, ring: int = 1, talk: int = 0) -> None:
        """How the outside number behind the trunk answers."""
        await self._robot(f"EXT_{number}", f"{result},{ring},{talk}")

    async def inbound(self, did: str, caller: str, *, dtmf: str = "", dtmf_delay: int = 2) -> None:
        """A customer calls ``did`` through the sample's ``from-trunk``; they stay until the bridge hangs up."""
        answer = await self.pbx_ami.action(
            "Originate", Channel=f"Local/{did}@from-trunk", Context="callers", Exten="s", Priority="1",
            CallerID=f'"Customer" <{caller}>', Timeout="30000", Async="true",
            Variable=f"CALLER_DTMF={dtmf},CALLER_DTMF_DELAY={dtmf_delay},CALLER_HANGUP_AFTER=120",
        )  # fmt: skip
        assert answer.get("Response") == "Success", answer

    async def dial_out(self, ext: str, number: str, talk: int) -> None:
        """Desk phone ``ext`` dials ``number`` and hangs up after ``talk`` s of its own."""
        answer = await self.farm_ami.action(
            "Originate", Channel=f"PJSIP/{number}@{ext}", Context="phone-talk", Exten="s", Priority="1",
            Variable=f"TALK={talk}", Async="true",
        )  # fmt: skip
        assert answer.get("Response") == "Success", answer

    def talk(self, channel: str) -> float:
        """Seconds from the PBX's answer of the one channel named ``channel*`` that was answered to its hang-up."""
        up = {e["Channel"]: e.at for e in self.pbx_ami.events("Newstate", Channel=channel, ChannelStateDesc="Up")}
        assert len(up) == 1, f"answered {channel}* channels on the PBX: {sorted(up)}"
        [(name, answered)] = up.items()
        hangups = [e.at for e in self.pbx_ami.events("Hangup") if e["Channel"] == name]
        assert hangups, f"{name} has not hung up"
        return hangups[0] - answered

    async def ended(self, channel: str, timeout: float = 60.0) -> None:
        """Wait until a channel named ``channel*`` has hung up and then the PBX has no channel left (a call that
        starts a moment after the test asked for it is not mistaken for one already over)."""
        await eventually(lambda: self.pbx_ami.events("Hangup", Channel=channel), timeout=timeout, interval=0.1)
        await self.idle()

    async def idle(self, timeout: float = 30.0) -> None:
        """Wait until the PBX has no channel left."""

        async def no_channels() -> bool:
            channels = await self.pbx_ami.listing("CoreShowChannels")
            assert not channels, f"calls still up on the PBX: {[c.get('Channel') for c in channels]}"
            return True

        await eventually(no_channels, timeout=timeout, interval=0.2)  # type: ignore[arg-type]  # (T | Awaitable[T])

    async def mirrored(self, expect: Expect, timeout: float = 20.0) -> CrmCall:
        """Wait until Bitrix24 holds exactly what ``expect`` says; return the call."""

        def matches() -> CrmCall:
            state = self.crm.state()
            problems = verdict(expect, state)
            assert not problems, f"{expect.phone}: {problems}"
            return crm_call(state, calls_of(state, expect.phone)[0])

        return await eventually(matches, timeout=timeout, interval=0.1)


@asynccontextmanager
async def site(pbx: RealPbx, workdir: Path) -> AsyncIterator[Site]:
    """Start the Bitrix24 simulator and the daemon against the real PBX; at the end stop the daemon, hang up what
    is left on both instances and put the robots back to their defaults."""
    kit = pbx.kit
    workdir.mkdir(parents=True, exist_ok=True)
    async with Bitrix24Simulator(seed=seed(), application_token=APP_TOKEN) as crm:
        pbx_ami = await Ami.connect(kit.ports.pbx_ami, kit.ami_user, kit.ami_secret, "pbx")
        farm_ami = await Ami.connect(kit.ports.phones_ami, kit.ami_user, kit.ami_secret, "farm")
        settings = parse_settings(site_config(pbx, crm, workdir), path=workdir / "bridge.toml", env={})
        daemon, serving = await launch_daemon(settings, STAGE_TIMING, crm)
        s = Site(pbx, crm, daemon, pbx_ami, farm_ami)
        try:
            yield s
        finally:
            daemon.request_stop()
            await asyncio.gather(serving, return_exceptions=True)
            for instance in ("phones", "pbx"):
                kit.cli(instance, "channel request hangup all")
            for name in s.robots:
                await farm_ami.action("Setvar", Variable=name, Value="")
            await s.idle()
            await pbx_ami.close()
            await farm_ami.close()
