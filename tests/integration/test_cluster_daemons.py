"""Whole daemons (``python -m bridge run`` as child processes) on one real PostgreSQL journal and one Bitrix24
simulator: two bridges, each with its own Asterisk, mirror a mixed call load through one delivery leader (0 portal
503s, every call once) and survive ``kill -9`` of the leader; and a standby pair on one Asterisk, where the standby
takes the PBX over when the active bridge is killed and finishes the calls it adopts, once each."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bridge.sim.asterisk import Answer, AsteriskSimulator
from bridge.sim.asterisk.inbound import InboundCall
from bridge.sim.bitrix24 import Bitrix24Simulator
from bridge.sim.stage import AMI_SECRET, APP_TOKEN, ARI_PASSWORD, stage_config
from bridge.sim.verdict import calls_of, crm_call
from tests.chaos.callcentre import toml_text
from tests.chaos.daemon_process import DaemonProcess
from tests.eventually import eventually

SALES = "74951112233"
RATE, BURST = 2.0, 50
"""The portal's bucket as Bitrix24 sizes it (2 requests/s, 50 at once): two leaders, each pacing its delivery to
the full budget, would overrun it with this load."""


def write_config(
    pbx: AsteriskSimulator, crm: Bitrix24Simulator, workdir: Path, pg_url: str, bridge_id: str, *, standby: bool
) -> DaemonProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    data = stage_config(pbx, crm, workdir, ring_seconds=0.3, rate=RATE, burst=BURST)
    data["bitrix24"]["events"] = "off"
    data["journal"] = {"url": pg_url, "password_env": "B24_TEST_PG_PASSWORD", "bridge_id": bridge_id}
    data["http"] = {"listen": "127.0.0.1:0"}
    if standby:
        data["cluster"] = {"standby": True}
    config = workdir / "bridge.toml"
    config.write_text(toml_text(data), encoding="utf-8")
    return DaemonProcess(config, workdir)


@contextlib.asynccontextmanager
async def running(*daemons: DaemonProcess) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for daemon in daemons:
            if daemon.process is not None and daemon.process.returncode is None:
                daemon.process.kill()
                await daemon.process.wait()


def simulator(name: str) -> AsteriskSimulator:
    return AsteriskSimulator(
        ari_password=ARI_PASSWORD, ami_secret=AMI_SECRET, phone_template="PJSIP/{ext}", system_name=name,
        default_party=Answer(after=0.3),
    )  # fmt: skip


def holds(daemon: DaemonProcess, role: str) -> bool:
    """The daemon's current start took ``role`` (delivery or pbx)."""
    return any(
        e.get("event") == "leadership.acquired" and e.get("role") == role for e in daemon.lines(daemon.logs[-1:])
    )


def once_each(crm: Bitrix24Simulator, phones: list[str]) -> dict[str, Any]:
    state = crm.state()
    for phone in phones:
        found = calls_of(state, phone)
        assert len(found) == 1, f"{phone}: {len(found)} calls in Bitrix24"
        assert crm_call(state, found[0]).finished, f"{phone}: not finished"
    return state


async def place(pbx: AsteriskSimulator, phone: str, n: int) -> InboundCall:
    """The mix: most callers talk a little, every third hangs up while it rings."""
    if n % 3 == 2:
        return await pbx.place_inbound_call(SALES, phone, hangup_after=0.1)
    return await pbx.place_inbound_call(SALES, phone, hangup_after_answer=0.4 + (n % 4) * 0.2)


