"""The process that drains the journal into Bitrix24.

One cycle: calls whose ``register`` is stuck past ``register_timeout`` go offline; up to three batches' worth of
ready operations (across calls, per call in order) are taken; those that may already have arrived are checked
against the statistics, in the same requests as the others (:mod:`bridge.delivery.sending`); everything goes out
in full ``batch`` requests (paced by the client's shared bucket), a ``register`` and what follows it linked
through ``$result[...][CALL_ID]``. Recordings go to lanes of their own (``UPLOAD_LANES`` uploads at a time,
sharing the bucket), so that a backlog of uploads, each a request of its own, never holds up the next cycle's registers.
A voicemail's task comes after its recording (journaled behind it on the call's leg) and goes in those lanes too:
it reads the recording's link (``CALL_RECORD_URL``) from the statistics, then creates the task with it.
While a cycle's request is in flight and the bucket has room, operations journaled meanwhile go at once in an
*express* cycle (one at a time) instead of waiting for that answer; with the bucket filling, cycles go one after
another and every batch is full. Cycles never take the same operation: each claims what it took until it ends.
Operations are marked ``sent`` (committed) just before the request leaves, without waiting for the disk: the
first cycle takes the journal over (:meth:`~bridge.journal.AsyncJournal.take_over`), so after a crash, or a power cut
that took the last marks, nothing is resent blindly: an operation that was (possibly) sent before is checked
against the statistics first.

Retrying lives in the journal: what fails transiently waits with an exponential back-off in
``next_attempt_at``. Give Delivery a client built with ``retry_attempts=1``: a client-side retry of a batch
whose answer was lost would resend a ``register`` + ``finish`` without that check (a second finish, a
duplicate call). The bucket is shared per portal either way, so pacing is unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable

import structlog

from bridge.config import Bitrix24Settings
from bridge.crm.builders import voicemail_task_request
from bridge.crm.client import MAX_BATCH, Bitrix24Client
from bridge.crm.errors import CrmError, PermanentCrmError
from bridge.crm.pacing import bucket_level
from bridge.crm.telephony import Telephony
from bridge.delivery.access import StatisticsAccess
from bridge.delivery.check import statistics_command, statistics_row
from bridge.delivery.hooks import DeliveryObserver
from bridge.delivery.leads import assign_lead
from bridge.delivery.plan import Chain, chains_of, fill, record_filename
from bridge.delivery.sending import Sender
from bridge.delivery.settle import METHOD_OF, Settler
from bridge.domain.commands import CrmMissedTask
from bridge.journal import AsyncJournal, PendingOp
from bridge.logs import call_keys

log = structlog.get_logger(__name__)

RecordingLoader = Callable[[str], Awaitable[bytes | None]]
"""Recording name -> its bytes, or None when there is no such recording; may raise when unreachable."""

ERROR_PAUSE_MAX = 30.0
UPLOAD_LANES = 2
"""Recordings uploaded at once: enough to hide one upload's latency, few enough that a batch waits behind at most
this many requests in the bucket."""
BATCHES_PER_CYCLE = 3
"""A cycle takes this many batches' worth of operations: room for 50 checks and the calls they clear."""
SHARED_POLL = 0.25
"""A delivery leader of a shared outbox looks at it this often even when no append woke it (its notifications come
over a connection of their own, which may be down for a while)."""
CARD_DEFER = 0.2
"""Seconds a card move (show, hide) may wait for a request that goes anyway (a register, a finish, another call's
card) before it goes alone: one request a call less at a busy site, and a card 0.2 s later on a phone that rings
for seconds."""
EXPRESS_ROOM = 0.5
"""An express cycle goes only while the client's bucket is at most this full: latency while the portal has room,
full batches once it fills."""


async def _no_recordings(_name: str) -> bytes | None:
    return None


