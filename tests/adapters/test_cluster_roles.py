"""The daemon's view of its cluster roles on a real PostgreSQL: rows for /status and /healthz naming the holder."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from bridge.config import Settings, parse_settings
from bridge.leadership import LeaseTiming
from bridge.leadership.roles import ClusterRoles, portal_of
from tests.eventually import eventually
from tests.test_config import example_data


def settings(pg_url: str, tmp_path: Path, bridge: str, *, standby: bool = True) -> Settings:
    data = example_data()
    data["journal"] = {"url": pg_url, "password_env": "B24_TEST_PG_PASSWORD", "bridge_id": bridge}
    if standby:
        data["cluster"] = {"standby": True, "pbx_id": "office-1"}
    return parse_settings(data, path=tmp_path / "bridge.toml", env=dict(os.environ))


async def test_sqlite_bridges_compete_for_nothing(tmp_path: Path) -> None:
    roles = ClusterRoles(parse_settings(example_data(), path=tmp_path / "bridge.toml", env={}))
    assert roles.delivery is None and roles.pbx is None and roles.delivers and roles.links() == {}
    ran: list[str] = []

    async def work() -> None:
        ran.append("ran")

    await roles.deliver(work)
    await roles.hold_pbx(work)
    assert ran == ["ran", "ran"]


async def test_two_bridges_show_one_leader_per_role_and_the_holder(pg_url: str, tmp_path: Path) -> None:
    fast = LeaseTiming(retry=0.1, probe=0.5)
    a = ClusterRoles(settings(pg_url, tmp_path, "office-1-a"), timing=fast)
    b = ClusterRoles(settings(pg_url, tmp_path, "office-1-b"), timing=fast)
    assert a.delivery is not None and a.delivery.scope == portal_of(settings(pg_url, tmp_path, "x")) != ""
    forever = asyncio.Event()
    tasks = [asyncio.create_task(a.deliver(forever.wait)), asyncio.create_task(a.hold_pbx(forever.wait))]
    try:
        await eventually(lambda: a.describe() == {"delivery": "leader", "pbx": "leader"})
        tasks += [asyncio.create_task(b.deliver(forever.wait)), asyncio.create_task(b.hold_pbx(forever.wait))]
        for role in ("pbx role", "delivery role"):  # each waiter learns the holder on its own retry
            await eventually(lambda role=role: role in b.links() and "held by office-1-a" in b.links()[role].detail)
        assert b.describe() == {"delivery": "standby", "pbx": "standby"} and not b.delivers and a.delivers
        rows = a.links()
        assert rows["delivery role"].up and rows["delivery role"].detail == "office-1-a: leader"
        assert b.links()["delivery role"].detail == "office-1-b: standby (held by office-1-a)"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
