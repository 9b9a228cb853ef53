"""A whole installation on 127.0.0.1: both simulators and a real daemon configured against them.

Used by ``b24-bridge demo``, the integration tests and the benchmarks. The daemon is the production one, built
from a real config file written into ``workdir``; only the addresses point at the simulators.

The portal is set up as its administrator would (README, Bitrix24 set-up): with ``auth="webhook"`` an outbound
webhook posts the click-to-call events to the daemon and its token goes into the config; with ``auth="oauth"`` the
local application is installed with the daemon's ``events_url`` as its install path (push: the daemon captures the
tokens from ONAPPINSTALL and binds the events) or, for ``events = "pull"``, its first token pair is put into
``token_file`` by hand.
"""

from __future__ import annotations

import asyncio
import json
import socket
import tomllib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from bridge.config import Settings, parse_settings
from bridge.daemon import Daemon, Timing
from bridge.portal import BOUND_EVENTS
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
    local_agents: bool = False,
    port: int = 0,
    auth: str = "webhook",
) -> dict[str, Any]:
    """The daemon's config against the simulators: agents on their PJSIP phones as the defaults have it, or
    (``local_agents``) on Local channels through the dialplan, as dialplan-driven sites do. ``port`` is the
    daemon's HTTP port (0: any, then no ``events_url``)."""
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
        "agent_endpoint": "Local/{ext}@agents" if local_agents else "PJSIP/{ext}",
        "trunk_endpoint": "Local/{number}@external" if local_agents else "PJSIP/{number}@trunk",
        "device": "PJSIP/{ext}",
        "outbound_contexts": ["from-agents", "phones"],
        "ping_interval": 1.0,
        "reconnect_max_delay": 1.0,
    }
    data["bitrix24"] = {
        "rate": rate,
        "burst": burst,
        "events": "push",
        "register_timeout": register_timeout,
        "request_timeout": 5.0,
        "directory_refresh": 60.0,
        "availability_ttl": 30.0,
    }
    if auth == "oauth":
        data["bitrix24"]["oauth"] = {
            "portal": crm.url, "client_id": crm.core.identity.client_id,
            "client_secret": crm.core.identity.client_secret, "token_file": str(workdir / "token.json"),
            "oauth_host": crm.url,
        }  # fmt: skip
    else:
        data["bitrix24"].update(webhook_url=crm.webhook_url, application_token=APP_TOKEN)
    if port:
        data["bitrix24"]["events_url"] = f"http://127.0.0.1:{port}/b24/events"
    data["journal"] = {"path": str(workdir / "journal.db")}
    data["http"] = {"listen": f"127.0.0.1:{port}"}
    return data


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, so the handler's address can be in the config (and the portal) first."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def set_up_portal(crm: Bitrix24Simulator, data: dict[str, Any]) -> None:
    """What the administrator does in the portal before the daemon starts (see the module's docstring)."""
    b24 = data["bitrix24"]
    if b24.get("events") == "push" and "webhook_url" in b24:
        b24["application_token"] = crm.add_outbound_webhook(b24["events_url"], list(BOUND_EVENTS))
    if b24.get("events") == "pull" and "oauth" in b24:
        token_file = Path(b24["oauth"]["token_file"])
        token_file.write_text(json.dumps(crm.issue_tokens(1)), encoding="utf-8")
        token_file.chmod(0o600)


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

    @property
    def app_token(self) -> str:
        """The application_token genuine events carry: the outbound webhook's, or the installed application's."""
        return self.settings.bitrix24.application_token.reveal() or self.crm.core.identity.application_token

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
    local_agents: bool = False,
    auth: str = "webhook",
    crm_seed: dict[str, Any] | None = None,
) -> AsyncIterator[Stage]:
    """Start both simulators and the daemon; stop them all at the end (the daemon as on SIGTERM). ``auth`` is
    ``webhook`` or ``oauth`` (a local application); ``crm_seed`` replaces the portal's default people and CRM."""
    workdir.mkdir(parents=True, exist_ok=True)
    async with (
        AsteriskSimulator(ari_password=ARI_PASSWORD, ami_secret=AMI_SECRET, phone_template="PJSIP/{ext}") as pbx,
        Bitrix24Simulator(seed=crm_seed, rate=rate, burst=burst, application_token=APP_TOKEN) as crm,
    ):
        data = stage_config(
            pbx, crm, workdir, ring_seconds=ring_seconds, rate=rate, burst=burst, register_timeout=register_timeout,
            local_agents=local_agents, port=free_port(), auth=auth,
        )  # fmt: skip
        if tweak is not None:
            tweak(data)
        set_up_portal(crm, data)
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
        b24 = settings.bitrix24
        if b24.oauth is not None and b24.events != "off":
            if b24.events == "push" and not b24.oauth.token_file.exists():
                status = await crm.install_app(b24.events_url)
                if status != 200:
                    raise RuntimeError(f"the daemon answered the application's install with HTTP {status}")
            await _until(lambda: _bound(crm, b24.events == "pull"), serving)
    except BaseException:
        daemon.request_stop()
        await asyncio.gather(serving, return_exceptions=True)
        raise
    return daemon, serving


def _bound(crm: Bitrix24Simulator, offline: bool) -> bool:
    """The daemon has bound the click-to-call events for the application (at start or after the install)."""
    app = crm.core.identity.app_id
    bound = {b.event for b in crm.core.events.bindings if b.app_id == app and b.offline == offline}
    return bound >= set(BOUND_EVENTS)


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
