"""Lead distribution and workload against both simulators: a missed call from an unknown number creates a lead in
Bitrix24, and the bridge hands it (after the finish) to the manager its distribution picks, who gets a
notification and the callback task; workload queues ring the member with the fewest open leads first; evenly's
counts survive a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bridge.domain.scheme import Availability
from bridge.sim.asterisk import Answer, NeverAnswer
from bridge.sim.stage import Stage, stage
from bridge.sim.verdict import INCOMING, MISSED, Expect
from tests.eventually import eventually
from tests.integration.daemon_support import agents_rung, mirrored

LEADS = "74951112277"
"""A line whose unknown callers' leads are distributed; its calls ring 1006, who never answers."""
EVENLY = "74951112288"


def with_leads(mode: str, **extra: Any) -> Any:
    def tweak(data: dict[str, Any]) -> None:
        data["bitrix24"]["workload_ttl"] = 0.5  # the leads each test adds are counted soon after
        data["lead_distribution"] = {
            "sales_leads": {
                "managers": ["1004", "1001", "1002"],
                "mode": mode,
                "rules": [{"name": "St Petersburg", "when": "region:spb", "then": "employee:1003"}],
                **extra,
            }
        }
        data["lines"][LEADS] = {
            "name": "Leads", "default_ext": "1005", "missed_task": True, "lead_distribution": "sales_leads",
            "rules": [{"when": "always", "then": "employee:1006"}],
        }  # fmt: skip

    return tweak


def lead_of(s: Stage, phone: str) -> dict[str, Any]:
    leads = [lead for lead in s.crm.state()["leads"] if phone in str(lead["PHONE"])]
    assert len(leads) == 1, leads
    return leads[0]


async def away_known(s: Stage) -> None:
    """1004 is on leave in Bitrix24: wait until the daemon has read that."""
    await eventually(lambda: s.daemon.dispatcher.availability.of("1004") is Availability.ABSENT)


async def missed_call(s: Stage, phone: str) -> None:
    s.pbx.set_party("1006", NeverAnswer())
    call = await s.pbx.place_inbound_call(LEADS, phone, hangup_after=1.0)
    await asyncio.wait_for(call.ended(), 20)


async def handed_to(s: Stage, phone: str, user: int) -> None:
    """Bitrix24 holds the missed call (finished for the line's owner, 15), its lead now assigned to ``user``, who
    has the task and a notification about it."""
    await mirrored(s, Expect(phone, INCOMING, 15, MISSED, shown_to=frozenset({16}), task_for=user))

    def assigned() -> bool:
        lead = lead_of(s, phone)
        assert lead["ASSIGNED_BY_ID"] == str(user), lead
        notes = [n for n in s.crm.state()["notifications"] if phone in n["MESSAGE"]]
        assert [n["USER_ID"] for n in notes] == [user], notes
        return True

    await eventually(assigned)


async def test_round_robin_skips_the_absent_and_a_rule_sends_a_region_to_its_manager(tmp_path: Path) -> None:
    async with stage(tmp_path, tweak=with_leads("round_robin")) as s:
        await away_known(s)
        await missed_call(s, "79990001001")
        await handed_to(s, "79990001001", 11)  # 1004 is on leave: 1001 is next
        await missed_call(s, "78120001002")
        await handed_to(s, "78120001002", 13)  # St Petersburg's rule
        await missed_call(s, "79990001003")
        await handed_to(s, "79990001003", 12)  # round robin goes on after 1001


async def test_workload_gives_the_lead_to_the_manager_with_the_fewest_open_leads(tmp_path: Path) -> None:
    async with stage(tmp_path, tweak=with_leads("workload")) as s:
        crm = s.crm.core.crm
        for user, status in ((11, "NEW"), (11, "IN_PROCESS"), (12, "NEW"), (12, "NEW"), (12, "NEW")):
            crm.add_lead(f"7000000{user}{len(crm.entities['LEAD'])}", user, status)
        for status in ("CONVERTED", "JUNK", "CONVERTED"):  # closed leads are not workload
            crm.add_lead(f"7000001{len(crm.entities['LEAD'])}", 11, status)
        counts = {"1001": 2, "1002": 3, "1003": 0, "1004": 0}  # 1003: St Petersburg's rule
        await eventually(lambda: s.daemon.dispatcher.workload.counts("leads") == counts)
        await away_known(s)
        await missed_call(s, "79990001004")
        await handed_to(s, "79990001004", 11)  # 1004 has none but is on leave; 1001 has 2 open, 1002 has 3