async def test_two_bridges_share_one_leader_and_survive_its_kill(tmp_path: Path, pg_url: str) -> None:
    async with (
        Bitrix24Simulator(rate=RATE, burst=BURST, application_token=APP_TOKEN) as crm,
        simulator("pbx-a") as pbx_a,
        simulator("pbx-b") as pbx_b,
    ):
        a = write_config(pbx_a, crm, tmp_path / "a", pg_url, "office-a", standby=False)
        b = write_config(pbx_b, crm, tmp_path / "b", pg_url, "office-b", standby=False)
        async with running(a, b):
            await asyncio.gather(a.start(pbx_a), b.start(pbx_b))
            await eventually(lambda: holds(a, "delivery") or holds(b, "delivery"), timeout=10)
            leader, other = (a, b) if holds(a, "delivery") else (b, a)
            pbx_of = {id(a): pbx_a, id(b): pbx_b}
            phones: list[str] = []
            calls: list[InboundCall] = []

            async def wave(bridges: list[DaemonProcess], count: int) -> None:
                for n in range(count):
                    for bridge in bridges:
                        phone = f"7999{len(phones):07d}"
                        phones.append(phone)
                        calls.append(await place(pbx_of[id(bridge)], phone, n))
                    await asyncio.sleep(0.15)

            await wave([a, b], 6)
            await asyncio.gather(*(call.ended() for call in calls))
            leader.kill()  # whatever it had in flight stays claimed in the journal
            await leader.reap()
            await eventually(lambda: holds(other, "delivery"), timeout=10)
            await wave([other], 6)
            await asyncio.gather(*(call.ended() for call in calls))
            await leader.start(pbx_of[id(leader)])  # the service manager restarts it: it journals, the other sends
            await wave([leader], 3)
            await asyncio.gather(*(call.ended() for call in calls))
            await eventually(lambda: once_each(crm, phones), timeout=30)
            assert not holds(leader, "delivery"), "the restarted bridge waits: the other one leads now"
            state = crm.state()
            assert state["counters"]["query_limit_exceeded"] == 0, "the portal's bucket was overrun"
            assert len(phones) == 21
            assert not a.bad_lines() and not b.bad_lines()


async def test_a_standby_takes_the_pbx_and_finishes_the_calls_in_progress_once(tmp_path: Path, pg_url: str) -> None:
    async with (
        Bitrix24Simulator(rate=RATE, burst=BURST, application_token=APP_TOKEN) as crm,
        simulator("pbx-a") as pbx,
    ):
        active = write_config(pbx, crm, tmp_path / "active", pg_url, "office-a-1", standby=True)
        standby = write_config(pbx, crm, tmp_path / "standby", pg_url, "office-a-2", standby=True)
        async with running(active, standby):
            await active.start(pbx)
            await eventually(lambda: holds(active, "pbx"), timeout=10)
            await standby.start(pbx)
            await eventually(lambda: standby.logged("leadership.waiting"), timeout=10)
            first = await pbx.place_inbound_call(SALES, "79990001001", hangup_after_answer=5.0)
            # the first call's agent talks before the second comes (a phone ringing for one call rings for the next
            # too, and the simulated agent would answer both)
            await eventually(lambda: pbx.pbx.devices.state_of("PJSIP/1001") == "INUSE", timeout=10)
            second = await pbx.place_inbound_call(SALES, "79990001002", hangup_after_answer=6.0)

            def registered() -> bool:
                state = crm.state()
                return all(len(calls_of(state, phone)) == 1 for phone in ("79990001001", "79990001002"))

            await eventually(registered, timeout=10)
            await asyncio.sleep(1.0)  # both talking
            active.kill()
            await active.reap()
            await eventually(lambda: holds(standby, "pbx"), timeout=10)
            await asyncio.wait_for(asyncio.gather(first.ended(), second.ended()), 15)
            state = await eventually(lambda: once_each(crm, ["79990001001", "79990001002"]), timeout=20)
            one, two = (crm_call(state, calls_of(state, p)[0]) for p in ("79990001001", "79990001002"))
            # the talker is the agent in the call's bridge; the talk counts from the answer the PBX kept on the
            # agent's leg (B24_ANSWERED), not from the takeover: the real talk, never more
            assert one.user == 11 and one.status == "200" and 4 <= one.duration <= 5, one
            assert two.user not in (0, 11) and two.status == "200" and 5 <= two.duration <= 6, two
            adopted = [e for e in standby.lines() if e.get("event") == "call.reconciled" and "adopted" in e["found"]]
            assert sorted(leg for e in adopted for leg in e["crm_legs"]) == sorted(
                c.channel_id + ".1" for c in (first, second)
            ), adopted
            assert not standby.bad_lines()
