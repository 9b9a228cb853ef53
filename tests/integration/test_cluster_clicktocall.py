"""Click-to-call with two bridges on one portal (one PostgreSQL journal, one Bitrix24 simulator, an Asterisk
simulator per office): Bitrix24 posts every ONEXTERNALCALLSTART to both bridges' handlers, and exactly one acts,
the one whose PBX has the employee's phone (the line decides when both have it); the other logs that it leaves
the call to another bridge. An employee whose phone is on neither PBX gets Bitrix24's call closed once, by the
bridge of the call's line."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from bridge.config import parse_settings
from bridge.daemon import Daemon
from bridge.sim.asterisk import Answer, AsteriskSimulator
from bridge.sim.bitrix24 import Bitrix24Simulator
from bridge.sim.stage import (
    AMI_SECRET,
    ARI_PASSWORD,
    STAGE_TIMING,
    free_port,
    launch_daemon,
    set_up_portal,
    stage_config,
)
from bridge.sim.verdict import calls_of, crm_call
from tests.eventually import eventually
from tests.pgserver import PASSWORD

LINE_A, LINE_B = "74951112233", "74951112244"
"""Office A's lines are the demo's but LINE_B; office B has LINE_B alone."""


def office_config(pbx: AsteriskSimulator, crm: Bitrix24Simulator, workdir: Path, pg_url: str, name: str) -> Any:
    workdir.mkdir(parents=True, exist_ok=True)
    data = stage_config(pbx, crm, workdir, ring_seconds=0.3, rate=20.0, burst=50, port=free_port())
    data["journal"] = {"url": pg_url, "password": PASSWORD, "bridge_id": name}
    if name == "office-b":
        data["lines"] = {LINE_B: data["lines"][LINE_B]}
        data.pop("lead_distribution", None)
    else:
        del data["lines"][LINE_B]
    set_up_portal(crm, data)  # the administrator adds an outbound webhook to this bridge's handler
    return parse_settings(data, path=workdir / "bridge.toml", env={})


@contextlib.asynccontextmanager
async def offices(tmp_path: Path, pg_url: str) -> AsyncIterator[tuple[AsteriskSimulator, AsteriskSimulator, Any]]:
    def pbx(name: str) -> AsteriskSimulator:
        return AsteriskSimulator(ari_password=ARI_PASSWORD, ami_secret=AMI_SECRET, phone_template="PJSIP/{ext}",
                                 system_name=name, default_party=Answer(after=0.2, talk=0.5))  # fmt: skip

    async with pbx("office-a") as pbx_a, pbx("office-b") as pbx_b, Bitrix24Simulator() as crm:
        pbx_a.configure_devices(["PJSIP/1001", "PJSIP/1002"])  # both offices have a 1001
        pbx_b.configure_devices(["PJSIP/1001", "PJSIP/1003"])
        daemons: list[tuple[Daemon, asyncio.Task[int]]] = []
        try:
            for pbx_of, name in ((pbx_a, "office-a"), (pbx_b, "office-b")):
                settings = office_config(pbx_of, crm, tmp_path / name, pg_url, name)
                daemons.append(await launch_daemon(settings, STAGE_TIMING, crm))
            yield pbx_a, pbx_b, crm
        finally:
            for daemon, _ in daemons:
                daemon.request_stop()
            await asyncio.gather(*(serving for _, serving in daemons), return_exceptions=True)


def dialled(pbx: AsteriskSimulator) -> list[str]:
    return [r["params"]["endpoint"] for r in pbx.requests if "endpoint" in r["params"]]


def finished_once(crm: Bitrix24Simulator, phone: str) -> Any:
    found = calls_of(crm.state(), phone)
    assert len(found) == 1, found
    call = crm_call(crm.state(), found[0])
    assert call.finished
    return call


async def test_exactly_one_bridge_carries_out_a_click_to_call(tmp_path: Path, pg_url: str) -> None:
    async with offices(tmp_path, pg_url) as (pbx_a, pbx_b, crm):
        with capture_logs() as logs:
            # 1003 is in office B only, the line is office A's: B rings the employee, A leaves it
            await crm.click_to_call(13, "79260000301", line=LINE_A)
            await eventually(lambda: finished_once(crm, "79260000301"), timeout=20)
            assert dialled(pbx_a) == []
            assert dialled(pbx_b) == ["PJSIP/1003", "PJSIP/79260000301@trunk"]

            def left_by_a() -> list[dict[str, Any]]:
                left = [e for e in logs if e["event"] == "clicktocall.left_to_other_bridge"]
                assert [e["log_level"] for e in left] == ["info"] and "office-b" in left[0]["reason"]
                return left

            await eventually(left_by_a, timeout=10)  # A, with only the line, waited for a bridge with the phone

            # both offices have a 1001: the line says which one rings it
            await crm.click_to_call(11, "79260000302", line=LINE_B)
            await eventually(lambda: finished_once(crm, "79260000302"), timeout=20)
            await crm.click_to_call(11, "79260000303", line=LINE_A)
            await eventually(lambda: finished_once(crm, "79260000303"), timeout=20)
            assert dialled(pbx_a) == ["PJSIP/1001", "PJSIP/79260000303@trunk"]
            assert dialled(pbx_b)[2:] == ["PJSIP/1001", "PJSIP/79260000302@trunk"]

            # 1004 is on neither PBX: the bridge of the line closes Bitrix24's call, once, saying why
            await crm.click_to_call(14, "79260000304", line=LINE_A)
            call = await eventually(lambda: finished_once(crm, "79260000304"), timeout=20)
            assert call.status == "480" and call.user == 14
            raw = calls_of(crm.state(), "79260000304")[0]
            assert "extension 1004 is not on any PBX" in str(raw["finish"].get("FAILED_REASON", ""))
            assert len(dialled(pbx_a)) == 2 and len(dialled(pbx_b)) == 4, "nobody rang a phone for 1004"
            assert not [e for e in logs if e["event"] == "clicktocall.refused" and e["log_level"] == "error"]
