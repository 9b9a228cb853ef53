"""One delivery cycle's requests: full batches, statistics checks riding along with operations that need none.

The bucket counts requests, not commands, so the least number of requests is the aim. The first request of a
cycle carries the statistics checks of the doubtful chains (at most 50) and fills the room left with chains that
need no check; the chains a check found absent join the others, and they go out 50 commands to a request. While
the journal has more than this cycle holds, a last batch that is not full waits for the next cycle, which tops
it up (a chain found absent is remembered until it is sent, so it is not checked twice).

Before every request the operations in it are marked ``sent`` (a commit, not an fsync: see
:mod:`bridge.journal.store` for why a power cut cannot make that send a second one).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import structlog

from bridge.crm.client import Bitrix24Client
from bridge.crm.envelope import BatchResult
from bridge.crm.errors import CrmError
from bridge.delivery.access import DENIED_ERROR, StatisticsAccess, finish_users
from bridge.delivery.check import never_left, statistics_command, statistics_row
from bridge.delivery.hooks import DeliveryObserver
from bridge.delivery.plan import Chain, check_key, fill, plan_batch
from bridge.delivery.settle import Settler
from bridge.journal import AsyncJournal, PendingOp

log = structlog.get_logger(__name__)

SETTLE_GROUP = 10
"""At most this many operations settled in one commit (more if one chain is longer) before the PBX's events get
their turn."""
ABSENT_MEMORY = 10_000
"""At most this many calls remembered as checked and absent (they are normally sent in the next cycle)."""


class Sender:
    def __init__(
        self,
        journal: AsyncJournal,
        client: Bitrix24Client,
        settler: Settler,
        observer: DeliveryObserver,
        batch_limit: int,
        access: StatisticsAccess,
    ) -> None:
        self.journal = journal
        self.access = access
        self.client = client
        self.settler = settler
        self.observer = observer
        self.batch_limit = batch_limit
        self._absent: dict[str, int] = {}
        """Calls the statistics did not have, with their chains' attempts then: valid while nothing was sent."""

    async def send(self, chains: list[Chain], *, more_waiting: bool) -> None:
        """Check what is doubtful and send the rest, in as few requests as the rules allow. ``more_waiting``: the
        journal holds more than ``chains`` (a batch that is not full may wait for the next cycle)."""
        checks = [c for c in chains if c.needs_check() and not self._known_absent(c)]
        doubtful = {id(c) for c in checks}
        clean = [c for c in chains if id(c) not in doubtful]
        checks = await self._screen(checks)
        checks = checks[: self.batch_limit]  # more waits for the next cycle
        requests = 0
        while checks or clean:
            sends, rest = fill(clean, self.batch_limit - len(checks))
            checks = self._make_room(checks, sends, rest)
            if not checks and more_waiting and requests and sum(c.size for c in sends) < self.batch_limit:
                return  # the next cycle tops this batch up
            clean = rest
            clean += await self._request(checks, sends)
            checks = []
            requests += 1

    async def _screen(self, checks: list[Chain]) -> list[Chain]:
        """The doubtful chains whose statistics check can be trusted (see :mod:`bridge.delivery.access`); the others
        are parked. While the access cannot be learned, they all wait."""
        if not checks:
            return checks
        try:
            await self.access.ensure(self.client)
            await self.access.look_for(self.client, {u for chain in checks for u in finish_users(chain)})
        except CrmError as exc:
            async with self.journal.transaction():
                for chain in checks:
                    await self.settler.retry(chain.head, f"statistics access not known: {exc}", exc.code, sent=False)
            return []
        kept: list[Chain] = []
        async with self.journal.transaction():
            for chain in checks:
                if self.access.trusted(finish_users(chain)):
                    kept.append(chain)
                else:
                    await self.park(chain)
        return kept

    async def park(self, chain: Chain) -> None:
        """Park a doubtful chain whose check cannot be trusted: its first register or finish fails for good (what
        needs it fails with it), so nothing that may already be in Bitrix24 goes again."""
        reason = self.access.reason(finish_users(chain))
        await self.settler.fail(next((op for op in chain.ops if op.kind in ("register", "finish")), chain.head), reason)

    def _make_room(self, checks: list[Chain], sends: list[Chain], rest: list[Chain]) -> list[Chain]:
        """When the checks leave room that no chain fits, leave some checks to the next cycle so that a chain fits
        and the batch is full (moves that chain from ``rest`` to ``sends``); returns the checks kept."""
        room = self.batch_limit - len(checks) - sum(c.size for c in sends)
        if not room or not checks:
            return checks
        for chain in rest:
            drop = chain.size - room
            if 0 < drop < len(checks):
                rest.remove(chain)
                sends.append(chain)
                return checks[:-drop]
        return checks

    def _known_absent(self, chain: Chain) -> bool:
        return chain.leg is not None and self._absent.get(chain.leg) == _attempts(chain)

    async def _request(self, checks: list[Chain], sends: list[Chain]) -> list[Chain]:
        """One batch: ``checks`` looked up, ``sends`` sent and settled. Returns the checked chains found absent."""
        sends = await self._claim(sends)
        plan = plan_batch(sends)
        if plan.unbuildable:
            async with self.journal.transaction():
                for op, reason in plan.unbuildable:
                    await self.settler.fail(op, f"cannot build the request: {reason}")
        commands = dict(plan.commands)
        for chain in checks:
            commands[check_key(chain)] = statistics_command(chain.leg or "")
        if not commands:
            return []
        ops = [op for chain in plan.chains for op in chain.ops]
        if ops:
            for chain in plan.chains:
                self._absent.pop(chain.leg or "", None)
        started = time.monotonic()
        try:
            batch = await self.client.batch(commands)
        except asyncio.CancelledError:
            async with self.journal.transaction():  # back in the queue at once; attempts > 0 makes the next try check
                for op in ops:
                    await self.journal.mark_failed(op.id, "cancelled while in flight", permanent=False)
            raise
        except CrmError as exc:
            self.observer.batch_sent(len(commands), time.monotonic() - started, ok=False)
            await self._failed(ops, checks, str(exc), exc.code, arrived=not never_left(exc))
            return []
        except Exception as exc:
            log.exception("delivery.error", commands=len(commands))
            await self._failed(ops, checks, f"{type(exc).__name__}: {exc}", "INTERNAL", arrived=True)
            return []
        self.observer.batch_sent(len(commands), time.monotonic() - started, ok=True)
        await self._settle(plan.chains, batch)
        if not checks:
            return []  # no empty transaction (a BEGIN and a COMMIT) for the usual batch without checks
        async with self.journal.transaction():
            return await self._checked(checks, batch)

    async def _claim(self, sends: list[Chain]) -> list[Chain]:
        """Mark the chains' operations ``sent``; keep the chains whose every operation this sender got. On a shared
        journal another sender may hold some (a leader that is going away): what this one got of such a chain goes
        back at once, never having left (each operation goes once, by one sender, in its call's order)."""
        ids = [op.id for chain in sends for op in chain.ops]
        if not ids:
            return sends
        got = set(await self.journal.mark_sent(ids))
        if len(got) == len(ids):
            return sends
        kept: list[Chain] = []
        async with self.journal.transaction():
            for chain in sends:
                if all(op.id in got for op in chain.ops):
                    kept.append(chain)
                    continue
                for op in chain.ops:
                    if op.id in got:
                        await self.journal.mark_failed(op.id, "held by another sender", permanent=False, arrived=False)
        log.warning("delivery.claimed_elsewhere", operations=len(ids) - len(got), note="another sender has them")
        return kept

    async def _settle(self, chains: list[Chain], batch: BatchResult) -> None:
        """Record the answers. SQLite: a few chains (up to :data:`SETTLE_GROUP` operations) to a commit, letting
        the PBX's events in between (settling 50 operations with their log lines at once would hold the event loop
        for milliseconds, and a commit per chain costs a write each). PostgreSQL: the whole answer in one commit of
        a few statements (each statement a round trip; the PBX's events still get their turn every
        :data:`SETTLE_GROUP` operations)."""
        group = SETTLE_GROUP if self.journal.dialect == "sqlite" else sys.maxsize
        done = 0
        try:
            while done < len(chains):
                end, ops = done, 0
                while end < len(chains) and (end == done or ops + chains[end].size <= group):
                    ops += chains[end].size
                    end += 1
                async with self.journal.transaction():
                    await self._settle_group(chains[done:end], batch, yielding=True)
                done = end  # only once committed: a cancel inside rolls the group back, settled again below
                if done < len(chains):
                    await asyncio.sleep(0)
        except asyncio.CancelledError:  # the answers are here: record them all before stopping
            async with self.journal.transaction():
                await self._settle_group(chains[done:], batch, yielding=False)
            raise

    async def _settle_group(self, chains: list[Chain], batch: BatchResult, *, yielding: bool) -> None:
        """Settle ``chains`` (inside the caller's transaction), their done marks written together at the end."""
        self.settler.collect()
        try:
            ops = 0
            for chain in chains:
                await self.settler.settle_chain(chain, batch)
                ops += chain.size
                if yielding and ops >= SETTLE_GROUP and chain is not chains[-1]:
                    ops = 0
                    await asyncio.sleep(0)
        finally:
            marks = self.settler.collected()
        await self.journal.mark_done_many(marks)

    async def _failed(
        self, ops: list[PendingOp], checks: list[Chain], reason: str, code: str, *, arrived: bool
    ) -> None:
        """The whole request failed: every op waits for its next try, every check too. A permanent error of the
        request itself (a revoked webhook, a scope) is not the operations' fault, so they are not parked."""
        async with self.journal.transaction():
            for op in ops:
                await self.settler.retry(op, reason, code, arrived=arrived)
            for chain in checks:
                await self.settler.retry(chain.head, f"statistics check failed: {reason}", code, sent=False)

    async def _checked(self, checks: list[Chain], batch: BatchResult) -> list[Chain]:
        absent: list[Chain] = []
        for chain in checks:
            key, leg = check_key(chain), chain.leg or ""
            if key not in batch.results and getattr(batch.errors.get(key), "code", "") == DENIED_ERROR:
                self.access.denied()
                await self.park(chain)
            elif key not in batch.results:
                error: Any = batch.errors.get(key)
                reason = f"statistics check failed: {error}" if error else "statistics check failed for this call"
                await self.settler.retry(chain.head, reason, getattr(error, "code", "CHECK_FAILED"), sent=False)
            elif (row := statistics_row(batch.results[key], leg)) is not None:
                await self.settler.present(chain, row)
            else:
                if len(self._absent) >= ABSENT_MEMORY:
                    self._absent.clear()
                self._absent[leg] = _attempts(chain)
                absent.append(chain)
        return absent


def _attempts(chain: Chain) -> int:
    return sum(op.attempts for op in chain.ops)