async def test_a_known_caller_keeps_their_manager_and_no_lead_is_made(tmp_path: Path) -> None:
    async with stage(tmp_path, tweak=with_leads("round_robin")) as s:
        await missed_call(s, "+7 926 000-00-04")  # Irina Belova, 1001's contact
        await mirrored(s, Expect("79260000004", INCOMING, 11, MISSED, shown_to=frozenset({16}), task_for=11))
        assert s.crm.state()["leads"] == []
        assert s.crm.state()["notifications"] == []


def with_queue(distribution: str) -> Any:
    def tweak(data: dict[str, Any]) -> None:
        data["bitrix24"]["workload_ttl"] = 0.5
        data["queues"]["trio"] = {"members": ["1001", "1002", "1003"], "distribution": distribution,
                                  "rings_per_member": 1, "final": "hangup"}  # fmt: skip
        data["lines"][EVENLY] = {"name": "Trio", "default_ext": "1005", "rules": [{"when": "always",
                                 "then": "queue:trio"}]}  # fmt: skip

    return tweak


async def test_workload_queue_rings_the_member_with_the_fewest_open_leads_first(tmp_path: Path) -> None:
    async with stage(tmp_path, tweak=with_queue("workload")) as s:
        crm = s.crm.core.crm
        for user in (11, 11, 12):
            crm.add_lead(f"7000002{len(crm.entities['LEAD'])}", user)
        await eventually(lambda: s.daemon.dispatcher.workload.counts("leads") == {"1001": 2, "1002": 1, "1003": 0})
        s.pbx.set_party("1003", Answer(after=0.1))
        call = await s.pbx.place_inbound_call(EVENLY, "79990001005", hangup_after_answer=0.5)
        await asyncio.wait_for(call.ended(), 20)
        assert agents_rung(s) == ["1003"]


async def test_evenly_counts_survive_a_restart(tmp_path: Path) -> None:
    async with stage(tmp_path, tweak=with_queue("evenly")) as s:
        s.pbx.set_party("1001", Answer(after=0.1))
        call = await s.pbx.place_inbound_call(EVENLY, "79990001006", hangup_after_answer=0.5)
        await asyncio.wait_for(call.ended(), 20)
        assert agents_rung(s) == ["1001"]
        await eventually(lambda: s.daemon.dispatcher.answered_today() == {"1001": 1})
        await s.stop_daemon()
        await s.start_daemon()
        assert s.daemon.dispatcher.answered_today() == {"1001": 1}, "the restart kept today's answered calls"
        s.pbx.set_party("1002", Answer(after=0.1))
        call = await s.pbx.place_inbound_call(EVENLY, "79990001007", hangup_after_answer=0.5)
        await asyncio.wait_for(call.ended(), 20)
        assert agents_rung(s) == ["1001", "1002"], "1001 answered one already: 1002 rings first"


async def test_two_unknown_callers_missed_at_once_go_to_two_managers(tmp_path: Path) -> None:
    async with stage(tmp_path, tweak=with_leads("round_robin")) as s:
        await away_known(s)
        s.pbx.set_party("1006", NeverAnswer())
        first = await s.pbx.place_inbound_call(LEADS, "79990001021", hangup_after=1.0)
        second = await s.pbx.place_inbound_call(LEADS, "79990001022", hangup_after=1.5)
        await asyncio.wait_for(asyncio.gather(first.ended(), second.ended()), 20)
        await handed_to(s, "79990001021", 11)
        await handed_to(s, "79990001022", 12)  # it started before the first one's lead went to 1001


async def test_workload_counts_a_lead_it_handed_over_until_the_next_count(tmp_path: Path) -> None:
    def slow_recount(data: dict[str, Any]) -> None:
        with_leads("workload")(data)
        data["bitrix24"]["workload_ttl"] = 600.0

    async with stage(tmp_path, tweak=slow_recount) as s:
        await eventually(lambda: s.daemon.dispatcher.workload.counts("leads") == {"1001": 0, "1002": 0, "1003": 0,
                                                                                  "1004": 0})  # fmt: skip
        await away_known(s)
        await missed_call(s, "79990001031")
        await handed_to(s, "79990001031", 11)
        await missed_call(s, "79990001032")
        await handed_to(s, "79990001032", 12)  # 1001 has one now, though Bitrix24 is not asked again for 600 s
