"""Each PBX on a shared PostgreSQL journal needs its own asterisk.conf ``systemname`` (Asterisk puts it in every
channel id; without it two PBXs count ids alike and their calls collide in one journal). A bridge reads it from
``GET /asterisk/info`` when it takes its PBX and refuses to go on (exit 78, ``daemon.systemname_clash``) while a
live bridge of another PBX reports the same name, or either has none. A bridge that is gone does not count."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from structlog.testing import capture_logs

from bridge.config import EXIT_CONFIG, Settings, parse_settings
from bridge.daemon import Daemon
from bridge.sim.asterisk import AsteriskSimulator
from bridge.sim.bitrix24 import Bitrix24Simulator
from bridge.sim.stage import AMI_SECRET, ARI_PASSWORD, STAGE_TIMING, launch_daemon, stage_config
from tests.eventually import eventually
from tests.pgserver import PASSWORD


def settings_for(pbx: AsteriskSimulator, crm: Bitrix24Simulator, workdir: Path, pg_url: str, name: str) -> Settings:
    workdir.mkdir(parents=True, exist_ok=True)
    data = stage_config(pbx, crm, workdir, ring_seconds=0.3, rate=20.0, burst=50)
    data["bitrix24"]["events"] = "off"
    data["journal"] = {"url": pg_url, "password": PASSWORD, "bridge_id": name}
    return parse_settings(data, path=workdir / "bridge.toml", env={})


@contextlib.asynccontextmanager
async def running(settings: Settings, crm: Bitrix24Simulator) -> AsyncIterator[Daemon]:
    daemon, serving = await launch_daemon(settings, STAGE_TIMING, crm)
    try:
        lease = daemon.roles.delivery
        assert lease is not None
        await eventually(lambda: lease.reachable, timeout=10)  # live: its leadership session is connected
        yield daemon
    finally:
        daemon.request_stop()
        await serving


async def refused(settings: Settings) -> list[dict[str, object]]:
    with capture_logs() as logs:
        code = await asyncio.wait_for(Daemon(settings, timing=STAGE_TIMING).serve(install_signals=False), 30)
    assert code == EXIT_CONFIG
    assert not [e for e in logs if e["event"] == "pbx.connected" and e.get("link") == "ari"], "it never subscribed"
    return [e for e in logs if e["event"] == "daemon.systemname_clash"]


def pbx(system_name: str) -> AsteriskSimulator:
    return AsteriskSimulator(ari_password=ARI_PASSWORD, ami_secret=AMI_SECRET, system_name=system_name)


async def test_a_pbx_whose_systemname_another_live_pbx_shares_or_lacks_is_refused(tmp_path: Path, pg_url: str) -> None:
    async with pbx("") as nameless, pbx("office-b") as office_b, pbx("office-b") as copy, Bitrix24Simulator() as crm:
        a = settings_for(nameless, crm, tmp_path / "a", pg_url, "office-a")
        b = settings_for(office_b, crm, tmp_path / "b", pg_url, "office-b")
        c = settings_for(copy, crm, tmp_path / "c", pg_url, "office-c")
        async with running(a, crm):  # alone on the journal: nothing to collide with
            clash = await refused(b)
            assert len(clash) == 1 and clash[0]["log_level"] == "error"
            assert "bridge office-a" in str(clash[0]["others"]) and "systemname none" in str(clash[0]["others"])
        async with running(b, crm) as daemon_b:  # office-a has gone: its row no longer counts
            assert daemon_b.ari.connected
            clash = await refused(c)
            assert "bridge office-b" in str(clash[0]["others"]) and clash[0]["systemname"] == "office-b"
