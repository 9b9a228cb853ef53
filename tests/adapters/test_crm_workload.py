"""Open leads / deals per employee for ``workload``, counted against the Bitrix24 simulator: only who a workload
needs, from ``total``, cached for the TTL, refreshed in the background; a refused count keeps the last figures."""

from __future__ import annotations

from structlog.testing import capture_logs

from bridge.config import Bitrix24Settings, Secret
from bridge.crm.client import Bitrix24Client
from bridge.crm.workload import Workload, counted
from bridge.domain.scheme import Distribution, Employee, LeadDistribution, LeadMode, LeadRule, Plan, QueueGroup
from bridge.sim.bitrix24 import Bitrix24Simulator
from tests.domain.builders import STAFF
from tests.eventually import eventually

PLAN = Plan(
    lines={},
    queues={
        "q": QueueGroup("q", ("1001", "1002"), Distribution.WORKLOAD, workload_of="deals"),
        "plain": QueueGroup("plain", ("1003", "1004")),
    },
    menus={},
    employees={ext: Employee(ext, int(ext) - 990) for ext in ("1001", "1002", "1003", "1004")},  # the sim's 11..14
    lead_distributions={
        "w": LeadDistribution("w", ("1002",), LeadMode.WORKLOAD, rules=(LeadRule((), ("1003",)),)),
        "rr": LeadDistribution("rr", ("1004",)),
    },
)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_only_what_a_workload_needs_is_counted() -> None:
    assert counted(PLAN) == {"leads": {"1002", "1003"}, "deals": {"1001", "1002"}}
    assert counted(Plan(lines={}, queues={}, menus={}, employees=STAFF)) == {"leads": set(), "deals": set()}


async def test_counts_come_from_total_are_cached_and_a_refused_count_keeps_the_last() -> None:
    async with Bitrix24Simulator() as sim:
        crm = sim.core.crm
        for user, status in ((12, "NEW"), (12, "IN_PROCESS"), (12, "JUNK"), (13, "NEW")):
            crm.add_lead(f"7495{len(crm.entities['LEAD']):07d}", user, status)
        client = Bitrix24Client(Bitrix24Settings(webhook_url=Secret(sim.webhook_url)), retry_attempts=1)
        clock = Clock()
        workload = Workload(client, lambda: PLAN, ttl=60.0, clock=clock)
        try:
            assert workload.counts("leads") == {}, "nothing counted yet: a call does not wait"
            await eventually(lambda: workload.counts("leads") == {"1002": 2, "1003": 1})
            await eventually(lambda: workload.counts("deals") == {"1001": 0, "1002": 0})  # the seeded deal is 13's
            requests = len(sim.state()["requests"])
            crm.add_lead("74950000099", 13)
            assert workload.counts("leads") == {"1002": 2, "1003": 1}, "cached for the TTL"
            assert len(sim.state()["requests"]) == requests
            clock.now = 61.0
            await eventually(lambda: workload.counts("leads") == {"1002": 2, "1003": 2})
            sim.set_scopes({"telephony", "user"})
            clock.now = 122.0
            with capture_logs() as logs:
                await workload.refresh()
            assert workload.counts("leads") == {"1002": 2, "1003": 2}
            assert any(e["event"] == "workload.failed" and "insufficient_scope" in e["error"] for e in logs)
        finally:
            await workload.close()
            await client.close()
