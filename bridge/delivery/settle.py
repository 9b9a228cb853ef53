"""Recording what Bitrix24 answered: done, retry later, failed (and what fails with it), or skipped.

Every outcome is one journal update plus one log line (``crm.delivered`` / ``crm.retry`` / ``crm.failed`` /
``crm.replayed`` / ``crm.skipped``) with ``crm_leg`` and ``method``, and one observer call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bridge.crm.builders import ATTACH_RECORD, FINISH, HIDE, LEAD_UPDATE, NOTIFY, REGISTER, SHOW, TASK_ADD
from bridge.crm.envelope import BatchResult
from bridge.crm.errors import CallNotFoundError, CrmError, PermanentCrmError, TransientCrmError
from bridge.crm.telephony import registered_from
from bridge.delivery.hooks import DeliveryObserver
from bridge.delivery.plan import Chain, backoff, key_of
from bridge.journal import AsyncJournal, PendingOp
from bridge.journal.marks import DoneMark
from bridge.logs import HotLogger, call_keys

log = HotLogger(__name__)

METHOD_OF = {
    "register": REGISTER,
    "adopt": "",
    "show": SHOW,
    "hide": HIDE,
    "finish": FINISH,
    "attach_record": ATTACH_RECORD,
    "missed_task": TASK_ADD,
    "notify": NOTIFY,
    "assign_lead": LEAD_UPDATE,
}
CARD_KINDS = ("show", "hide")
NOT_CARRIED = "NOT_CARRIED_OUT"
"""Our code for a batch command that got neither a result nor an error (after an earlier one failed)."""


def _call(op: PendingOp) -> dict[str, str]:
    """The bridge's call an operation belongs to, for its log line (a batch carries many calls)."""
    return call_keys(op.pbx_call, op.linkedid, op.line)


