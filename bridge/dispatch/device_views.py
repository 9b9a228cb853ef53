"""Each call's view of the agents' devices: re-read when a device state, Bitrix24's day or the call's own legs
change, and told to the call's core only when it changed (``presence`` says how a state reads for a call).

A change reaches at once only the calls that watch the extension (``core.availability_watch``: a walk that rings
it or walks a queue it is in; or a leg of the call on the device); every other call only records it, so it is
logged once and applied to such a call before its next step (:meth:`DeviceViews.flush`): a device change costs
O(calls watching it), not O(calls in progress)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import structlog

from bridge.dispatch import presence
from bridge.dispatch.availability import AvailabilityBook
from bridge.dispatch.inputs import DeviceSettled
from bridge.domain import call as core
from bridge.domain.events import AvailabilityChanged, Event
from bridge.domain.overlay import Overlay
from bridge.domain.scheme import Availability
from bridge.domain.state import LIVE, Call

log = structlog.get_logger(__name__)

_NOTHING: dict[str, Availability] = {}
"""No base under a call's view that is a plain mapping (all of it its own); never written."""
KEEP_CHANGES = 1024
"""Changes kept for calls that have not stepped since; a call further behind gets them applied at once."""
REBASE_AT = 64
"""Changes taken at once (or twice as many gathered) beyond which a call's view goes back to the shared view
(:meth:`DeviceViews._rebased`)."""


