"""Open leads (or deals) per employee, for ``workload`` distribution: counted in Bitrix24, cached for ``ttl``.

A count is one page of ``crm.lead.list`` (``STATUS_SEMANTIC_ID`` P) or ``crm.deal.list`` (``CLOSED`` N) filtered
by ``ASSIGNED_BY_ID`` and read from ``total``; the employees of one kind go 50 to a ``batch``, through the client's
bucket (so counting takes its share of the request budget, at most once per ``ttl``). A call never waits for it:
:meth:`Workload.counts` answers from the cache at once and starts a refresh in the background when it is stale. An
employee not counted yet (or whose count failed) counts as 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog

from bridge.crm.builders import open_count_request
from bridge.crm.client import MAX_BATCH, Bitrix24Client
from bridge.crm.errors import CrmError
from bridge.domain.scheme import Distribution, LeadMode, Plan

log = structlog.get_logger(__name__)

KINDS = ("leads", "deals")


def counted(plan: Plan) -> dict[str, set[str]]:
    """Extensions whose open leads / deals some ``workload`` needs: workload queues' members, and every manager of a
    workload lead distribution."""
    need: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for queue in plan.queues.values():
        if queue.distribution is Distribution.WORKLOAD:
            need[queue.workload_of] |= set(queue.members)
    for dist in plan.lead_distributions.values():
        if dist.mode is LeadMode.WORKLOAD:
            need["leads"] |= {*dist.managers, *(ext for rule in dist.rules for ext in rule.managers)}
    return need


class Workload:
    def __init__(
        self,
        client: Bitrix24Client,
        plan: Callable[[], Plan],
        *,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.plan = plan
        self.ttl = ttl
        self.clock = clock
        self._counts: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
        self._fresh_until = float("-inf")
        self._refreshing: asyncio.Task[None] | None = None

    def counts(self, kind: str) -> dict[str, int]:
        """Extension -> open ``kind`` as last counted; starts a background refresh when the counts are stale."""
        if self.clock() >= self._fresh_until and self._refreshing is None:
            with contextlib.suppress(RuntimeError):  # no loop (a synchronous caller): the cache is all there is
                self._refreshing = asyncio.get_running_loop().create_task(self._refresh_once(), name="workload")
        return dict(self._counts[kind])

    def count_one(self, kind: str, ext: str) -> None:
        """``ext`` was just given one more (a lead the bridge handed over), until the next count."""
        self._counts[kind][ext] = self._counts[kind].get(ext, 0) + 1

    async def close(self) -> None:
        """Stop a refresh in progress (at shutdown, before the client closes)."""
        task, self._refreshing = self._refreshing, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _refresh_once(self) -> None:
        try:
            await self.refresh()
        finally:
            self._refreshing = None

    async def refresh(self) -> None:
        """Count again now (every kind some workload needs)."""
        plan = self.plan()
        self._fresh_until = self.clock() + self.ttl
        for kind, exts in counted(plan).items():
            users = {ext: plan.employees[ext].user_id for ext in sorted(exts) if ext in plan.employees}
            if users:
                await self._count(kind, users)

    async def _count(self, kind: str, users: dict[str, int]) -> None:
        exts = list(users)
        fresh: dict[str, int] = {}
        for start in range(0, len(exts), MAX_BATCH):
            chunk = exts[start : start + MAX_BATCH]
            try:
                batch = await self.client.batch({ext: open_count_request(kind, users[ext]) for ext in chunk})
            except CrmError as exc:
                log.warning("workload.failed", kind=kind, error=str(exc), note="the last counts stay in use")
                return
            for ext in chunk:
                if ext in batch.results:
                    rows = batch.results[ext]
                    fresh[ext] = batch.total.get(ext, len(rows) if isinstance(rows, list) else 0)
                elif ext in batch.errors:
                    log.warning("workload.failed", kind=kind, ext=ext, error=str(batch.errors[ext]))
        self._counts[kind].update(fresh)
        log.debug("workload.counted", kind=kind, counts=fresh)
