"""A whole installation on 127.0.0.1: both simulators and a real daemon configured against them.

Used by ``b24-bridge demo``, the integration tests and the benchmarks. The daemon is the production one, built
from a real config file written into ``workdir``; only the addresses point at the simulators.
"""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp

from bridge.config import Settings, parse_settings
from bridge.daemon import Daemon, Timing
from bridge.sim.asterisk import AsteriskSimulator
from bridge.sim.bitrix24 import Bitrix24Simulator

ARI_PASSWORD = "ari-secret"
AMI_SECRET = "ami-secret"
APP_TOKEN = "simapptoken"
STAGE_TIMING = Timing(grace=3.0, flush=3.0, recovery_poll=0.2)


def demo_routing() -> dict[str, Any]:
    """The built-in call centre (``bridge/sim/demo.toml``) as TOML data."""
    text = resources.files("bridge.sim").joinpath("demo.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def stage_config(
    pbx: AsteriskSimulator,
    crm: Bitrix24Simulator,
    workdir: Path,
    *,
    ring_seconds: float,
    rate: float,
    burst: int,
    register_timeout: float = 1.0,
) -> dict[str, Any]:
    data = demo_routing()
    data["routing"]["ring_seconds"] = ring_seconds
    data["asterisk"] = {
        "ari_url": pbx.ari_url,
        "ari_user": "b24bridge",
        "ari_password": ARI_PASSWORD,
        "app": "b24bridge",
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
    }
    data["bitrix24"] = {
        "webhook_url": crm.webhook_url,
        "rate": rate,
        "burst": burst,
        "application_token": APP_TOKEN,
        "events": "push",
        "register_timeout": register_timeout,
        "request_timeout": 5.0,
        "directory_refresh": 60.0,
        "availability_ttl": 30.0,
    }
    data["journal"] = {"path": str(workdir / "journal.db")}
    data["http"] = {"listen": "127.0.0.1:0"}
    return data


@dataclass
class Stage:
    pbx: AsteriskSimulator
    crm: Bitrix24Simulator
    daemon: Daemon
    settings: Settings
    workdir: Path
    timing: Timing = STAGE_TIMING
    serving: asyncio.Task[int] | None = None

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.daemon.http_port}/b24/events"

    async def start_daemon(self) -> Daemon:
        """Start a new daemon (a new process, as far as it knows) on this stage's config and journal."""
        self.daemon, self.serving = await launch_daemon(self.settings, self.timing, self.crm)
        return self.daemon

    async def stop_daemon(self, *, grace: float | None = None, flush: float | None = None) -> int:
        """Stop the daemon as SIGTERM does; ``grace=0, flush=0`` leaves calls in progress to the next start."""
        timing = self.daemon.timing
        self.daemon.timing = replace(timing, grace=timing.grace if grace is None else grace,
                                     flush=timing.flush if flush is None else flush)  # fmt: skip
        self.daemon.request_stop()
        serving, self.serving = self.serving, None
        return await serving if serving is not None else 0


@asynccontextmanager
async def stage(
    workdir: Path,
    *,
    ring_seconds: float = 0.3,
    rate: float = 20.0,
    burst: int = 50,
    register_timeout: float = 1.0,
    tweak: Callable[[dict[str, Any]], None] | None = None,
    timing: Timing = STAGE_TIMING,
) -> AsyncIterator[Stage]:
    """Start both simulators and the daemon; stop them all at the end (the daemon as on SIGTERM)."""
    workdir.mkdir(parents=True, exist_ok=True)
    async with (
        AsteriskSimulator(ari_password=ARI_PASSWORD, ami_secret=AMI_SECRET, phone_template="PJSIP/{ext}") as pbx,
        Bitrix24Simulator(rate=rate, burst=burst, application_token=APP_TOKEN) as crm,
    ):
        data = stage_config(
            pbx, crm, workdir, ring_seconds=ring_seconds, rate=rate, burst=burst, register_timeout=register_timeout
        )
        if tweak is not None:
            tweak(data)
        settings = parse_settings(data, path=workdir / "bridge.toml", env={})
        daemon, serving = await launch_daemon(settings, timing, crm)
        # a restart keeps the handler's address, as an installation's fixed port does
        settings = replace(settings, http=replace(settings.http, port=daemon.http_port))
        s = Stage(pbx, crm, daemon, settings, workdir, timing, serving)
        try:
            yield s
        finally:
            await s.stop_daemon()


async def launch_daemon(settings: Settings, timing: Timing, crm: Bitrix24Simulator) -> tuple[Daemon, asyncio.Task[int]]:
    """Start a daemon on ``settings`` and wait until it is connected to the PBX and its click-to-call handler is
    known to the portal."""
    daemon = Daemon(settings, timing=timing)
    serving = asyncio.create_task(daemon.serve(install_signals=False))
    try:
        await _until(lambda: daemon.started.is_set() and daemon.ari.connected and daemon.ami.connected, serving)
        # the events handler must be known to the portal, as an operator sets it up (README)
        if settings.bitrix24.events == "push":
            await bind_event_handlers(crm, f"http://127.0.0.1:{daemon.http_port}/b24/events")
        elif settings.bitrix24.events == "pull":
            await bind_event_handlers(crm, "", offline=True)
    except BaseException:
        daemon.request_stop()
        await asyncio.gather(serving, return_exceptions=True)
        raise
    return daemon, serving


async def bind_event_handlers(crm: Bitrix24Simulator, handler: str, *, offline: bool = False) -> None:
    """What an administrator does once in the portal: point click-to-call events at the daemon (``offline``:
    queue them for ``event.offline.get`` instead)."""
    async with aiohttp.ClientSession() as session:
        for event in ("ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART"):
            url = f"{crm.webhook_url}event.bind.json"
            body = {"event": event, "event_type": "offline"} if offline else {"event": event, "handler": handler}
            async with session.post(url, json=body) as response:
                body = await response.json()
                if "error" in body and "already" not in str(body.get("error_description", "")).lower():
                    raise RuntimeError(f"event.bind {event}: {body}")


async def _until(ready: Callable[[], bool], serving: asyncio.Task[int], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not ready():
        if serving.done():
            serving.result()  # raises what stopped the daemon
            raise RuntimeError("the daemon stopped during start-up")
        if loop.time() > deadline:
            raise TimeoutError("the daemon did not connect to the simulators in time")
        await asyncio.sleep(0.02)