class DeviceViews:
    def __init__(
        self,
        book: AvailabilityBook,
        calls: dict[str, Call],
        step: Callable[[str, Event], None],
        put: Callable[[DeviceSettled], None],
        settle_seconds: float = presence.SETTLE_SECONDS,
    ) -> None:
        self.book = book
        self.calls = calls
        self.step = step
        self.put = put
        self.settle_seconds = settle_seconds
        self.rebase_at = REBASE_AT
        self._settles: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._noted: dict[str, dict[str, Availability]] = {}
        """Call -> device news it only records, not applied yet (see :meth:`flush`)."""
        self._watchers: dict[str, set[str]] = {}
        """Extension -> the calls told its changes at once."""
        self._watching: dict[str, frozenset[str]] = {}
        """Call -> the extensions it watches (the inverse of ``_watchers``)."""
        self._changes: list[str] = []
        """Extensions whose state or day changed, in order; ``_first`` is the position of the first one kept."""
        self._first = 0
        self._latest: dict[str, int] = {}
        """Extension -> the position of its latest change in ``_changes`` (kept past a trim)."""
        self._synced: dict[str, int] = {}
        """Call -> the position of the first change not applied to it yet."""

    def seen(self, ext: str, state: str) -> None:
        """The PBX reported ``ext``'s device state (AMI and ARI may both report the same change: once is enough)."""
        if self.book.devices.get(ext) == state:
            return
        self.book.set_device(ext, state)
        self._changed(ext)

    def listed(self, states: dict[str, str]) -> None:
        """A resync listed the device states: re-read those that changed while the link was away."""
        for ext, state in states.items():
            self.seen(ext, state)

    def crm_changed(self, found: dict[str, Availability]) -> None:
        """Bitrix24's view of the agents' day (absent, not clocked in) is now ``found``."""
        changed = {ext for ext in set(found) | set(self.book.crm) if found.get(ext) != self.book.crm.get(ext)}
        self.book.set_crm(found)
        for ext in changed:
            self._changed(ext)

    def stepped(self, call_id: str, before: Call, after: Call) -> None:
        """The call stepped from ``before`` to ``after`` (ended when no longer in ``calls``): what it watches."""
        if call_id not in self.calls:
            self._forget(call_id)
            return
        if (  # what the extensions a call watches follow from: most steps change none of them
            after.state is before.state
            and after.walk == before.walk
            and after.ringing == before.ringing
            and after.released == before.released
            and after.talk == before.talk
        ):
            return
        on = presence.devices_of(after)
        self._watch(call_id, core.availability_watch(after) | on)
        if after.ringing is before.ringing and after.released is before.released and after.talk is before.talk:
            return  # the same legs: on the same devices
        self.legs_moved(call_id, presence.devices_of(before), on)

    def legs_moved(self, call_id: str, before: frozenset[str], after: frozenset[str]) -> None:
        """The call's legs on agent devices changed: the devices it left or joined read differently for it."""
        for ext in before ^ after:
            self.reread(ext, [call_id])

    def reread(self, ext: str, call_ids: Iterable[str]) -> None:
        state = self.book.devices.get(ext)
        for call_id in call_ids:
            call = self.calls.get(call_id)
            if call is None:
                continue
            device = presence.reading(state, ext in presence.devices_of(call))
            if device is None:
                self._settle_later(call_id, ext)
                continue
            if self._settles:  # rarely any: no call to find none
                self._drop_settle(call_id, ext)
            self._tell(call_id, call, ext, device)

    def settled(self, item: DeviceSettled) -> None:
        """An unsettled reading's time is up: whatever the device says now is final for that call."""
        self._settles.pop((item.call, item.ext), None)
        call = self.calls.get(item.call)
        if call is None:
            return
        state = self.book.devices.get(item.ext)
        own = item.ext in presence.devices_of(call)
        if presence.reading(state, own) is None:
            log.info("agent.busy_elsewhere", call_id=item.call, ext=item.ext, device_state=state)
        self._tell(item.call, call, item.ext, presence.settled(state, own))

    def _changed(self, ext: str) -> None:
        self._latest[ext] = self._first + len(self._changes)
        self._changes.append(ext)
        watchers = self._watchers.get(ext)
        if watchers:
            self.reread(ext, list(watchers))
        if len(self._changes) > 2 * KEEP_CHANGES:
            self._trim()

    def _trim(self) -> None:
        end = self._first + len(self._changes)
        for call_id, synced in list(self._synced.items()):
            if synced < end - KEEP_CHANGES:
                self.flush(call_id)
        low = min(self._synced.values(), default=end)
        del self._changes[: low - self._first]
        self._first = low

    def _watch(self, call_id: str, exts: frozenset[str]) -> None:
        before = self._watching.get(call_id, frozenset())
        if exts == before:
            return
        for ext in before - exts:
            self._watchers[ext].discard(call_id)
        for ext in exts - before:
            self._watchers.setdefault(ext, set()).add(call_id)
        self._watching[call_id] = exts

    def _forget(self, call_id: str) -> None:
        self._watch(call_id, frozenset())
        self._watching.pop(call_id, None)
        self._synced.pop(call_id, None)
        self._noted.pop(call_id, None)

    def close(self) -> None:
        for handle in self._settles.values():
            handle.cancel()
        self._settles.clear()

    def _tell(self, call_id: str, call: Call, ext: str, device: Availability) -> None:
        availability = self.book.of(ext, device)
        noted = self._noted.get(call_id)
        if noted is not None and ext in noted:
            if noted[ext] is availability:
                return
        elif call.availability.get(ext, Availability.AVAILABLE) is availability:
            return
        if core.only_records_availability(call, ext, availability):
            self._noted.setdefault(call_id, {})[ext] = availability  # applied by flush, before the call's next step
        else:
            self.step(call_id, AvailabilityChanged(ext, availability))

    def flush(self, call_id: str) -> None:
        """Apply the device news a call only records: those noted for it, and the changes of extensions it does
        not watch since it last stepped (read plainly: it has no leg on them). The dispatcher calls this before
        every step of the call, so the core never decides on a stale view, and a change seen by 200 calls costs
        no step and no work for the calls that do not watch it until they step."""
        noted = self._noted.pop(call_id, None) or {}
        call = self.calls.get(call_id)
        end = self._first + len(self._changes)
        synced = self._synced.get(call_id, end)
        if call is None:
            self._synced.pop(call_id, None)
            return
        self._synced[call_id] = end
        behind = end - synced if call.state in LIVE else 0  # a call that is not live ignores device news
        if not (noted or behind):
            return
        seen = call.availability
        own, base = seen.layers() if isinstance(seen, Overlay) else (seen, _NOTHING)
        if len(noted) + behind > self.rebase_at or len(own) > 2 * self.rebase_at:
            self.calls[call_id] = self._rebased(call_id, call, noted, synced if behind else end)
            return
        if behind:
            unwatched = set(self._changes[synced - self._first :])
            unwatched.difference_update(self._watching.get(call_id, ()))
            # each extension read from the layers, without a method call (a call in a busy centre is often dozens
            # of changes behind at each step)
            since, plain = self.book.plain().layers()
            available = Availability.AVAILABLE
            for ext in unwatched:
                found = since[ext] if ext in since else plain.get(ext, available)
                if ext in noted:
                    mine = noted[ext]
                elif ext in own:
                    mine = own[ext]
                else:
                    mine = base.get(ext, available)
                if mine is not found:
                    noted[ext] = found
        if noted:
            self.calls[call_id] = core.note_availability(call, noted)

    def _rebased(self, call_id: str, call: Call, noted: dict[str, Availability], since: int) -> Call:
        """``call`` with ``noted`` recorded and the extensions it does not watch that changed from position ``since``
        on read plainly, back on the book's shared view with only what reads differently for it on top. For a call
        that takes many changes at once (a call talking while thousands of agents' devices change is flushed with all
        of them) or has gathered many of its own: it kept its own copy of each, then a private copy of the whole call
        centre (with 2,000 calls talking, 20-40 KiB a call).

        Only the extensions it watches, has a leg on, waits to settle or was noted can read differently for a call:
        every other change reaches it plainly (:meth:`flush`). So only those are looked at, not every change since
        the call last stepped (a call that talked while 200 others rang and hung up is over 64 changes behind at
        every hang-up, often hundreds)."""
        seen = call.availability
        own = seen.own if isinstance(seen, Overlay) else seen
        shared = self.book.snapshot()
        settling = {ext for (waiting, ext) in self._settles if waiting == call_id}
        watching = self._watching.get(call_id, frozenset())
        latest = self._latest
        differs: dict[str, Availability] = {}
        for ext in {*own, *noted, *watching, *presence.devices_of(call), *settling}:
            if ext not in watching and latest.get(ext, -1) >= since:
                continue  # changed since the call last stepped and not watched: it reads plainly
            mine = noted[ext] if ext in noted else seen.get(ext, Availability.AVAILABLE)
            if shared.get(ext, Availability.AVAILABLE) is not mine:
                differs[ext] = mine
        return core.note_availability(call, differs, over=shared)

    def _settle_later(self, call_id: str, ext: str) -> None:
        if (call_id, ext) not in self._settles:
            loop = asyncio.get_running_loop()
            self._settles[(call_id, ext)] = loop.call_later(self.settle_seconds, self.put, DeviceSettled(call_id, ext))

    def _drop_settle(self, call_id: str, ext: str) -> None:
        handle = self._settles.pop((call_id, ext), None)
        if handle is not None:
            handle.cancel()