class Delivery:
    """Drains ``journal`` into Bitrix24. ``clock`` must be the journal's (wall) clock; call :meth:`notify` after
    appending; run :meth:`run` as a task, cancel it on shutdown after :meth:`flush`."""

    def __init__(
        self,
        journal: AsyncJournal,
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
        access: StatisticsAccess | None = None,
    ) -> None:
        self.journal = journal
        self.access = access or StatisticsAccess()
        """What the statistics show the app user (learned before the first check, or at start by the daemon)."""
        self.telephony = telephony
        self.settings = settings
        self.recording_loader = recording_loader or _no_recordings
        self.clock = clock
        self.observer = observer or DeliveryObserver()
        self.batch_limit = max(1, min(batch_limit, MAX_BATCH))
        self.settler = Settler(journal, self.observer, clock, retry_base, retry_cap)
        self.sender = Sender(journal, client, self.settler, self.observer, self.batch_limit, self.access)
        self.client = client
        self._wake = asyncio.Event()
        self._requeued = False
        self.poll: float | None = None
        """How often to look at the outbox without being notified (a shared one: see :meth:`lead`)."""
        self._cycles = 0
        self._more = False
        """The last cycle left ready operations behind (a limit, or a batch left to be topped up)."""
        self._claimed: set[int] = set()
        """Operations taken by the cycles running now (a second cycle leaves them alone)."""
        self._express: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        """Set while no cycle is sending."""
        self._idle.set()
        self._uploads: deque[PendingOp] = deque()
        self._uploading: set[asyncio.Task[None]] = set()
        self._soon: asyncio.TimerHandle | None = None

    @property
    def client(self) -> Bitrix24Client:
        return self.sender.client

    @client.setter
    def client(self, client: Bitrix24Client) -> None:
        """Swap the client (the bench's comparison does, before the first call)."""
        self.sender.client = client

    def notify(self) -> None:
        """New operations were appended: look at the journal now (in an express cycle, while a cycle is in flight
        and the bucket has room)."""
        self._wake.set()
        if self._cycles and self._express is None and self._bucket_has_room():
            self._express = asyncio.create_task(self._express_cycle(), name="delivery-express")

    def notify_soon(self) -> None:
        """New operations that may wait up to :data:`CARD_DEFER` s were appended: any cycle before then takes them
        too; otherwise one starts then."""
        if self._soon is None:
            self._soon = asyncio.get_running_loop().call_later(CARD_DEFER, self._soon_due)

    def _soon_due(self) -> None:
        self._soon = None
        self.notify()

    def _bucket_has_room(self) -> bool:
        limiter = self.client.stats.limiter
        return limiter is not None and bucket_level(limiter) <= limiter.max_rate * EXPRESS_ROOM

    async def _express_cycle(self) -> None:
        try:
            await self.deliver_once(self.batch_limit)
        except Exception:  # its operations were put back by deliver_once
            log.exception("delivery.error")
        finally:
            self._express = None
            self._wake.set()  # what it settled may let a chain's next operation go

    async def lead(self) -> None:
        """Deliver until cancelled, as the shared outbox's delivery leader that just took over: first take the journal
        over again (what a leader before had in flight goes back to the queue, doubtful) and assume the portal's bucket
        full (the leader before may just have spent it), then :meth:`run`, woken by every append's commit, in any
        bridge (the journal's :meth:`~bridge.journal.AsyncJournal.listen`), and looking at the outbox every
        :data:`SHARED_POLL` seconds too (while the listening connection is down)."""
        self._requeued = False
        self.client.assume_bucket_full()
        self.poll = SHARED_POLL
        listening = asyncio.create_task(self.journal.listen(self.notify), name="delivery-listen")
        try:
            await self.run()
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)

    async def run(self) -> None:
        """Deliver until cancelled."""
        try:
            await self._run()
        finally:
            if self._soon is not None:
                self._soon.cancel()
                self._soon = None
            if self._express is not None:
                self._express.cancel()
                await asyncio.gather(self._express, return_exceptions=True)
            await self._stop_uploads()

    async def _run(self) -> None:
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
                await asyncio.sleep(pause)
                continue
            if worked and (self._more or self._wake.is_set()):
                continue
            # a cycle that sent all it found leaves nothing due but what an append (which wakes this) or a time
            # (a retry, an offline deadline: next_due) brings: no second cycle just to find that out
            due = await self.journal.next_due(self.settings.register_timeout)
            timeout = None if due is None else max(0.0, due - self.clock())
            if self.poll is not None:
                timeout = self.poll if timeout is None else min(timeout, self.poll)
            await self._wait_for_wake(timeout)

    async def _unstick(self, op_ids: set[int]) -> None:
        """After an unexpected error in a cycle, what it left ``sent`` goes back to the queue (its attempts stay
        counted, so it is checked before it is resent)."""
        with contextlib.suppress(Exception):
            await self.journal.requeue_sent(op_ids)

    async def _wait_for_wake(self, seconds: float | None) -> None:
        if seconds is None:  # the usual wait after a cycle that sent all it found: no timer to arm and cancel
            await self._wake.wait()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

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
                    if self._cycles:  # another cycle's request is in flight: its answer settles it
                        await self._idle.wait()
                        continue
                    if self._uploading:
                        await asyncio.wait(set(self._uploading))  # on a timeout they go on
                        continue
                    due = await self.journal.next_due(self.settings.register_timeout)
                    if due is None:
                        return True
                    wait = due - self.clock()
                    if loop.time() + wait > deadline:
                        return False
                    self._wake.clear()
                    await self._wait_for_wake(max(0.0, wait))
        except TimeoutError:
            return False

    async def deliver_once(self, limit: int | None = None) -> bool:
        """One cycle (taking at most ``limit`` operations, three batches' worth by default); False when there was
        nothing to do."""
        if not self._requeued:
            self._requeued = True
            count, _doubtful = await self.journal.take_over()
            if count:
                log.warning("delivery.requeued", operations=count, reason="found in flight at start")
        offline = await self.journal.take_offline(self.settings.register_timeout)
        rows = await self.journal.calls_of(offline) if offline else {}
        for leg in offline:
            row = rows.get(leg)
            named = call_keys(row.pbx_call, row.linkedid, row.line) if row is not None else {}
            log.warning("crm.offline", crm_leg=leg, method="telephony.externalCall.register",
                        register_timeout=self.settings.register_timeout, **named)  # fmt: skip
            self.observer.offline(leg)
        limit = limit or self.batch_limit * BATCHES_PER_CYCLE
        if self._soon is not None:  # this cycle takes the card moves that were waiting for one
            self._soon.cancel()
            self._soon = None
        chains, more_waiting = await self._take(limit)
        self._more = more_waiting
        if not chains:
            return False
        records = [chain.head for chain in chains if chain.is_record or chain.head.kind == "assign_lead"]
        if records:  # recordings, voicemail tasks and lead hand-overs: requests of their own, in the side lanes
            got = set(await self.journal.mark_sent([op.id for op in records]))  # in the upload lane: not ready again
            self._uploads.extend(op for op in records if op.id in got)
            # a lane that has just ended may still be in the set (its done-callback has not run yet): not counted
            while sum(not lane.done() for lane in self._uploading) < min(UPLOAD_LANES, len(self._uploads)):
                lane = asyncio.create_task(self._upload_all(), name="delivery-uploads")
                self._uploading.add(lane)
                lane.add_done_callback(self._uploading.discard)
        sends = [c for c in chains if c.head not in records]
        claimed = {op.id for chain in sends for op in chain.ops}
        self._claimed |= claimed
        self._cycles += 1
        self._idle.clear()
        try:
            await self.sender.send(sends, more_waiting=more_waiting)
        except Exception:
            await self._unstick(claimed)
            raise
        finally:
            self._cycles -= 1
            self._claimed -= claimed
            if not self._cycles:
                self._idle.set()
        return True

    async def _take(self, limit: int) -> tuple[list[Chain], bool]:
        """Ready chains no running cycle has taken, at most ``limit`` operations, and whether more were left."""
        ops = await self.journal.ready(limit + len(self._claimed), chain_limit=self.batch_limit)
        chains = chains_of(ops)
        if self._claimed:
            free = [c for c in chains if not any(op.id in self._claimed for op in c.ops)]
            chains, _rest = fill(free, limit)
            ops = [op for chain in free for op in chain.ops]
        return chains, len(ops) > limit - self.batch_limit // 5

    async def _upload_all(self) -> None:
        while self._uploads:
            op = self._uploads.popleft()
            try:
                if op.kind == "assign_lead":
                    await assign_lead(self.journal, self.client, self.settler, op)
                elif op.kind == "attach_record":
                    await self._attach(op)
                else:
                    await self._voicemail_task(op)
            except Exception:  # the journal failed us: the op stays sent, retried after the next start
                log.exception("delivery.error", crm_leg=op.crm_leg, method=METHOD_OF.get(op.kind, op.kind))
            self.notify()  # a retry's new due time, or room for the next cycle

    async def _stop_uploads(self) -> None:
        """Uploads not done stay ``sent`` in the journal, put back in the queue at the next start."""
        lanes = list(self._uploading)
        for lane in lanes:
            lane.cancel()
        await asyncio.gather(*lanes, return_exceptions=True)
        self._uploads.clear()

    async def _attach(self, op: PendingOp) -> None:
        cmd = op.command
        name = getattr(cmd, "recording", "")
        try:
            content = await self.recording_loader(name)
        except Exception as exc:
            await self.settler.retry(
                op, f"recording {name!r} could not be read: {type(exc).__name__}: {exc}", "RECORDING"
            )
            return
        if not content:
            await self.settler.fail(op, f"recording {name!r} not found")
            return
        try:
            file_id = await self.telephony.attach_record(op.call_id or "", record_filename(name), content)
        except CrmError as exc:
            await self.settler.error(op, exc)
        except ValueError as exc:  # not wav/mp3, or empty
            await self.settler.fail(op, str(exc))
        except Exception as exc:
            log.exception("delivery.error", crm_leg=op.crm_leg, method="telephony.externalCall.attachRecord")
            await self.settler.retry(op, f"{type(exc).__name__}: {exc}", "INTERNAL")
        else:
            await self.settler.done(op, {"FILE_ID": file_id})

    async def _voicemail_task(self, op: PendingOp) -> None:
        """The recording is attached (or given up): read its link from the statistics, create the task with it.
        A portal that shows no link, or whose statistics the app user may not read, gets the task without one."""
        cmd = op.command
        assert isinstance(cmd, CrmMissedTask) and op.crm_leg is not None
        try:
            try:
                row = statistics_row(await self.client.call(*statistics_command(op.crm_leg)), op.crm_leg)
            except PermanentCrmError:  # the app user may not read the statistics: the task goes without the link
                row = None
            link = str((row or {}).get("CALL_RECORD_URL") or "")
            result = await self.client.call(*voicemail_task_request(cmd, link))
        except CrmError as exc:
            await self.settler.error(op, exc)
        except Exception as exc:
            log.exception("delivery.error", crm_leg=op.crm_leg, method="tasks.task.add")
            await self.settler.retry(op, f"{type(exc).__name__}: {exc}", "INTERNAL")
        else:
            await self.settler.done(op, result, note="delivered" if link else "delivered without the recording's link")
