"""Mirroring one ended call that Bitrix24 missed (``b24-bridge replay``), with the journal kept in step.

Same rules as the daemon's offline mirroring (:mod:`bridge.delivery.loop`): statistics first; if the call is
there, only our bookkeeping changes; otherwise ``register`` SHOW=0 + ``finish`` in one batch, then the recording.
A call the statistics could hide from the app user (:mod:`bridge.delivery.access`) is parked with the reason
instead, unless ``force``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from bridge.crm.client import Bitrix24Client
from bridge.crm.errors import CrmError
from bridge.crm.telephony import Telephony
from bridge.delivery.access import DENIED, DENIED_ERROR, STATISTIC_GET, StatisticsAccess, finish_users
from bridge.delivery.check import never_left, statistics_command, statistics_row
from bridge.delivery.hooks import DeliveryObserver
from bridge.delivery.loop import RecordingLoader
from bridge.delivery.plan import Chain, plan_batch, record_filename
from bridge.delivery.settle import Settler
from bridge.domain.commands import CrmFinish, CrmRegister
from bridge.journal import AsyncJournal, CallRow, OpRow, PendingOp

log = structlog.get_logger(__name__)

FINAL = ("done",)


@dataclass(frozen=True)
class Outcome:
    crm_leg: str
    started_at: str | None
    status: str
    """``replayed``, ``already present``, ``would send``, ``parked``, ``failed`` or ``skipped``."""
    detail: str = ""


def _pending(op: OpRow, call: CallRow, mode: str) -> PendingOp:
    return PendingOp(
        id=op.id, crm_leg=op.crm_leg, seq=op.seq, kind=op.kind, command=op.command, attempts=op.attempts,
        created_at=op.created_at, call_id=call.call_id, mode=mode, call_state=call.state, tries=op.tries,
        pbx_call=call.pbx_call, linkedid=call.linkedid, line=call.line,
    )  # fmt: skip


def describe(chain: Chain, record: OpRow | None) -> str:
    """What would be sent for this chain, in words an operator checks against the PBX's records."""
    parts = []
    for op in chain.ops:
        cmd = op.command
        if isinstance(cmd, CrmRegister):
            parts.append(f"register SHOW=0 start {cmd.started_at.isoformat()} user {cmd.user_id} from {cmd.phone}")
        elif isinstance(cmd, CrmFinish):
            parts.append(f"finish user {cmd.user_id} duration {cmd.duration} s status {cmd.status_code}")
    if record is not None:
        parts.append(f"attachRecord {record_filename(getattr(record.command, 'recording', ''))}")
    return " + ".join(parts)


