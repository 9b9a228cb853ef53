"""The one consumer: every PBX fact, CRM answer and timer expiry goes through one queue into the core.

One event at a time, no locks (design principle 6). For each input the dispatcher steps the call's pure state
machine, arms the one timer per call from the deadline the core returns, hands PBX commands to a per-call
executor (so the PBX is never waited for here and a call's commands keep their order), and writes CRM commands
to the journal before anything is sent (outbox first).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, Protocol

import structlog

from bridge.domain import call as core
from bridge.domain import observed as watch
from bridge.domain.commands import CallType, CrmCommand, CrmFinish, HangupCaller, LookupCrm, PbxCommand
from bridge.domain.events import (
    AvailabilityChanged,
    CallerHungUp,
    CallStarted,
    CrmClient,
    CrmLookedUp,
    Event,
    Intercepted,
    LegEnded,
    LegOutcome,
    ObservedEnded,
    ObservedEvent,
    ObservedStarted,
    TimerFired,
)
from bridge.domain.scheme import Availability, Plan
from bridge.domain.state import Call, State
from bridge.logs import bind_call
from bridge.metrics import Metrics
from bridge.pbx.events import BadInput, PbxEvent, Resynced, StasisEntered

log = structlog.get_logger(__name__)

CRM_COMMANDS = CrmCommand.__args__  # type: ignore[attr-defined]


class PbxPort(Protocol):
    async def execute(self, call_id: str, cmd: PbxCommand) -> None: ...


class Outbox(Protocol):
    def append(self, cmd: CrmCommand, *, linkedid: str = "", pbx_call: str = "") -> int: ...


@dataclass(frozen=True)
class LookupDone:
    call: str
    client: CrmClient | None


@dataclass(frozen=True)
class TimerDue:
    call: str
    observed: bool = False


@dataclass(frozen=True)
class CallSummary:
    """How a call ended, as the PBX side saw it (the demo and the logs compare it with Bitrix24)."""

    key: str
    kind: str
    line: str
    number: str
    handled_by: str
    status: str
    duration: int
    crm_legs: tuple[str, ...]


Input = PbxEvent | LookupDone | TimerDue


class StampedQueue(asyncio.Queue[Any]):
    """A FIFO that remembers when each item was put, so the consumer can tell how long it waited."""

    def _init(self, maxsize: int) -> None:
        self._stamped: deque[tuple[float, Any]] = deque()
        self.taken_put_at = 0.0
        """When the item the last ``get`` returned was put (``time.perf_counter``)."""

    def qsize(self) -> int:
        return len(self._stamped)

    def empty(self) -> bool:
        return not self._stamped

    def _put(self, item: Any) -> None:
        self._stamped.append((time.perf_counter(), item))

    def _get(self) -> Any:
        self.taken_put_at, item = self._stamped.popleft()
        return item


@dataclass
class AvailabilityBook:
    """What the shell knows about each extension: device state (PBX) and day (Bitrix24), combined."""

    device: dict[str, Availability] = field(default_factory=dict)
    crm: dict[str, Availability] = field(default_factory=dict)

    def of(self, ext: str) -> Availability:
        device = self.device.get(ext, Availability.AVAILABLE)
        if device is not Availability.AVAILABLE:
            return device
        return self.crm.get(ext, Availability.AVAILABLE)

    def snapshot(self) -> dict[str, Availability]:
        return {ext: self.of(ext) for ext in set(self.device) | set(self.crm)}


class Dispatcher:
    def __init__(
        self,
        *,
        plan: Callable[[], Plan],
        pbx: PbxPort,
        outbox: Outbox,
        outbox_changed: Callable[[], None],
        lookup: Callable[[str], Awaitable[CrmClient | None]],
        metrics: Metrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_stasis: Callable[[StasisEntered], None] | None = None,
        history: int = 1000,
        queue: StampedQueue | None = None,
    ) -> None:
        self.queue = queue if queue is not None else StampedQueue()
        """Every input, in order; the PBX links put their events here directly."""
        self.plan = plan
        self.pbx = pbx
        self.outbox = outbox
        self.outbox_changed = outbox_changed
        self.lookup = lookup
        self.metrics = metrics
        self.clock = clock
        self.on_stasis = on_stasis
        self.calls: dict[str, Call] = {}
        self.observed: dict[str, watch.Observed] = {}
        self.availability = AvailabilityBook()
        self.ended: deque[CallSummary] = deque(maxlen=history)
        self.accepting = True
        self._answered: dict[str, int] = {}
        self._answered_day: date | None = None
        self._timers: dict[tuple[str, bool], asyncio.TimerHandle] = {}
        self._executors: dict[str, _Executor] = {}
        self._finishes: dict[str, list[CrmFinish]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._linked: set[str] = set()
        self._callbacks: dict[str, str] = {}
        self.foreign: Callable[[PbxEvent], bool] | None = None
        """Gets first look at every PBX event of a call; True means it took the event (click-to-call sessions)."""

    # -- the loop ---------------------------------------------------------------------------------------

    def put(self, item: Input) -> None:
        self.queue.put_nowait(item)

    async def run(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                self.handle(item)
            except Exception:  # one bad event must not stop every other call
                log.exception("dispatch.error", input=type(item).__name__)
            self.metrics.event_lag.observe(time.perf_counter() - self.queue.taken_put_at)

    def handle(self, item: Input) -> None:
        if isinstance(item, LookupDone):
            self._step_call(item.call, CrmLookedUp(item.client))
        elif isinstance(item, TimerDue):
            self._timers.pop((item.call, item.observed), None)
            if item.observed:
                self.step_observed(item.call, TimerFired())
            else:
                self._step_call(item.call, TimerFired())
        else:
            self._pbx(item)

    def knows(self, key: str) -> bool:
        return key in self.calls or key in self.observed

    @property
    def active(self) -> int:
        return len(self.calls) + len(self.observed)

    # -- PBX facts --------------------------------------------------------------------------------------

    def _pbx(self, item: PbxEvent) -> None:
        event = item.event
        if item.call is not None and self.foreign is not None and self.foreign(item):
            return
        if isinstance(event, BadInput):
            log.warning("pbx.bad_input", reason=event.reason)
        elif isinstance(event, CallStarted):
            self._start(item.call or "", event)
        elif isinstance(event, AvailabilityChanged) and item.call is None:
            self.availability.device[event.ext] = event.availability
            self._broadcast(AvailabilityChanged(event.ext, self.availability.of(event.ext)))
        elif isinstance(event, Intercepted) and item.call is None:
            self._intercept(event)
        elif isinstance(event, Resynced):
            self._resynced(event)
        elif isinstance(event, StasisEntered):
            if self.on_stasis is not None:
                self.on_stasis(event)
            else:
                log.warning("pbx.unexpected_stasis", channel=event.channel, args=list(event.args))
        elif isinstance(event, ObservedStarted):
            self.start_observed(item.call or item.linkedid, event)
        elif item.call is not None and item.call in self.observed:
            self.step_observed(item.call, event)  # type: ignore[arg-type]
        elif item.call is not None:
            self._step_call(item.call, event)  # type: ignore[arg-type]

    def _start(self, call_id: str, event: CallStarted) -> None:
        if not call_id or call_id in self.calls:
            log.warning("call.duplicate_start", call_id=call_id)
            return
        if not self.accepting:
            log.warning("call.refused", call_id=call_id, reason="shutting down")
            self._spawn(self.pbx.execute(call_id, HangupCaller("congestion")))
            return
        now = self.clock()
        plan = self.plan()
        callback = self._callbacks.pop(call_id, None)
        if callback is not None:
            event = replace(event, caller=callback, call_type=CallType.CALLBACK)
        event = replace(
            event,
            crm_key=event.crm_key or call_id,
            availability=self.availability.snapshot(),
            answered_today=dict(self._answered_counts(now)),
        )
        self.calls[call_id] = core.start_call(plan, call_id, now)
        with bind_call(call_id, event.linkedid, event.line):
            log.info("call.started", caller=event.caller, caller_name=event.caller_name)
        self.metrics.active_calls.set(self.active)
        self._step_call(call_id, event)

    def crm_availability(self, found: dict[str, Availability]) -> None:
        """Bitrix24's view of the agents' day (absent, not clocked in) changed: tell the calls that care."""
        before = {ext: self.availability.of(ext) for ext in set(found) | set(self.availability.crm)}
        self.availability.crm = dict(found)
        for ext, old in before.items():
            new = self.availability.of(ext)
            if new is not old:
                self._broadcast(AvailabilityChanged(ext, new))

    def _broadcast(self, event: AvailabilityChanged) -> None:
        for call_id in list(self.calls):
            self._step_call(call_id, event)

    def _intercept(self, event: Intercepted) -> None:
        """A member dialled an intercept code: give them the oldest call ringing in a group they belong to."""
        candidates = [
            c
            for c in self.calls.values()
            if c.state is State.RINGING and c.walk is not None and _group_has(c, event.ext, event.code)
        ]
        if not candidates:
            log.info("call.intercept_refused", ext=event.ext, reason="no call is ringing for this member")
            self._spawn(self.pbx.execute(event.leg, HangupCaller("normal")))
            return
        target = min(candidates, key=lambda c: c.started_at)
        self._step_call(target.call_id, event)

    def _resynced(self, event: Resynced) -> None:
        """After a reconnect: calls whose channels are gone ended while we were away."""
        live = {ch.id for ch in event.channels}
        linked = {ch.linkedid for ch in event.channels if ch.linkedid}
        for ext, availability in event.availability.items():
            self.availability.device[ext] = availability
        log.info("pbx.resynced", link=event.link, channels=len(live))
        if event.link in self._linked:
            self.metrics.reconnects.labels(link=event.link).inc()
        self._linked.add(event.link)
        if event.link == "ari":
            for call_id, call in list(self.calls.items()):
                for leg in call.ringing:
                    if leg.id not in live:
                        log.info("call.reconciled", call_id=call_id, leg=leg.id, found="leg gone")
                        self._step_call(call_id, LegEnded(leg.id, LegOutcome.NO_ANSWER))
                call = self.calls.get(call_id, call)
                if call.talk is not None and call.talk.leg not in live and call_id in live:
                    log.info("call.reconciled", call_id=call_id, leg=call.talk.leg, found="agent gone")
                    self._step_call(call_id, LegEnded(call.talk.leg, LegOutcome.HANGUP))
                if call_id not in live and call_id in self.calls:
                    log.info("call.reconciled", call_id=call_id, found="caller gone")
                    self._step_call(call_id, CallerHungUp(16))
        else:
            for key in list(self.observed):
                if key not in linked and key not in live:
                    log.info("call.reconciled", call_id=key, found="observed call gone")
                    self.step_observed(key, ObservedEnded(cause=16))

    # -- stepping ---------------------------------------------------------------------------------------

    def _step_call(self, call_id: str, event: Event) -> None:
        call = self.calls.get(call_id)
        if call is None:
            log.debug("call.unknown", call_id=call_id, on=type(event).__name__)
            return
        now = self.clock()
        with bind_call(call_id, call.linkedid, call.line):
            new, commands = core.step(call, event, now)
            if new.ignored:
                log.debug("call.ignored", on=type(event).__name__, reason=new.ignored)
                return
            if new.warning:
                log.warning("call.warning", problem=new.warning)
            if new.state is not call.state:
                log.info("call.transition", on=type(event).__name__, **{"from": call.state.value}, to=new.state.value)
            self.calls[call_id] = new
            self._emit(call_id, new.linkedid, commands, observed=False)
            self._arm(call_id, new.deadline, now, observed=False)
            if new.talk is not None and (call.talk is None or call.talk.leg != new.talk.leg) and new.talk.ext:
                self._answered[new.talk.ext] = self._answered.get(new.talk.ext, 0) + 1
            if new.state is State.DONE:
                del self.calls[call_id]
                self._finished(
                    call_id, "inbound", new.line, new.caller, new.handled_by, [leg.id for leg in new.crm_legs]
                )

    def start_observed(self, key: str, event: ObservedStarted) -> None:
        if not key or key in self.observed:
            log.debug("observed.duplicate_start", call_id=key)
            return
        self.observed[key] = watch.start_observed(self.plan(), key, self.clock())
        self.metrics.active_calls.set(self.active)
        self.step_observed(key, event)

    def step_observed(self, key: str, event: ObservedEvent) -> None:
        call = self.observed.get(key)
        if call is None:
            return
        now = self.clock()
        with bind_call(key, key, call.line):
            new, commands = watch.step(call, event, now)
            if new.ignored:
                log.debug("call.ignored", on=type(event).__name__, reason=new.ignored)
                return
            if new.warning:
                log.warning("call.warning", problem=new.warning)
            if new.state is not call.state:
                log.info("call.transition", on=type(event).__name__, **{"from": call.state.value}, to=new.state.value)
            self.observed[key] = new
            self._emit(key, key, commands, observed=True)
            self._arm(key, new.deadline, now, observed=True)
            if new.state is watch.ObservedState.DONE:
                legs = [new.crm_leg] if new.crm_leg else []
                del self.observed[key]
                self._finished(key, new.direction.value, new.line, new.number, new.talker, legs)

    def _finished(self, key: str, kind: str, line: str, number: str, handled_by: str, legs: list[str]) -> None:
        finishes = self._finishes.pop(key, [])
        status = finishes[0].status_code if finishes else ""
        duration = sum(f.duration for f in finishes)
        summary = CallSummary(key, kind, line, number, handled_by, status, duration, tuple(legs))
        self.ended.append(summary)
        self.metrics.calls.labels(status=status or "none").inc()
        self.metrics.active_calls.set(self.active)
        log.info("call.ended", kind=kind, status=status, duration=duration, handled_by=handled_by, crm_legs=legs)
        executor = self._executors.pop(key, None)
        if executor is not None:
            executor.close()

    # -- commands -----------------------------------------------------------------------------------------

    def _emit(self, key: str, linkedid: str, commands: list[Any], *, observed: bool) -> None:
        wrote = False
        for cmd in commands:
            if isinstance(cmd, CRM_COMMANDS):
                self.outbox.append(cmd, linkedid=linkedid, pbx_call=key)
                log.info("crm.queued", command=type(cmd).__name__, crm_leg=getattr(cmd, "crm_leg", ""))
                if isinstance(cmd, CrmFinish):
                    self._finishes.setdefault(key, []).append(cmd)
                wrote = True
            elif isinstance(cmd, LookupCrm):
                self._spawn(self._lookup(key, cmd.phone))
            elif not observed:
                self._executor(key).submit(cmd)
        if wrote:
            self.outbox_changed()

    def submit(self, key: str, cmd: PbxCommand) -> None:
        """Run a PBX command for ``key`` after the ones already submitted for it."""
        self._executor(key).submit(cmd)

    def expect_callback(self, channel: str, phone: str) -> None:
        """``channel`` (being originated) is a callback to ``phone``: it enters as an inbound call of TYPE 4."""
        self._callbacks[channel] = phone

    def forget_callback(self, channel: str) -> None:
        self._callbacks.pop(channel, None)

    def _executor(self, key: str) -> _Executor:
        executor = self._executors.get(key)
        if executor is None:
            executor = self._executors[key] = _Executor(key, self.pbx, self._pbx_failed)
        return executor

    def _pbx_failed(self, key: str, cmd: PbxCommand, error: Exception) -> None:
        """A PBX command failed. The link has already reported a leg it could not originate as ended."""
        log.warning("pbx.command_failed", call_id=key, command=type(cmd).__name__, error=str(error))

    async def _lookup(self, key: str, phone: str) -> None:
        timeout = self.plan().crm_lookup_timeout
        client: CrmClient | None = None
        try:
            client = await asyncio.wait_for(self.lookup(phone), timeout)
        except TimeoutError:
            log.warning("crm.lookup_timeout", call_id=key, timeout=timeout)
        except Exception as exc:  # the CRM being away must never hold the call
            log.warning("crm.lookup_failed", call_id=key, error=str(exc))
        self.put(LookupDone(key, client))

    def _arm(self, key: str, deadline: datetime | None, now: datetime, *, observed: bool) -> None:
        handle = self._timers.pop((key, observed), None)
        if handle is not None:
            handle.cancel()
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, (deadline - now).total_seconds())
        self._timers[(key, observed)] = loop.call_later(delay, self.put, TimerDue(key, observed))

    def _answered_counts(self, now: datetime) -> dict[str, int]:
        if self._answered_day != now.date():
            self._answered_day = now.date()
            self._answered.clear()
        return self._answered

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for executor in list(self._executors.values()):
            await executor.drain(grace=2.0)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _group_has(call: Call, ext: str, code: str) -> bool:
    walk = call.walk
    if walk is None or not walk.queue:
        return False
    queue = call.plan.queues.get(walk.queue)
    return queue is not None and ext in queue.members and (not code or queue.intercept_code in ("", code))


class _Executor:
    """Runs one call's PBX commands in order, in its own task, so the dispatcher never waits for the PBX."""

    def __init__(self, key: str, pbx: PbxPort, failed: Callable[[str, PbxCommand, Exception], None]) -> None:
        self.key = key
        self.pbx = pbx
        self.failed = failed
        self.queue: asyncio.Queue[PbxCommand | None] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._run())

    def submit(self, cmd: PbxCommand) -> None:
        self.queue.put_nowait(cmd)

    def close(self) -> None:
        self.queue.put_nowait(None)

    async def drain(self, grace: float) -> None:
        self.close()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), grace)
        except (TimeoutError, asyncio.CancelledError):
            self.task.cancel()

    async def _run(self) -> None:
        while (cmd := await self.queue.get()) is not None:
            try:
                await self.pbx.execute(self.key, cmd)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failed(self.key, cmd, exc)
