"""The employee directory against the Bitrix24 simulator: auto-mapping, configured overrides, supervisors,
the last good map on failure, and cached availability facts."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from bridge.config import Bitrix24Settings, Secret
from bridge.crm.client import Bitrix24Client
from bridge.crm.directory import Directory, dialable
from bridge.crm.telephony import Telephony
from bridge.domain.scheme import Availability, Employee, ToVoicemail
from bridge.sim.bitrix24 import Bitrix24Simulator
from tests.eventually import eventually

DEFAULT_SEED: dict[str, Any] = json.loads(
    (Path(__file__).parents[2] / "bridge/sim/bitrix24/default_seed.json").read_text(encoding="utf-8")
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def seed_with(**user_changes: dict[str, Any]) -> dict[str, Any]:
    """The default seed with some users' fields changed (keyed ``u<ID>``)."""
    seed = copy.deepcopy(DEFAULT_SEED)
    for user in seed["users"]:
        user.update(user_changes.get(f"u{user['ID']}", {}))
    return seed


async def client_for(sim: Bitrix24Simulator, attempts: int = 4) -> Bitrix24Client:
    return Bitrix24Client(Bitrix24Settings(webhook_url=Secret(sim.webhook_url)), retry_attempts=attempts,
                          retry_max_wait=0.01)  # fmt: skip


@pytest.fixture
async def sim() -> AsyncIterator[Bitrix24Simulator]:
    async with Bitrix24Simulator() as simulator:
        yield simulator


@pytest.fixture
async def telephony(sim: Bitrix24Simulator) -> AsyncIterator[Telephony]:
    client = await client_for(sim, attempts=1)
    async with client:
        yield Telephony(client)


def requests_for(sim: Bitrix24Simulator, method: str) -> int:
    return sum(1 for r in sim.state()["requests"] if r["method"] == method)


def test_dialable_keeps_the_plus_and_the_digits() -> None:
    assert dialable("+7 916 000-10-01") == "+79160001001"
    assert dialable("8 (495) 100-10-01") == "84951001001"
    assert dialable(None) == dialable("n/a") == ""
    assert dialable("+7 916 000-10-01 доб. 5") == "+79160001001", "an extension is not glued onto the number"
    assert dialable("8 916 000-10-01, 8 916 000-10-02") == "", "two numbers in one field are not one number"


async def test_auto_map_from_uf_phone_inner_with_mobiles_and_supervisors(telephony: Telephony) -> None:
    directory = Directory(telephony, {}, auto_map=True, refresh=300, availability_ttl=30)
    assert await directory.refresh() is True
    employees = directory.employees()
    assert sorted(employees) == ["1001", "1002", "1003", "1004", "1005", "1006"]  # 1007 is not active
    anna = employees["1001"]
    assert (anna.user_id, anna.name, anna.mobile) == (11, "Anna Ivanova", "+79160001001")
    # Sales (UF_HEAD 15 = ext 1005) for 11..14; the heads themselves go up to the Call centre, whose head
    # (the admin) has no extension.
    assert {ext: e.supervisor_ext for ext, e in employees.items()} == {
        "1001": "1005", "1002": "1005", "1003": "1005", "1004": "1005", "1005": "", "1006": "",
    }  # fmt: skip
    assert directory.user_for("1003") == 13 and directory.ext_for(13) == "1003"
    assert directory.user_for("1007") is None and directory.ext_for(17) is None


async def test_auto_map_reads_inner_numbers_as_portals_store_them_and_names_what_it_cannot_resolve() -> None:
    seed = seed_with(
        u13={"UF_PHONE_INNER": " 10 03 "},  # typed with spaces
        u14={"UF_PHONE_INNER": 1004},  # written through REST as a number
        u16={"UF_PHONE_INNER": "1005"},  # the same inner number as user 15
        u12={"UF_PHONE_INNER": "1002&PJSIP/9"},  # dial-string characters
        u17={"UF_PHONE_INNER": "1009"},  # an inactive user
    )
    wanted = {"1003": ["queues.sales.members"], "1002": ["queues.sales.members"], "1009": ["lines.1.default_ext"]}
    async with Bitrix24Simulator(seed=seed) as sim, await client_for(sim, attempts=1) as client:
        directory = Directory(Telephony(client), {}, auto_map=True, wanted=wanted)
        with capture_logs() as logs:
            await directory.refresh()
            await directory.refresh()
            employees = directory.employees()
            assert {ext: e.user_id for ext, e in employees.items()} == {"1001": 11, "1003": 13, "1004": 14, "1005": 15}
            sim.core.directory.users[17].active = True  # the inactive user comes back
            await directory.refresh()
    events = [
        (e["event"], e.get("user_id", e.get("extensions")))
        for e in logs
        if e["event"].startswith("directory.") and e["event"] != "directory.refreshed"
    ]
    assert events == [
        ("directory.bad_extension", 12), ("directory.duplicate_extension", 16),
        ("directory.unresolved", ["1002", "1009"]),  # once for two refreshes that found the same
        ("directory.bad_extension", 12), ("directory.duplicate_extension", 16),
        ("directory.bad_extension", 12), ("directory.duplicate_extension", 16),
        ("directory.unresolved", ["1002"]),
    ]  # fmt: skip
    first = next(e for e in logs if e["event"] == "directory.unresolved")
    assert first["named_by"] == {"1002": ["queues.sales.members"], "1009": ["lines.1.default_ext"]}
    assert "1002&PJSIP" not in str(logs), "the junk value itself is not logged"


