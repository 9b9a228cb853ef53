"""The dispatcher: see the package's docstring."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

from bridge.dispatch import pbx_facts
from bridge.dispatch.availability import AvailabilityBook
from bridge.dispatch.device_views import DeviceViews
from bridge.dispatch.executor import CallExecutor, PbxPort
from bridge.dispatch.inputs import CallSummary, DeviceSettled, Input, LookupDone, StampedQueue, TimerDue
from bridge.dispatch.tallies import Tallies
from bridge.domain import call as core
from bridge.domain import observed as watch
from bridge.domain.commands import (
    CallType,
    CancelLeg,
    CrmAssignLead,
    CrmCommand,
    CrmFinish,
    CrmHide,
    CrmShow,
    HangupCaller,
    LookupCrm,
    PbxCommand,
)
from bridge.domain.events import (
    CallStarted,
    CrmClient,
    CrmLookedUp,
    Event,
    Intercepted,
    LegEnded,
    ObservedEnded,
    ObservedEvent,
    ObservedStarted,
    TimerFired,
)
from bridge.domain.records import replace
from bridge.domain.scheme import Availability, Plan
from bridge.domain.state import Call, State
from bridge.logs import HotLogger, bind_call
from bridge.ops.metrics import Metrics
from bridge.pbx.events import BadInput, DeviceStateSeen, PbxEvent, Resynced, StasisEntered

log = HotLogger(__name__)

CRM_COMMANDS = CrmCommand.__args__  # type: ignore[attr-defined]
CRM_TYPES: frozenset[type] = frozenset(CRM_COMMANDS)
"""The command classes are never subclassed: a step's commands are sorted by their exact type (a set lookup, where
``isinstance`` against the nine classes of the union tried each in turn for every command)."""
CARD_MOVES: frozenset[type] = frozenset({CrmShow, CrmHide})
"""The card following the ring: no user waits on the request itself, so it may ride with the next one."""


NOW_UTC: Callable[[], datetime] = functools.partial(datetime.now, UTC)
"""The default clock: a C-level partial, not a lambda (no Python frame for each of a step's readings)."""
OWN_HANDLING: frozenset[type] = frozenset(
    {BadInput, CallStarted, DeviceStateSeen, Intercepted, Resynced, StasisEntered, ObservedStarted}
)
"""The PBX events :meth:`Dispatcher._pbx` handles otherwise than by stepping their call (never subclassed, as the
commands): any other goes to its call without trying each of these in turn."""


class Outbox(Protocol):
    def append(self, cmd: CrmCommand, *, linkedid: str = "", pbx_call: str = "", line: str = "") -> int: ...


class WorkloadView(Protocol):
    def counts(self, kind: str) -> dict[str, int]: ...
    def count_one(self, kind: str, ext: str) -> None: ...


class NoWorkload:
    """Nothing counted: every member has 0 open leads and deals."""

    def counts(self, kind: str) -> dict[str, int]:
        return {}

    def count_one(self, kind: str, ext: str) -> None:
        pass


class Dispatcher:
    def __init__(
        self,
        *,
        plan: Callable[[], Plan],
        pbx: PbxPort,
        outbox: Outbox,
        outbox_changed: Callable[[], None],
        outbox_soon: Callable[[], None] | None = None,
        lookup: Callable[[str], Awaitable[CrmClient | None]],
        metrics: Metrics,
        clock: Callable[[], datetime] = NOW_UTC,
        on_stasis: Callable[[StasisEntered], None] | None = None,
        history: int = 1000,
        queue: StampedQueue | None = None,
        tallies: Tallies | None = None,
        workload: WorkloadView | None = None,
    ) -> None:
        self.queue = queue if queue is not None else StampedQueue()
        """Every input, in order; the PBX links put their events here directly."""
        self.plan = plan
        self.pbx = pbx
        self.outbox = outbox
        self._together: Callable[[], AbstractContextManager[None]] | None = getattr(outbox, "transaction", None)
        """The outbox's transaction, if it commits each append itself (SQLite): a step's appends share one."""
        self.outbox_changed = outbox_changed
        self.outbox_soon = outbox_soon or outbox_changed
        """Called instead of ``outbox_changed`` when a step wrote only card moves (show, hide): they may wait a
        moment for a request that goes anyway."""
        self.lookup = lookup
        self.metrics = metrics
        self.clock = clock
        self.on_stasis = on_stasis
        self.calls: dict[str, Call] = {}
        self.observed: dict[str, watch.Observed] = {}
        self.availability = AvailabilityBook()
        self.devices = DeviceViews(self.availability, self.calls, self.step_call, self.put)
        self.ended: deque[CallSummary] = deque(maxlen=history)
        self.accepting = True
        self.tallies = tallies or Tallies()
        """Answered calls today (``evenly``) and each lead distribution's last manager, kept across restarts."""
        self.workload = workload or NoWorkload()
        """``leads`` / ``deals`` -> extension -> open ones, from a cache (never waits for Bitrix24)."""
        self._timers: dict[tuple[str, bool], asyncio.TimerHandle] = {}
        self._executors: dict[str, CallExecutor] = {}
        self._finishes: dict[str, list[CrmFinish]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.links_seen: set[str] = set()
        """PBX links that have connected once (their next resync is a reconnect)."""
        self._callbacks: dict[str, str] = {}
        self.caller_names: dict[str, str] = {}
        """Call -> the caller's name as the PBX gave it (CALLERID(name)), while the call goes on."""
        self.foreign: Callable[[PbxEvent], bool] | None = None
        """Gets first look at every PBX event of a call; True means it took the event (click-to-call sessions)."""
        self.hung_up_at: Callable[[str], datetime | None] = lambda _channel: None
        """When the PBX's other link saw a channel hang up (AMI), for ends a resync finds late."""
        self.restart = pbx_facts.RestartClaims(put=self.put)
        """Calls a restart's recovery decides about: their start waits for its decision (``pbx_facts``)."""

    # -- the loop ---------------------------------------------------------------------------------------

    def put(self, item: Input) -> None:
        self.queue.put_nowait(item)

    async def run(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                if type(item) is PbxEvent:  # nearly every input (never subclassed): straight to its handling
                    self._pbx(item)
                else:
                    self.handle(item)
            except Exception:  # one bad event must not stop every other call
                log.exception("dispatch.error", input=type(item).__name__)
            self.metrics.event_lag.observe(time.perf_counter() - self.queue.taken_put_at)

    def handle(self, item: Input) -> None:
        if isinstance(item, PbxEvent):  # nearly every input: one test instead of four
            self._pbx(item)
        elif isinstance(item, LookupDone):
            self.step_call(item.call, CrmLookedUp(item.client))
        elif isinstance(item, DeviceSettled):
            self.devices.settled(item)
        else:
            self._timers.pop((item.call, item.observed), None)
            if item.observed:
                self.step_observed(item.call, TimerFired())
            else:
                self.step_call(item.call, TimerFired())

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
        if type(event) not in OWN_HANDLING:  # a fact of a call in progress (most): not one of the tests below
            if item.call is not None and item.call in self.observed:
                self.step_observed(item.call, event)  # type: ignore[arg-type]
            elif item.call is not None:
                self.step_call(item.call, event, pbx_facts.happened_at(self.hung_up_at, item))  # type: ignore[arg-type]
            return
        if isinstance(event, DeviceStateSeen):  # the most frequent of these first (the classes are distinct)
            self.devices.seen(event.ext, event.state)
        elif isinstance(event, BadInput):
            log.warning("pbx.bad_input", reason=event.reason)
        elif isinstance(event, CallStarted):
            self._start(item.call or "", event)
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
            self.step_call(item.call, event, pbx_facts.happened_at(self.hung_up_at, item))  # type: ignore[arg-type]

    def _intercept(self, event: Intercepted) -> None:
        target = pbx_facts.intercept_target(self.calls.values(), event)
        if target is None:
            log.info("call.intercept_refused", ext=event.ext, reason="no call is ringing for this member")
            self.spawn(self.pbx.execute(event.leg, HangupCaller("normal")))
        else:
            self.step_call(target, event)

    def _resynced(self, event: Resynced) -> None:
        """After a (re)connect: the device states it listed, and the calls that ended while the link was away."""
        self.devices.listed(event.devices)
        log.info("pbx.resynced", link=event.link, channels=len(event.channels))
        if event.link in self.links_seen:
            self.metrics.reconnects.labels(link=event.link).inc()
        self.links_seen.add(event.link)
        if event.link != "ari":
            for key in pbx_facts.observed_gone(list(self.observed), event):
                log.info("call.reconciled", call_id=key, found="observed call gone")
                self.step_observed(key, ObservedEnded(cause=16))
            return
        for end in pbx_facts.resync_ends(dict(self.calls), event, self.hung_up_at):
            call = self.calls.get(end.call)
            if call is not None:  # an earlier end may have finished it
                leg = {"leg": end.event.leg} if isinstance(end.event, LegEnded) else {}
                log.info("call.reconciled", call_id=end.call, line=call.line, linkedid=call.linkedid, **leg,
                         found=end.found)  # fmt: skip
                self.step_call(end.call, end.event, end.at)

    def _start(self, call_id: str, event: CallStarted) -> None:
        if not call_id or call_id in self.calls:
            log.warning("call.duplicate_start", call_id=call_id)
            return
        if not self.accepting:
            log.warning("call.refused", call_id=call_id, reason="shutting down")
            self.spawn(self.pbx.execute(call_id, HangupCaller("congestion")))
            return
        with bind_call(call_id, event.linkedid, event.line):
            resumed = pbx_facts.start_or_park(self.restart, call_id, event)
        if resumed is None:
            return
        event, serial = resumed
        now = self.clock()
        plan = self.plan()
        callback = self._callbacks.pop(call_id, None)
        event = replace(
            event,
            crm_key=event.crm_key or call_id,
            availability=self.availability.snapshot(),
            answered_today=self.tallies.answered_today(now),
            open_leads=self.workload.counts("leads"),
            open_deals=self.workload.counts("deals"),
            last_assigned=dict(self.tallies.last_assigned()),
            **({} if callback is None else {"caller": callback, "call_type": CallType.CALLBACK}),
        )
        self.calls[call_id] = core.start_call(plan, call_id, now, serial)
        if event.caller_name:
            self.caller_names[call_id] = event.caller_name
        with bind_call(call_id, event.linkedid, event.line):
            log.info("call.started", caller=event.caller, caller_name=event.caller_name)
        self.metrics.active_calls.set(self.active)
        self.step_call(call_id, event)

    def crm_availability(self, found: dict[str, Availability]) -> None:
        """Bitrix24's view of the agents' day (absent, not clocked in) changed: tell the calls that care."""
        self.devices.crm_changed(found)

    # -- stepping ---------------------------------------------------------------------------------------

    def step_call(self, call_id: str, event: Event, at: datetime | None = None) -> None:
        """Feed ``event`` to the call's core; carry out what it returns (journal, PBX, timer), log the step.

        ``at``: when it happened, if earlier than now (an end found by a resync)."""
        self.devices.flush(call_id)
        call = self.calls.get(call_id)
        if call is None:
            log.debug("call.unknown", call_id=call_id, on=type(event).__name__)
            return
        now = self.clock() if at is None else at
        # the start event brings the call's line and linkedid: its own lines carry them already
        named = event if isinstance(event, CallStarted) else call
        with bind_call(call_id, call.linkedid or named.linkedid, call.line or named.line):
            new, commands = core.step(call, event, now)
            if new.ignored:
                log.debug("call.ignored", on=type(event).__name__, reason=new.ignored)
                return
            if new.warning:
                log.warning("call.warning", problem=new.warning)
            if new.state is not call.state:
                log.info(
                    "call.transition", **{"on": type(event).__name__, "from": call.state.value, "to": new.state.value}
                )
            self.calls[call_id] = new
            _log_releases(call, commands)
            self._emit(call_id, new.linkedid, new.line, commands, observed=False)
            self._arm(call_id, new.deadline, now, observed=False)
            if new.talk is not None and (call.talk is None or call.talk.leg != new.talk.leg) and new.talk.ext:
                self.tallies.count_answer(new.talk.ext, now)
            if new.state is State.DONE:
                del self.calls[call_id]
                self._finished(
                    call_id, "inbound", new.line, new.caller, new.handled_by, [leg.id for leg in new.crm_legs]
                )
        self.devices.stepped(call_id, call, new)

    def start_observed(self, key: str, event: ObservedStarted) -> None:
        if not key or key in self.observed:
            log.debug("observed.duplicate_start", call_id=key)
            return
        self.observed[key] = watch.start_observed(self.plan(), key, self.clock())
        self.metrics.active_calls.set(self.active)
        self.step_observed(key, event)

    def step_observed(self, key: str, event: ObservedEvent, at: datetime | None = None) -> None:
        """Like :meth:`step_call`, for a watched call (``at``: a moment a restart's recovery learned late)."""
        call = self.observed.get(key)
        if call is None:
            return
        now = self.clock() if at is None else at
        with bind_call(key, key, call.line or (event.line if isinstance(event, ObservedStarted) else "")):
            new, commands = watch.step(call, event, now)
            if new.ignored:
                log.debug("call.ignored", on=type(event).__name__, reason=new.ignored)
                return
            if new.warning:
                log.warning("call.warning", problem=new.warning)
            if new.state is not call.state:
                log.info(
                    "call.transition", **{"on": type(event).__name__, "from": call.state.value, "to": new.state.value}
                )
            self.observed[key] = new
            self._emit(key, key, new.line, commands, observed=True)
            self._arm(key, new.deadline, now, observed=True)
            if new.state is watch.ObservedState.DONE:
                legs = [new.crm_leg] if new.crm_leg else []
                del self.observed[key]
                self._finished(key, new.direction.value, new.line, new.number, new.talker, legs)

    def _finished(self, key: str, kind: str, line: str, number: str, handled_by: str, legs: list[str]) -> None:
        finishes = self._finishes.pop(key, [])
        status = finishes[0].status_code if finishes else ""
        duration = sum(f.duration for f in finishes)
        name = self.caller_names.pop(key, "")
        summary = CallSummary(key, kind, line, number, handled_by, status, duration, tuple(legs), name, self.clock())
        self.ended.append(summary)
        self.metrics.calls.labels(status=status or "none").inc()
        self.metrics.active_calls.set(self.active)
        log.info("call.ended", kind=kind, status=status, duration=duration, handled_by=handled_by, crm_legs=legs)
        executor = self._executors.pop(key, None)
        if executor is not None:
            executor.close()

    # -- commands -----------------------------------------------------------------------------------------

    def _emit(self, key: str, linkedid: str, line: str, commands: list[Any], *, observed: bool) -> None:
        together = self._together
        crm = 0
        if together is not None:  # two Bitrix24 commands or more (counted without a generator)
            for cmd in commands:
                if type(cmd) in CRM_TYPES:
                    crm += 1
                    if crm > 1:
                        break
        if together is not None and crm > 1:
            with together():  # the step's appends in one commit: all of them are journaled or none
                self._carry_out(key, linkedid, line, commands, observed=observed)
        else:
            self._carry_out(key, linkedid, line, commands, observed=observed)

    def _carry_out(self, key: str, linkedid: str, line: str, commands: list[Any], *, observed: bool) -> None:
        wrote = urgent = False
        for cmd in commands:
            kind = type(cmd)
            if kind in CRM_TYPES:
                if self.restart.registered_already(key, cmd):
                    continue
                self.outbox.append(cmd, linkedid=linkedid, pbx_call=key, line=line)
                log.info("crm.queued", command=type(cmd).__name__, crm_leg=getattr(cmd, "crm_leg", ""))
                if kind is CrmFinish:
                    self._finishes.setdefault(key, []).append(cmd)
                elif kind is CrmAssignLead:
                    self._lead_assigned(cmd)
                wrote = True
                urgent = urgent or kind not in CARD_MOVES
            elif kind is LookupCrm:
                self.spawn(self._lookup(key, cmd.phone))
            elif not observed:
                self._executor(key).submit(cmd)
        if urgent:
            self.outbox_changed()
        elif wrote:
            self.outbox_soon()

    def _lead_assigned(self, cmd: CrmAssignLead) -> None:
        emp = self.plan().employee_by_user(cmd.user_id)
        if emp is not None:
            self.tallies.assigned(cmd.distribution, emp.ext)
            self.workload.count_one("leads", emp.ext)  # until the next count says more
            # the calls going on learnt these at their start: their round robin goes on after this one
            last, leads = dict(self.tallies.last_assigned()), self.workload.counts("leads")
            for key, live in self.calls.items():
                self.calls[key] = replace(live, last_assigned=last, open_leads=leads)
        log.info("leads.distributed", crm_leg=cmd.crm_leg, distribution=cmd.distribution, user_id=cmd.user_id,
                 why=cmd.why)  # fmt: skip

    def submit(self, key: str, cmd: PbxCommand) -> None:
        """Run a PBX command for ``key`` after the ones already submitted for it."""
        self._executor(key).submit(cmd)

    def expect_callback(self, channel: str, phone: str) -> None:
        """``channel`` (being originated) is a callback to ``phone``: it enters as an inbound call of TYPE 4."""
        self._callbacks[channel] = phone

    def forget_callback(self, channel: str) -> None:
        self._callbacks.pop(channel, None)

    @property
    def callbacks_dialling(self) -> int:
        """Callbacks originated whose client has not picked up (yet)."""
        return len(self._callbacks)

    def _executor(self, key: str) -> CallExecutor:
        executor = self._executors.get(key)
        if executor is None:
            executor = self._executors[key] = CallExecutor(key, self.pbx, self._pbx_failed)
        return executor

    def _pbx_failed(self, key: str, cmd: PbxCommand, error: Exception) -> None:
        """A PBX command failed. The link has already reported a leg it could not originate as ended."""
        log.warning("pbx.command_failed", call_id=key, command=type(cmd).__name__, error=str(error))

    async def _lookup(self, key: str, phone: str) -> None:
        timeout = self.plan().crm_lookup_timeout
        client: CrmClient | None = None
        try:
            async with asyncio.timeout(timeout):
                client = await self.lookup(phone)
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

    def answered_today(self) -> dict[str, int]:
        """Extension -> calls it answered today."""
        return dict(self.tallies.answered_today(self.clock()))

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run ``coro`` in the background (cancelled by :meth:`close`)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self.devices.close()
        # every call's executor gets the same grace at the same time: a shutdown under load takes 2 s, not 2 s a call
        await asyncio.gather(*(executor.drain(grace=2.0) for executor in list(self._executors.values())))
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _log_releases(call: Call, commands: list[Any]) -> None:
    """``leg.released`` for each leg the core stops, with the core's reason (the call's context is bound)."""
    for cmd in commands:
        if type(cmd) is CancelLeg:
            leg = next((x for x in (*call.ringing, *call.released) if x.id == cmd.leg), None)
            ext = leg.ext if leg is not None else (call.talk.ext if call.talk and call.talk.leg == cmd.leg else "")
            log.info("leg.released", leg=cmd.leg, ext=ext, reason=cmd.reason.value)