class Settler:
    def __init__(
        self,
        journal: AsyncJournal,
        observer: DeliveryObserver,
        clock: Callable[[], float],
        retry_base: float,
        retry_cap: float,
    ) -> None:
        self.journal = journal
        self.observer = observer
        self.clock = clock
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self._marks: dict[asyncio.Task[Any] | None, list[DoneMark]] = {}
        """Per task that called :meth:`collect`: its done marks not yet written."""

    def collect(self) -> None:
        """From now on, operations this task finds done are kept in :meth:`collected` instead of being marked one
        by one (a batch's answer then costs a few statements, see
        :meth:`~bridge.journal.AsyncJournal.mark_done_many`). Other tasks (another cycle, an upload lane) mark theirs
        as before."""
        self._marks[asyncio.current_task()] = []

    def collected(self) -> list[DoneMark]:
        """The done marks this task kept since :meth:`collect` (to be written in the same transaction); stops
        collecting."""
        return self._marks.pop(asyncio.current_task(), [])

    async def _mark_done(self, op: PendingOp, result: Any, call_id: str | None, note: str) -> None:
        marks = self._marks.get(asyncio.current_task()) if self._marks else None
        if marks is not None:
            marks.append(DoneMark(op.id, result, call_id, note))
        else:
            await self.journal.mark_done(op.id, result, call_id=call_id, note=note)

    async def done(self, op: PendingOp, result: Any, *, call_id: str | None = None, note: str = "delivered") -> None:
        await self._mark_done(op, result, call_id, note)
        fields: dict[str, Any] = {"note": note} if note != "delivered" else {}
        if call_id:
            fields["b24_call_id"] = call_id
        log.info("crm.delivered", crm_leg=op.crm_leg, method=METHOD_OF[op.kind], op=op.id, **fields, **_call(op))
        self.observer.delivered(op.kind, METHOD_OF[op.kind])

    async def retry(self, op: PendingOp, reason: str, code: str, *, sent: bool = True, arrived: bool = True) -> None:
        """Try again after a back-off that grows with the tries. ``sent``: this try went to the network (a failed
        check did not); ``arrived=False``: it provably never reached Bitrix24 (see ``check.never_left``)."""
        tries = op.tries + (1 if sent else 0)
        wait = backoff(tries, self.retry_base, self.retry_cap)
        await self.journal.mark_failed(op.id, reason, permanent=False, retry_at=self.clock() + wait, arrived=arrived)
        log.warning(
            "crm.retry", crm_leg=op.crm_leg, method=METHOD_OF[op.kind], op=op.id, attempts=tries, wait=wait,
            error=reason, **_call(op),
        )  # fmt: skip
        self.observer.retried(op.kind, METHOD_OF[op.kind], code)

    async def fail(self, op: PendingOp, reason: str) -> None:
        cascaded = await self.journal.mark_failed(op.id, reason, permanent=True)
        log.error("crm.failed", crm_leg=op.crm_leg, method=METHOD_OF[op.kind], op=op.id, reason=reason, **_call(op))
        self.observer.failed(op.kind, METHOD_OF[op.kind], reason)
        for later_id, kind in cascaded:
            why = f"{op.kind} failed: {reason}"
            log.error("crm.failed", crm_leg=op.crm_leg, method=METHOD_OF.get(kind, kind), op=later_id, reason=why,
                      **_call(op))  # fmt: skip
            self.observer.failed(kind, METHOD_OF.get(kind, kind), why)

    async def skip(self, op: PendingOp, note: str) -> None:
        await self._mark_done(op, None, None, note)
        log.info("crm.skipped", crm_leg=op.crm_leg, method=METHOD_OF[op.kind], op=op.id, note=note, **_call(op))
        self.observer.skipped(op.kind, note)

    async def error(self, op: PendingOp, error: CrmError) -> None:
        """Sort a per-operation error: retry, park, or (a repeated finish) already done."""
        if isinstance(error, CallNotFoundError) and op.kind == "finish" and op.attempts > 0:
            await self.done(op, None, note="already finished: an earlier attempt went through")
        elif isinstance(error, TransientCrmError):
            await self.retry(op, str(error), error.code)
        else:
            await self.fail(op, str(error))

    # --- a chain's batch results -------------------------------------------------------------------

    async def settle_chain(self, chain: Chain, batch: BatchResult) -> None:
        head = chain.head
        followers = chain.ops[1:]
        if head.kind == "register":
            key = key_of(head)
            if key not in batch.results:
                await self._register_not_done(chain, batch.errors.get(key))
                return
            try:
                call_id = registered_from(REGISTER, batch.results[key]).call_id
            except PermanentCrmError as exc:
                await self.fail(head, str(exc))
                return
            await self.done(head, batch.results[key], call_id=call_id)
        else:
            followers = chain.ops
        for index, op in enumerate(followers):
            key = key_of(op)
            if key in batch.results:
                await self.success(chain, op, batch.results[key])
                continue
            error = batch.errors.get(key) or TransientCrmError(METHOD_OF[op.kind], NOT_CARRIED, "not carried out")
            later_went = any(key_of(later) in batch.results for later in followers[index + 1 :])
            if op.kind in CARD_KINDS and later_went:
                await self.skip(op, "skipped: a later operation of the call already went through")
            else:
                await self.error(op, error)

    async def _register_not_done(self, chain: Chain, error: CrmError | None) -> None:
        head = chain.head
        await self.error(head, error or TransientCrmError(REGISTER, NOT_CARRIED, "not carried out"))
        if isinstance(error, TransientCrmError) or error is None:
            # what rode on the register's CALL_ID did not happen either: back in the queue, behind the register
            for op in chain.ops[1:]:
                await self.journal.mark_failed(op.id, "waiting for register", permanent=False)

    async def success(self, chain: Chain, op: PendingOp, result: Any) -> None:
        if op.kind in CARD_KINDS and result is False:
            await self.done(op, result, note="no card: Bitrix24 no longer has the call active")
            return
        await self.done(op, result)
        if op.kind == "finish" and chain.offline:
            log.info("crm.replayed", crm_leg=op.crm_leg, method=FINISH, already_present=False, **_call(op))
            self.observer.replayed(op.crm_leg or "", already_present=False)

    async def present(self, chain: Chain, row: dict[str, Any]) -> None:
        """The statistics show the call already arrived: fix our bookkeeping, send nothing."""
        call_id = str(row.get("CALL_ID") or "") or None
        note = "already in Bitrix24 (voximplant.statistic.get)"
        for op in chain.ops:
            if op.kind in CARD_KINDS:
                await self.skip(op, "skipped: the call is already in Bitrix24")
            else:
                await self.done(op, row if op.kind == "finish" else None, call_id=call_id, note=note)
        if chain.offline:
            log.info("crm.replayed", crm_leg=chain.leg, method=FINISH, already_present=True, b24_call_id=call_id,
                     **_call(chain.head))  # fmt: skip
            self.observer.replayed(chain.leg or "", already_present=True)
