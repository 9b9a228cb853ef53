"""``employees.require_online`` against the Bitrix24 simulator: who Bitrix24 shows offline is skipped, read in the
same cached batch as the absences; when Bitrix24 cannot say (no ``user`` scope, unreachable) nobody is skipped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from bridge.crm.directory import Directory
from bridge.crm.telephony import Telephony
from bridge.domain.scheme import Availability
from bridge.sim.bitrix24 import Bitrix24Simulator
from tests.adapters.test_crm_directory import FakeClock, client_for, requests_for

EXTS = ["1001", "1002", "1003", "1004", "1005"]


@pytest.fixture
async def sim() -> AsyncIterator[Bitrix24Simulator]:
    async with Bitrix24Simulator() as simulator:
        yield simulator


def online_directory(telephony: Telephony, clock: FakeClock, minutes: float = 24) -> Directory:
    return Directory(telephony, {}, True, refresh=300, availability_ttl=30, clock=clock, time_tracking=False,
                     require_online=True, online_minutes=minutes)  # fmt: skip


async def test_user_get_shows_is_online_and_last_activity_in_the_portal_zone(sim: Bitrix24Simulator) -> None:
    sim.set_presence(12, 60)
    async with await client_for(sim) as client:
        users = {u["ID"]: u for u in await Telephony(client).user_get_all({"ACTIVE": True})}
    assert (users["11"]["IS_ONLINE"], users["12"]["IS_ONLINE"]) == ("Y", "N")
    seen = datetime.fromisoformat(users["12"]["LAST_ACTIVITY_DATE"])
    assert seen.utcoffset() == timedelta(hours=3)
    assert abs(datetime.now(UTC) - seen - timedelta(minutes=60)) < timedelta(minutes=1)


async def test_offline_and_long_idle_agents_are_reported_in_the_same_batch(sim: Bitrix24Simulator) -> None:
    sim.set_presence(12, 60)  # IS_ONLINE N
    sim.set_presence(13, 10)  # IS_ONLINE Y, but idle longer than this site allows
    clock = FakeClock()
    async with await client_for(sim) as client:
        directory = online_directory(Telephony(client), clock, minutes=5)
        await directory.refresh()
        before = requests_for(sim, "batch")
        facts = await directory.availability(EXTS)
        assert facts == {"1002": Availability.OFFLINE, "1003": Availability.OFFLINE, "1004": Availability.ABSENT}
        assert requests_for(sim, "batch") == before + 1, "online status is read in the absences' request"
        sim.set_presence(12, 0)
        assert await directory.crm_availability("1002") is Availability.OFFLINE, "cached for the TTL"
        clock.now += 31
        assert await directory.crm_availability("1002") is None
        assert requests_for(sim, "batch") == before + 2


async def test_without_require_online_nobody_is_skipped_as_offline(sim: Bitrix24Simulator) -> None:
    sim.set_presence(12, 600)
    async with await client_for(sim) as client:
        directory = Directory(Telephony(client), {}, True, refresh=300, availability_ttl=30, time_tracking=False)
        await directory.refresh()
        assert await directory.availability(EXTS) == {"1004": Availability.ABSENT}


async def test_an_app_user_without_the_user_scope_skips_nobody_and_says_so_once(sim: Bitrix24Simulator) -> None:
    sim.set_presence(12, 600)
    clock = FakeClock()
    async with await client_for(sim) as client:
        directory = online_directory(Telephony(client), clock)
        await directory.refresh()
        sim.deny_scopes("user", "user_brief", "user_basic")
        with capture_logs() as logs:
            assert await directory.availability(EXTS) == {"1004": Availability.ABSENT}
            clock.now += 31
            assert await directory.availability(EXTS) == {"1004": Availability.ABSENT}
    unknown = [e for e in logs if e["event"] == "directory.online_unknown"]
    assert len(unknown) == 1 and unknown[0]["code"] == "insufficient_scope"


async def test_when_bitrix24_is_unreachable_an_agent_it_showed_offline_is_not_skipped(
    sim: Bitrix24Simulator,
) -> None:
    sim.set_presence(12, 600)
    clock = FakeClock()
    async with await client_for(sim, attempts=1) as client:
        directory = online_directory(Telephony(client), clock)
        await directory.refresh()
        assert await directory.availability(EXTS) == {"1002": Availability.OFFLINE, "1004": Availability.ABSENT}
        sim.set_fault(error_rate=1.0, error_kinds=("500",))
        with capture_logs() as logs:
            for _ in range(2):
                clock.now += 31
                facts = await directory.availability(EXTS)
                assert facts == {"1004": Availability.ABSENT}, "absences are kept, the offline mark is not"
            sim.clear_faults()
            clock.now += 31
            assert await directory.crm_availability("1002") is Availability.OFFLINE
    events = [e["event"] for e in logs if e["event"].startswith("directory.online")]
    assert events == ["directory.online_unknown", "directory.online_known"]
