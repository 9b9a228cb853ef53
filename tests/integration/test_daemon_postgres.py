"""``b24-bridge run`` on a PostgreSQL journal: the whole daemon against both simulators and a real PostgreSQL. The
calls are journaled through the ordered write-behind queue and delivered by the bridge as the delivery leader; the
status page and the health read the journal's figures without waiting on the database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bridge.domain.commands import CallType, CrmRegister
from bridge.journal import AsyncJournal
from bridge.journal.per_pbx import PbxJournal
from bridge.sim.asterisk import Answer
from bridge.sim.stage import stage
from bridge.sim.verdict import ANSWERED, INCOMING, Expect, calls_of
from tests.eventually import eventually
from tests.integration.daemon_support import mirrored
from tests.pgserver import PASSWORD

SALES = "74951112233"


def register(leg: str) -> CrmRegister:
    return CrmRegister(leg, 11, "79990000399", CallType.INCOMING, SALES, datetime.now(UTC), True)


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def test_run_keeps_its_journal_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    def on_postgres(data: dict[str, Any]) -> None:
        data["journal"] = {"url": pg_url, "password": PASSWORD, "bridge_id": "office-a"}

    async with stage(tmp_path, tweak=on_postgres) as s:
        assert not (tmp_path / "journal.db").exists(), "no SQLite file, no file lock"
        base = f"http://127.0.0.1:{s.daemon.http_port}"
        s.pbx.set_party("1001", Answer(after=0.1))
        call = await s.pbx.place_inbound_call(SALES, "79990000300", hangup_after_answer=0.5)
        await call.ended()
        await mirrored(
            s, Expect("79990000300", INCOMING, 11, ANSWERED, talk=0.5, recorded=True, shown_to=frozenset({11}))
        )

        async def settled() -> dict[str, Any]:
            status, body = await get(base + "/healthz")
            assert status == 200, body
            assert body["components"]["journal"]["detail"] == "0 pending operation(s)"
            return dict(body)

        await eventually(settled, timeout=10)

        async def shown() -> dict[str, Any]:
            status, page = await get(base + "/status.json")
            assert status == 200 and page["delivery"]["journal_depth"] == 0
            legs = [leg for f in page["recent"] for leg in f["bitrix24"]]
            assert [leg["delivery"] for leg in legs] == ["done"] and legs[0]["b24_call_id"], page["recent"]
            return dict(page)

        page = await eventually(shown, timeout=5)
        journal = next(link for link in page["links"] if link["name"] == "journal")
        assert journal["up"] and "password" not in str(journal) and PASSWORD not in str(page)
    assert len(calls_of(s.crm.state(), "79990000300")) == 1
    journal = await AsyncJournal.open_postgres(pg_url, password=PASSWORD)
    try:
        rows = await journal.calls()
        assert len(rows) == 1 and all(row.state == "done" for row in rows)
        ops = (await journal._x("SELECT DISTINCT bridge FROM operations")).fetchall()
        assert [row[0] for row in ops] == ["office-a"]
    finally:
        await journal.close()


async def test_recovery_on_a_shared_journal_leaves_another_pbx_calls_alone(tmp_path: Path, pg_url: str) -> None:
    other = await PbxJournal.open_postgres(pg_url, password=PASSWORD, bridge="office-b")
    assert isinstance(other, PbxJournal)
    other.pbx = "pbx-b:8088/b24bridge"
    await other.append(register("1796000001.7.1"), linkedid="1796000001.7", pbx_call="1796000001.7")

    def on_postgres(data: dict[str, Any]) -> None:
        data["journal"] = {"url": pg_url, "password": PASSWORD, "bridge_id": "office-a"}

    try:
        async with stage(tmp_path, tweak=on_postgres) as s:
            await eventually(lambda: s.daemon.recovery.looked, timeout=10)
            s.pbx.set_party("1001", Answer(after=0.1))
            call = await s.pbx.place_inbound_call(SALES, "79990000310", hangup_after_answer=0.3)
            await call.ended()
            await mirrored(
                s, Expect("79990000310", INCOMING, 11, ANSWERED, talk=0.3, recorded=True, shown_to=frozenset({11}))
            )
        ops = await other.operations("1796000001.7.1")
        assert [op.kind for op in ops] == ["register"], "its own bridge finishes it, not this one"
        assert [row.state for row in await other.calls(crm_leg="1796000001.7.1")] == ["open"]
    finally:
        await other.close()
