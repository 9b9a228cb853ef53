"""Two whole daemons on one PostgreSQL journal and one Bitrix24 simulator with a small bucket: besides delivery,
each bridge looks callers up, refreshes its directory and the employees' availability, and polls events, all at
once; together they never overrun the portal (0 x 503) because every request takes its slot from the bucket
they share in PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from bridge.sim.asterisk import AsteriskSimulator
from bridge.sim.asterisk.inbound import InboundCall
from bridge.sim.bitrix24 import Bitrix24Simulator
from bridge.sim.stage import APP_TOKEN, set_up_portal, stage_config
from tests.chaos.callcentre import toml_text
from tests.chaos.daemon_process import DaemonProcess
from tests.eventually import eventually
from tests.integration.test_cluster_daemons import once_each, place, running, simulator

RATE, BURST = 4.0, 10
"""A small bucket (Bitrix24's is 2/s, 50): each bridge's own pacing alone lets 8 requests go at once."""


def busy_bridge(pbx: AsteriskSimulator, crm: Bitrix24Simulator, workdir: Path, pg_url: str, bridge_id: str
                ) -> DaemonProcess:  # fmt: skip
    """A bridge that knows the portal's bucket and keeps it under pressure with its own upkeep: the directory, the
    employees' availability and the event poll every two seconds (together about the portal's
    whole rate)."""
    workdir.mkdir(parents=True, exist_ok=True)
    data = stage_config(pbx, crm, workdir, ring_seconds=0.3, rate=RATE, burst=BURST, auth="oauth")
    data["bitrix24"].update(events="pull", poll_interval=2.0, directory_refresh=2.0, availability_ttl=2.0)
    data["routing"]["crm_lookup_timeout"] = 5.0  # what a site on a tight budget sets: a lookup waits its turn
    set_up_portal(crm, data)  # the application is installed: event.offline.get is an application's only
    data["journal"] = {"url": pg_url, "password_env": "B24_TEST_PG_PASSWORD", "bridge_id": bridge_id}
    data["http"] = {"listen": "127.0.0.1:0"}
    config = workdir / "bridge.toml"
    config.write_text(toml_text(data), encoding="utf-8")
    return DaemonProcess(config, workdir)


async def metric(daemon: DaemonProcess, name: str) -> str:
    """One figure of the daemon's ``/metrics``."""
    started = next(e for e in daemon.lines(daemon.logs[-1:]) if e.get("event") == "daemon.started")
    async with aiohttp.ClientSession() as session, session.get(f"http://{started['http']}/metrics") as response:
        text = await response.text()
    figures = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return figures[name]


async def test_two_busy_bridges_draw_no_503_from_a_small_bucket(tmp_path: Path, pg_url: str) -> None:
    async with (
        Bitrix24Simulator(rate=RATE, burst=BURST, application_token=APP_TOKEN) as crm,
        simulator("pbx-a") as pbx_a,
        simulator("pbx-b") as pbx_b,
    ):
        a = busy_bridge(pbx_a, crm, tmp_path / "a", pg_url, "office-a")
        b = busy_bridge(pbx_b, crm, tmp_path / "b", pg_url, "office-b")
        async with running(a, b):
            await asyncio.gather(a.start(pbx_a), b.start(pbx_b))
            # both start at once: lines, directory, statistics access... more than the bucket holds
            await eventually(lambda: a.count("directory.refreshed") >= 3 and b.count("directory.refreshed") >= 3,
                             timeout=60)  # fmt: skip
            phones: list[str] = []
            calls: list[InboundCall] = []
            for n in range(5):  # each call: a caller lookup by its bridge, then register ... finish by the leader
                for pbx in (pbx_a, pbx_b):
                    phone = f"7998{len(phones):07d}"
                    phones.append(phone)
                    calls.append(await place(pbx, phone, n))
                await asyncio.sleep(0.5)
            await asyncio.gather(*(call.ended() for call in calls))
            await eventually(lambda: once_each(crm, phones), timeout=60)
            state = crm.state()
            methods = {entry["method"] for entry in state["requests"]}
            lookup = "telephony.externalCall.searchCrmEntities"
            assert {"user.get", lookup, "event.offline.get", "batch"} <= methods, methods
            assert state["counters"]["query_limit_exceeded"] == 0, "the portal's bucket was overrun"
            for daemon in (a, b):
                assert daemon.count("budget.shared") == 1 and not daemon.logged("budget.fallback")
                assert await metric(daemon, "b24bridge_crm_budget_shared") == "1.0"
                assert not daemon.bad_lines()