async def test_configured_entries_win_and_get_their_blanks_filled(telephony: Telephony) -> None:
    configured = {
        "2002": Employee("2002", 12, on_busy=ToVoicemail()),  # user 12 also has UF_PHONE_INNER 1002
        "1003": Employee("1003", 11, name="Anna at the front desk", supervisor_ext="1006"),  # takes over ext 1003
    }
    directory = Directory(telephony, configured, auto_map=True, refresh=300, availability_ttl=30)
    before = directory.employees()
    assert before == configured  # the configuration alone until the first refresh
    await directory.refresh()
    employees = directory.employees()
    assert "1002" not in employees and "1001" not in employees  # users 12 and 11 are configured elsewhere
    boris = employees["2002"]
    assert (boris.user_id, boris.name, boris.mobile, boris.supervisor_ext) == (
        12, "Boris Petrov", "+79160001002", "1005"
    )  # fmt: skip
    assert boris.on_busy == ToVoicemail()
    front = employees["1003"]
    assert (front.user_id, front.name, front.supervisor_ext) == (11, "Anna at the front desk", "1006")
    assert directory.ext_for(12) == "2002" and directory.ext_for(13) is None


async def test_a_configured_employee_bitrix24_has_dismissed_is_marked_and_logged_once(telephony: Telephony) -> None:
    configured = {"1007": Employee("1007", 17), "1001": Employee("1001", 11), "1099": Employee("1099", 99)}
    directory = Directory(telephony, configured, auto_map=False, refresh=300, availability_ttl=30)
    with capture_logs() as logs:
        await directory.refresh()
        await directory.refresh()
    employees = directory.employees()
    assert {ext: e.dismissed for ext, e in employees.items()} == {"1007": True, "1001": False, "1099": True}
    said = [e for e in logs if e["event"] == "directory.dismissed"]
    assert [e["employees"] for e in said] == [{"1007": 17, "1099": 99}], "once, naming ext and user"


async def test_without_auto_map_only_configured_extensions_exist(telephony: Telephony) -> None:
    directory = Directory(telephony, {"501": Employee("501", 13)}, auto_map=False, refresh=300, availability_ttl=30)
    await directory.refresh()
    assert list(directory.employees()) == ["501"]
    assert directory.employees()["501"].supervisor_ext == ""  # the head (15) has no extension in this map


async def test_a_failed_refresh_keeps_the_last_good_map(sim: Bitrix24Simulator, telephony: Telephony) -> None:
    directory = Directory(telephony, {}, auto_map=True, refresh=300, availability_ttl=30)
    await directory.refresh()
    good = directory.employees()
    sim.set_fault(error_rate=1.0, error_kinds=("500",))
    with capture_logs() as logs:
        assert await directory.refresh() is False
    assert directory.employees() == good
    assert [e["reason"] for e in logs if e["event"] == "directory.stale"] == ["refresh failed"]


async def test_a_refresh_with_far_fewer_users_is_kept_out_until_it_repeats(telephony: Telephony) -> None:
    small = copy.deepcopy(DEFAULT_SEED)
    small["users"] = [u for u in small["users"] if u["ID"] in (1, 11)]
    directory = Directory(telephony, {}, auto_map=True, refresh=300, availability_ttl=30)
    await directory.refresh()
    good = directory.employees()
    async with Bitrix24Simulator(seed=small) as shrunk:
        client = await client_for(shrunk)
        async with client:
            directory.telephony = Telephony(client)  # the portal suddenly answers with 2 users instead of 7
            with capture_logs() as logs:
                assert await directory.refresh() is False
                assert await directory.refresh() is False
            assert directory.employees() == good
            assert {e["reason"] for e in logs if e["event"] == "directory.stale"} == {"fewer users than before"}
            assert await directory.refresh() is True  # the third time in a row it is believed
    assert list(directory.employees()) == ["1001"]


