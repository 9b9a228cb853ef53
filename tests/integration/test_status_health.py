"""Health an orchestrator can act on (``/livez`` vs ``/readyz`` vs ``/healthz``) and ``/b24/events`` on a listener
of its own, against the real daemon and both simulators."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from bridge.ops.probe import main as probe
from bridge.sim.asterisk import Answer
from bridge.sim.stage import free_port, stage
from tests.eventually import eventually

SALES = "74951112233"


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        body = await response.json() if response.content_type == "application/json" else await response.text()
        return response.status, body


async def test_a_pbx_outage_makes_the_daemon_unready_but_never_dead(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        base = f"http://127.0.0.1:{s.daemon.http_port}"
        assert (await get(base + "/livez"))[0] == 200
        status, ready = await get(base + "/readyz")
        assert status == 200 and set(ready["components"]) == {"ari", "ami", "journal", "started"}
        s.pbx.go_silent(ami=True)

        async def unready() -> dict[str, Any]:
            status, body = await get(base + "/readyz")
            assert status == 503, body
            return dict(body)

        body = await eventually(unready, timeout=10)
        assert body["reasons"] == ["ami: not connected"]
        status, live = await get(base + "/livez")
        assert status == 200 and live["ok"] is True, "a PBX reconnect is no reason for a restart"
        s.pbx.wake()
        await eventually(lambda: s.daemon.ami.connected, timeout=10)
        assert (await get(base + "/readyz"))[0] == 200


async def test_a_bitrix24_outage_with_a_backlog_keeps_the_daemon_live_and_ready(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        base = f"http://127.0.0.1:{s.daemon.http_port}"
        s.crm.set_fault(outage_seconds=30)
        s.pbx.set_party("1001", Answer(after=0.1))
        call = await s.pbx.place_inbound_call(SALES, "79990000301", hangup_after_answer=0.3)
        await asyncio.wait_for(call.ended(), 20)
        await eventually(lambda: s.daemon.journal.depth() > 0 and not s.daemon.delivery.observer.state.up)
        assert (await get(base + "/livez"))[0] == 200 and (await get(base + "/readyz"))[0] == 200
        status, data = await get(base + "/status.json")
        bitrix24 = next(link for link in data["links"] if link["name"] == "bitrix24")
        assert status == 200 and bitrix24["up"] is False and bitrix24["last_error"]
        assert data["delivery"]["journal_depth"] > 0
        s.crm.clear_faults()


async def test_events_on_their_own_listener_do_not_publish_the_status_page(tmp_path: Path) -> None:
    events_port = free_port()

    def own_listener(data: dict[str, Any]) -> None:
        data["http"]["events_listen"] = f"127.0.0.1:{events_port}"
        data["bitrix24"]["events_url"] = f"http://127.0.0.1:{events_port}/b24/events"

    async with stage(tmp_path, tweak=own_listener) as s:
        assert s.daemon.events_port == events_port
        main, events = f"http://127.0.0.1:{s.daemon.http_port}", f"http://127.0.0.1:{events_port}"
        for path in ("/status", "/status.json", "/metrics", "/healthz"):
            assert (await get(events + path))[0] == 404, path
            assert (await get(main + path))[0] == 200, path
        async with aiohttp.ClientSession() as session, session.post(main + "/b24/events", data={}) as response:
            assert response.status in (404, 405)
        s.pbx.set_party("1001", Answer(after=0.1))
        await s.crm.click_to_call(11, "79990000302")
        accepted = s.daemon.metrics.clicktocall.labels(result="accepted")
        await eventually(lambda: accepted._value.get() == 1)


async def test_the_container_probe_reads_the_port_from_the_config(tmp_path: Path) -> None:
    async with stage(tmp_path / "stage") as s:
        config = tmp_path / "bridge.toml"
        config.write_text(f'[http]\nlisten = "0.0.0.0:{s.daemon.http_port}"\n')
        assert await asyncio.to_thread(probe, ["--config", str(config), "livez"]) == 0
        s.pbx.go_silent(ami=True)
        await eventually(lambda: not s.daemon.ami.connected, timeout=10)
        assert await asyncio.to_thread(probe, ["--config", str(config), "readyz"]) == 1
        assert await asyncio.to_thread(probe, ["--config", str(config), "livez"]) == 0


async def test_a_dead_vital_task_fails_livez_naming_it(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        base = f"http://127.0.0.1:{s.daemon.http_port}"
        (delivery,) = [task for task in s.daemon._tasks if task.get_name() == "delivery"]
        delivery.cancel()
        await eventually(lambda: delivery.done())
        status, body = await get(base + "/livez")
        assert status == 503 and body["reasons"] == ["tasks: stopped: delivery"]
        assert (await get(base + "/readyz"))[0] == 200, "the links are still up"
