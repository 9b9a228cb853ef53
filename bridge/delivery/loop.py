"""The process that drains the journal into Bitrix24.

One cycle: calls whose ``register`` is stuck past ``register_timeout`` go offline; up to 50 ready operations
(across calls, per call in order) are taken; those that may already have arrived are checked against the
statistics; the rest go out as ONE ``batch`` (paced by the client's shared bucket), a ``register`` and what
follows it linked through ``$result[...][CALL_ID]``; recordings are attached one by one after that.
Operations are marked ``sent`` (committed) just before the request leaves, so after ``kill -9`` nothing is
resent blindly: an operation that was (possibly) sent before is checked against the statistics first.

Retrying lives in the journal: what fails transiently waits with an exponential back-off in
``next_attempt_at``. Give Delivery a client built with ``retry_attempts=1``: a client-side retry of a batch
whose answer was lost would resend a ``register`` + ``finish`` without that check (a second finish, a
duplicate call). The bucket is shared per portal either way, so pacing is unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog

from bridge.config import Bitrix24Settings
from bridge.crm.client import MAX_BATCH, Bitrix24Client
from bridge.crm.errors import CrmError
from bridge.crm.telephony import Telephony
from bridge.delivery.check import find_in_statistics
from bridge.delivery.hooks import DeliveryObserver
from bridge.delivery.plan import Chain, chains_of, plan_batch, record_filename
from bridge.delivery.settle import Settler
from bridge.journal import Journal, PendingOp

log = structlog.get_logger(__name__)

RecordingLoader = Callable[[str], Awaitable[bytes | None]]
"""Recording name -> its bytes, or None when there is no such recording; may raise when unreachable."""

ERROR_PAUSE_MAX = 30.0


async def _no_recordings(_name: str) -> bytes | None:
    return None


class Delivery:
    """Drains ``journal`` into Bitrix24. ``clock`` must be the journal's (wall) clock; call :meth:`notify` after
    appending; run :meth:`run` as a task, cancel it on shutdown after :meth:`flush`."""

    def __init__(
        self,
        journal: Journal,
        client: Bitrix24Client,
        telephony: Telephony,
        settings: Bitrix24Settings,
        *,
        recording_loader: RecordingLoader | None = None,
        clock: Callable[[], float] = time.time,
        observer: DeliveryObserver | None = None,
        batch_limit: int = MAX_BATCH,
        retry_base: float = 2.0,
        retry_cap: float = 300.0,
    ) -> None:
        self.journal = journal
        self.client = client
        self.telephony = telephony
        self.settings = settings
        self.recording_loader = recording_loader or _no_recordings
        self.clock = clock
        self.observer = observer or DeliveryObserver()
        self.batch_limit = max(1, min(batch_limit, MAX_BATCH))
        self.settler = Settler(journal, self.observer, clock, retry_base, retry_cap)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._requeued = False

    def notify(self) -> None:
        """New operations were appended: look at the journal now."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled."""
        failures = 0
        while True:
            self._wake.clear()
            try:
                worked = await self.deliver_once()
                failures = 0
            except Exception:
                failures += 1
                pause = min(ERROR_PAUSE_MAX, 0.5 * 2**failures)
                log.exception("delivery.error", pause=pause)
                self._unstick()
                await asyncio.sleep(pause)
                continue
            if worked:
                continue
            due = self.journal.next_due(self.settings.register_timeout)
            timeout = None if due is None else max(0.0, due - self.clock())
            await self._wait_for_wake(timeout)

    def _unstick(self) -> None:
        """After an unexpected error nothing of ours is in flight: what is still ``sent`` goes back to the queue
        (its attempts stay counted, so it is checked before it is resent)."""
        with contextlib.suppress(Exception):
            self.journal.requeue_sent()

    async def _wait_for_wake(self, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def flush(self, timeout: float) -> bool:
        """Deliver what can go now, waiting for retries due within ``timeout`` s (for shutdown).

        True when nothing deliverable is left; False when time ran out first.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    if await self.deliver_once():
                        continue
                    due = self.journal.next_due(self.settings.register_timeout)
                    if due is None:
                        return True
                    wait = due - self.clock()
                    if loop.time() + wait > deadline:
                        return False
                    self._wake.clear()
                    await self._wait_for_wake(max(0.0, wait))
        except TimeoutError:
            return False

    async def deliver_once(self) -> bool:
        """One cycle; False when there was nothing to do."""
        async with self._lock:
            if not self._requeued:
                self._requeued = True
                count = self.journal.requeue_sent()
                if count:
                    log.warning("delivery.requeued", operations=count, reason="found in flight at start")
            for leg in self.journal.take_offline(self.settings.register_timeout):
                log.warning("crm.offline", crm_leg=leg, method="telephony.externalCall.register",
                            register_timeout=self.settings.register_timeout)  # fmt: skip
                self.observer.offline(leg)
            ops = self.journal.ready(self.batch_limit)
            if not ops:
                return False
            chains = chains_of(ops)
            to_send = await self._check([c for c in chains if not c.is_record])
            if to_send:
                await self._send(to_send)
            for chain in chains:
                if chain.is_record:
                    await self._attach(chain.head)
            return True

    async def _check(self, chains: list[Chain]) -> list[Chain]:
        """Settle the chains that already reached Bitrix24; return those still to send."""
        doubtful = [c for c in chains if c.needs_check()]
        if not doubtful:
            return chains
        legs = [c.leg for c in doubtful if c.leg is not None]
        try:
            found = await find_in_statistics(self.client, legs)
        except CrmError as exc:
            found = {}
            reason, code = f"statistics check failed: {exc}", exc.code
        else:
            reason, code = "statistics check failed for this call", "CHECK_FAILED"
        keep: list[Chain] = []
        doubtful_ids = {id(c) for c in doubtful}
        with self.journal.transaction():
            for chain in chains:
                if id(chain) not in doubtful_ids:
                    keep.append(chain)
                elif chain.leg not in found:
                    self.settler.retry(chain.head, reason, code, sent=False)
                elif (row := found[chain.leg]) is not None:
                    self.settler.present(chain, row)
                else:
                    keep.append(chain)
        return keep

    async def _send(self, chains: list[Chain]) -> None:
        plan = plan_batch(chains)
        with self.journal.transaction():
            for op, reason in plan.unbuildable:
                self.settler.fail(op, f"cannot build the request: {reason}")
        if not plan.commands:
            return
        ops = [op for chain in plan.chains for op in chain.ops]
        self.journal.mark_sent(plan.op_ids())
        started = time.monotonic()
        try:
            batch = await self.client.batch(plan.commands)
        except asyncio.CancelledError:
            with self.journal.transaction():  # back in the queue at once; attempts > 0 makes the next try check
                for op in ops:
                    self.journal.mark_failed(op.id, "cancelled while in flight", permanent=False)
            raise
        except CrmError as exc:
            self.observer.batch_sent(len(plan.commands), time.monotonic() - started, ok=False)
            self._requeue(ops, str(exc), exc.code)
            return
        except Exception as exc:
            log.exception("delivery.error", commands=len(plan.commands))
            self._requeue(ops, f"{type(exc).__name__}: {exc}", "INTERNAL")
            return
        self.observer.batch_sent(len(plan.commands), time.monotonic() - started, ok=True)
        with self.journal.transaction():
            for chain in plan.chains:
                self.settler.settle_chain(chain, batch)

    def _requeue(self, ops: list[PendingOp], reason: str, code: str) -> None:
        """The whole request failed: every op waits for its next try. A permanent error of the request itself
        (a revoked webhook, a scope) is not the operations' fault, so they are not parked: they wait, logged."""
        with self.journal.transaction():
            for op in ops:
                self.settler.retry(op, reason, code)

    async def _attach(self, op: PendingOp) -> None:
        cmd = op.command
        name = getattr(cmd, "recording", "")
        self.journal.mark_sent([op.id])
        try:
            content = await self.recording_loader(name)
        except Exception as exc:
            self.settler.retry(op, f"recording {name!r} could not be read: {type(exc).__name__}: {exc}", "RECORDING")
            return
        if not content:
            self.settler.fail(op, f"recording {name!r} not found")
            return
        try:
            file_id = await self.telephony.attach_record(op.call_id or "", record_filename(name), content)
        except CrmError as exc:
            self.settler.error(op, exc)
        except ValueError as exc:  # not wav/mp3, or empty
            self.settler.fail(op, str(exc))
        except Exception as exc:
            log.exception("delivery.error", crm_leg=op.crm_leg, method="telephony.externalCall.attachRecord")
            self.settler.retry(op, f"{type(exc).__name__}: {exc}", "INTERNAL")
        else:
            self.settler.done(op, {"FILE_ID": file_id})