class Replayer:
    def __init__(
        self,
        journal: AsyncJournal,
        client: Bitrix24Client,
        telephony: Telephony,
        loader: RecordingLoader,
        *,
        dry_run: bool = False,
        observer: DeliveryObserver | None = None,
        force: bool = False,
        access: StatisticsAccess | None = None,
    ) -> None:
        self.journal = journal
        self.client = client
        self.telephony = telephony
        self.loader = loader
        self.dry_run = dry_run
        self.unreachable = ""
        """Set in a dry run once Bitrix24 did not answer: the rest is listed unchecked, without waiting again."""
        self.force = force
        self.access = access or StatisticsAccess()
        self.settler = Settler(journal, observer or DeliveryObserver(), time.time, retry_base=1.0, retry_cap=60.0)

    async def replay(self, call: CallRow) -> Outcome:
        leg = call.crm_leg
        try:
            return await self._replay(call)
        except CrmError as exc:
            return Outcome(leg, call.started_at, "failed", str(exc))
        except ValueError as exc:  # a damaged row in the journal
            log.error("replay.bad_row", crm_leg=leg, error=str(exc))
            return Outcome(leg, call.started_at, "failed", f"journal row unreadable: {exc}")

    async def _replay(self, call: CallRow) -> Outcome:
        leg = call.crm_leg
        ops = await self.journal.operations(leg)
        origin = next((op for op in ops if op.kind in ("register", "adopt")), None)
        finish = next((op for op in ops if op.kind == "finish"), None)
        record = next((op for op in ops if op.kind == "attach_record" and op.state not in FINAL), None)
        if origin is None or finish is None:
            return Outcome(leg, call.started_at, "failed", "nothing to replay: no register or no finish journaled")
        # an adopted (click-to-call) leg's origin is settled on arrival: only its finish can be left
        mode = "online" if origin.state in FINAL else "offline"
        chain = Chain([_pending(op, call, mode) for op in (origin, finish) if op.state not in FINAL])
        unchecked = ""
        if chain.ops:
            try:
                found = await self._look_up(leg, finish_users(chain, sent_only=False))
            except CrmError as exc:
                if not self.dry_run:
                    raise
                # a dry run still lists what would be sent; it asks no more once Bitrix24 did not answer
                self.unreachable = self.unreachable or f"not checked: Bitrix24 did not answer ({exc})"
                found, unchecked = None, self.unreachable
            if isinstance(found, dict):
                if not self.dry_run:
                    await self.settler.present(chain, found)
                    await self._attach(leg, record)
                return Outcome(leg, call.started_at, "already present", f"CALL_ID {found.get('CALL_ID')}")
            if isinstance(found, str) and not self.force:
                if not self.dry_run:
                    await self.settler.fail(next(op for op in chain.ops if op.kind in ("register", "finish")), found)
                return Outcome(leg, call.started_at, "parked", found)
        if self.dry_run:
            detail = describe(chain, record) or "nothing"
            return Outcome(leg, call.started_at, "would send", f"{detail}; {unchecked}" if unchecked else detail)
        if not chain.ops:  # register and finish went through earlier; only the recording is left
            detail = await self._attach(leg, record)
            status = "replayed" if detail.endswith("attached") else "skipped"
            return Outcome(leg, call.started_at, status, detail or "nothing left to send")
        if chain.head.kind == "register":
            await self.journal.go_offline(leg)
        failure = await self._send(chain)
        if failure:
            return Outcome(leg, call.started_at, "failed", failure)
        detail = await self._attach(leg, record)
        return Outcome(leg, call.started_at, "replayed", detail)

    async def _look_up(self, leg: str, users: set[int]) -> dict[str, object] | str | None:
        """The call's statistics row; None when it is certainly not there; or why the statistics cannot tell.
        Raises CrmError when Bitrix24 could not be asked (a dry run asks once: see ``unreachable``)."""
        if self.unreachable:
            raise CrmError(STATISTIC_GET, "", self.unreachable)
        access = self.access
        await access.ensure(self.client)
        await access.look_for(self.client, users)
        if access.level != DENIED:
            batch = await self.client.batch({"st": statistics_command(leg)})
            if "st" in batch.results:
                row = statistics_row(batch.results["st"], leg)
                if row is not None:
                    return row
            elif (error := batch.errors.get("st")) is not None and error.code == DENIED_ERROR:
                access.denied()
            else:
                raise error or CrmError(STATISTIC_GET, "", "no answer for this call")
        return None if access.trusted(users) else access.reason(users)

    async def _send(self, chain: Chain) -> str:
        """Send register SHOW=0 + finish; returns the failure reason, or "" when Bitrix24 took both."""
        plan = plan_batch([chain])
        for op, reason in plan.unbuildable:
            await self.settler.fail(op, f"cannot build the request: {reason}")
            return reason
        await self.journal.mark_sent(plan.op_ids())
        await self.journal.sync()
        try:
            batch = await self.client.batch(plan.commands)
        except CrmError as exc:
            async with self.journal.transaction():
                for op in chain.ops:
                    await self.journal.mark_failed(op.id, str(exc), permanent=False, arrived=not never_left(exc))
            return str(exc)
        async with self.journal.transaction():
            await self.settler.settle_chain(chain, batch)
        states = {op.id: op for op in await self.journal.operations(chain.leg)}
        unsettled = [states[op.id] for op in chain.ops if states[op.id].state != "done"]
        return "; ".join(f"{op.kind}: {op.last_error or op.state}" for op in unsettled)

    async def _attach(self, leg: str, record: OpRow | None) -> str:
        """Attach the recording when it can be read; a note for the summary."""
        if record is None:
            return ""
        call = (await self.journal.calls(crm_leg=leg))[0]
        name = getattr(record.command, "recording", "")
        try:
            content = await self.loader(name)
        except OSError as exc:
            return f"recording not attached: {exc}"
        if not content or not call.call_id:
            return f"recording {name!r} not found"
        op = _pending(record, call, call.mode)
        await self.journal.mark_sent([op.id])
        await self.journal.sync()
        try:
            file_id = await self.telephony.attach_record(call.call_id, record_filename(name), content)
        except CrmError as exc:
            await self.settler.error(op, exc)
            return f"recording not attached: {exc}"
        await self.settler.done(op, {"FILE_ID": file_id})
        return f"recording {record_filename(name)} attached"
