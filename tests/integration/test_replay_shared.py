"""``b24-bridge replay`` on a shared PostgreSQL journal (a real server), as a user runs it against the Bitrix24
simulator: it refuses while a bridge is the portal's delivery leader (both would send the same calls), and with
no leader it takes the delivery role for its run and mirrors every bridge's missing calls once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bridge.config import load_config
from bridge.domain.commands import CallType, CrmFinish, CrmRegister
from bridge.journal import AsyncJournal
from bridge.leadership.lease import Lease, LeaseTiming, Role
from bridge.leadership.roles import portal_of
from bridge.sim.bitrix24 import Bitrix24Simulator
from tests.eventually import eventually

MSK = timezone(timedelta(hours=3))
START = datetime.now(MSK).replace(microsecond=0) - timedelta(hours=1)


def write_config(path: Path, webhook: str, pg_url: str) -> Path:
    path.write_text(
        f"""
[asterisk]
ari_url = "http://127.0.0.1:9"   # no PBX: replay must not need one
ari_password = "ari-secret"
ami_secret = "ami-secret"

[bitrix24]
webhook_url = "{webhook}"
events = "off"

[journal]
url = "{pg_url}"
password_env = "B24_TEST_PG_PASSWORD"
bridge_id = "office-c"
""",
        encoding="utf-8",
    )
    return path


async def run(config: Path, *args: str) -> tuple[int, str, str]:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "replay", *args, "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "250", "TERM": "dumb"},
    )  # fmt: skip
    out, err = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


async def journal_offline_calls(pg_url: str) -> None:
    """Two bridges' calls that ended while Bitrix24 was away, left offline in the shared outbox."""
    for bridge, legs in (("office-a", ("a-1", "a-2")), ("office-b", ("b-1",))):
        journal = await AsyncJournal.open_postgres(pg_url, password=os.environ["B24_TEST_PG_PASSWORD"], bridge=bridge)
        for i, leg in enumerate(legs):
            phone = f"7916777{len(bridge) + i:04d}{leg[0] == 'a':d}"
            await journal.append(CrmRegister(leg, 11, phone, CallType.INCOMING, "74950000001", START, True))
            await journal.append(CrmFinish(leg, 11, 30 + i, "200"))
        await journal.take_offline(register_timeout=0)
        await journal.close()


@contextlib.asynccontextmanager
async def leader(config: Path, bridge: str) -> AsyncIterator[Lease]:
    """A bridge holding the portal's delivery role (its delivery itself is not needed here)."""
    settings = load_config(config)
    lease = Lease(settings.journal.url, Role.DELIVERY, portal_of(settings), bridge,
                  password=os.environ["B24_TEST_PG_PASSWORD"], timing=LeaseTiming(retry=0.1))  # fmt: skip
    task = asyncio.create_task(lease.run(asyncio.Event().wait))
    try:
        await eventually(lambda: lease.held, timeout=10)
        yield lease
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_replay_refuses_beside_a_delivery_leader_and_otherwise_mirrors_every_bridges_calls_once(
    tmp_path: Path, pg_url: str
) -> None:
    await journal_offline_calls(pg_url)
    async with Bitrix24Simulator() as sim:
        config = write_config(tmp_path / "bridge.toml", sim.webhook_url, pg_url)
        async with leader(config, "office-a"):
            code, _, err = await run(config)
            assert code == 2
            assert "bridge office-a is the portal's delivery leader" in err and "Traceback" not in err
            assert sim.state()["calls"] == [], "nothing was sent beside the leader"
            code, out, _ = await run(config, "--dry-run")  # a dry run sends nothing: it may look
            assert code == 0 and "would send: 3" in out

        code, out, err = await run(config)
        assert code == 0, err
        assert "replayed: 3" in out
        calls = {c["EXTERNAL_CALL_ID"]: c for c in sim.state()["calls"]}
        assert sorted(calls) == ["a-1", "a-2", "b-1"] and len(sim.state()["calls"]) == 3
        assert all(c["status"] == "finished" and c["finish_attempts"] == 1 for c in calls.values())
        assert calls["a-2"]["finish"]["DURATION"] == 31
        journal = await AsyncJournal.open_postgres(pg_url, password=os.environ["B24_TEST_PG_PASSWORD"])
        try:
            assert {c.crm_leg: c.state for c in await journal.calls()} == {"a-1": "done", "a-2": "done", "b-1": "done"}
        finally:
            await journal.close()

        async with leader(config, "office-b"):  # the role is free again after the replay: a bridge takes it
            pass
        code, out, _ = await run(config)
        assert code == 0 and "Nothing to replay" in out
        assert len(sim.state()["calls"]) == 3