async def test_run_refreshes_periodically(sim: Bitrix24Simulator, telephony: Telephony) -> None:
    directory = Directory(telephony, {}, auto_map=True, refresh=0.05, availability_ttl=30)
    runner = asyncio.create_task(directory.run())
    try:
        await eventually(lambda: requests_for(sim, "user.get") >= 3)
        assert "1001" in directory.employees()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_run_after_a_refresh_waits_for_the_next_one(sim: Bitrix24Simulator, telephony: Telephony) -> None:
    directory = Directory(telephony, {}, auto_map=True, refresh=1.0, availability_ttl=30)
    assert await directory.refresh()  # the daemon's start-up
    runner = asyncio.create_task(directory.run())
    try:
        await asyncio.sleep(0.2)
        assert requests_for(sim, "user.get") == 1
        await eventually(lambda: requests_for(sim, "user.get") == 2)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_availability_absent_and_not_clocked_in_cached_for_the_ttl() -> None:
    seed = seed_with(u12={"TIMEMAN_STATUS": "CLOSED"}, u13={"TIMEMAN_STATUS": "PAUSED"})
    clock = FakeClock()
    async with Bitrix24Simulator(seed=seed) as sim:
        client = await client_for(sim)
        async with client:
            directory = Directory(Telephony(client), {}, True, refresh=300, availability_ttl=30, clock=clock)
            await directory.refresh()
            facts = await directory.availability(["1001", "1002", "1003", "1004", "9999"])
            assert facts == {
                "1002": Availability.NOT_CLOCKED_IN,
                "1003": Availability.NOT_CLOCKED_IN,
                "1004": Availability.ABSENT,  # on leave (and clocked out)
            }
            assert requests_for(sim, "batch") == 1  # every user in one request
            assert await directory.crm_availability("1001") is None
            assert await directory.crm_availability("1004") is Availability.ABSENT
            assert requests_for(sim, "batch") == 1  # still cached
            clock.now += 31
            assert await directory.crm_availability("1002") is Availability.NOT_CLOCKED_IN
            assert requests_for(sim, "batch") == 2


async def test_availability_without_time_tracking_only_knows_absences(telephony: Telephony) -> None:
    directory = Directory(telephony, {}, True, refresh=300, availability_ttl=30, time_tracking=False)
    await directory.refresh()
    assert await directory.availability(["1001", "1004", "1005"]) == {"1004": Availability.ABSENT}


def seed_with_agents(count: int) -> dict[str, Any]:
    """The default seed and ``count`` more employees, extensions 5000.. (IDs 500..)."""
    seed = copy.deepcopy(DEFAULT_SEED)
    model = next(user for user in seed["users"] if user.get("UF_PHONE_INNER") == "1001")
    for n in range(count):
        seed["users"].append({**copy.deepcopy(model), "ID": 500 + n, "UF_PHONE_INNER": str(5000 + n),
                              "PERSONAL_MOBILE": "", "WORK_PHONE": ""})  # fmt: skip
    return seed


@pytest.mark.parametrize(("time_tracking", "requests"), [(False, 2), (True, 7)])
async def test_a_large_centres_availability_asks_for_many_agents_a_request(time_tracking: bool, requests: int) -> None:
    """Without time tracking one command asks for the absences of up to 250 agents (300 agents: 2 requests); with
    it, each agent needs a command of their own and a batch holds 49 of them (7 requests)."""
    async with Bitrix24Simulator(seed=seed_with_agents(300)) as sim:
        client = await client_for(sim)
        async with client:
            directory = Directory(
                Telephony(client), {}, True, refresh=300, availability_ttl=30, time_tracking=time_tracking
            )
            await directory.refresh()
            before = requests_for(sim, "batch")
            facts = await directory.availability([str(5000 + n) for n in range(300)])
            assert requests_for(sim, "batch") - before == requests
            assert len(directory.employees()) >= 300 and facts == {}


async def test_availability_when_bitrix24_is_down_keeps_what_it_knew(
    sim: Bitrix24Simulator, telephony: Telephony
) -> None:
    clock = FakeClock()
    directory = Directory(telephony, {}, True, refresh=300, availability_ttl=30, clock=clock)
    await directory.refresh()
    assert await directory.crm_availability("1004") is Availability.ABSENT
    clock.now += 60
    sim.set_fault(error_rate=1.0, error_kinds=("500",))
    with capture_logs() as logs:
        assert await directory.crm_availability("1004") is Availability.ABSENT
        assert await directory.crm_availability("1001") is None
    assert any(e["event"] == "directory.availability_failed" for e in logs)


async def test_the_employee_map_is_the_same_object_until_a_refresh_replaces_it(
    sim: Bitrix24Simulator, telephony: Telephony
) -> None:
    """The daemon builds one routing plan per map (shared by every call started meanwhile): the map a refresh
    replaced must be a new object, and the old one must not change under the calls that hold it."""
    directory = Directory(telephony, {}, True, refresh=300, availability_ttl=30)
    await directory.refresh()
    first = directory.employee_map()
    assert directory.employee_map() is first and "1001" in first
    held = dict(first)
    sim.core.directory.users[11].phone_inner = "1101"
    await directory.refresh()
    assert directory.employee_map() is not first and "1101" in directory.employee_map()
    assert dict(first) == held, "the map the earlier calls hold is unchanged"
