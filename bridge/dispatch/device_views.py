"""Each call's view of the agents' devices: re-read when a device state, Bitrix24's day or the call's own legs
change, and told to the call's core only when it changed (``presence`` says how a state reads for a call)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import structlog

from bridge.dispatch import presence
from bridge.dispatch.availability import AvailabilityBook
from bridge.dispatch.inputs import DeviceSettled
from bridge.domain import call as core
from bridge.domain.events import AvailabilityChanged, Event
from bridge.domain.scheme import Availability
from bridge.domain.state import Call

log = structlog.get_logger(__name__)


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
        self._settles: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._noted: dict[str, dict[str, Availability]] = {}
        """Call -> device news it only records, not applied yet (see :meth:`flush`)."""

    def seen(self, ext: str, state: str) -> None:
        """The PBX reported ``ext``'s device state (AMI and ARI may both report the same change: once is enough)."""
        if self.book.devices.get(ext) == state:
            return
        self.book.devices[ext] = state
        self.reread(ext, list(self.calls))

    def listed(self, states: dict[str, str]) -> None:
        """A resync listed the device states: re-read those that changed while the link was away."""
        for ext, state in states.items():
            self.seen(ext, state)

    def crm_changed(self, found: dict[str, Availability]) -> None:
        """Bitrix24's view of the agents' day (absent, not clocked in) is now ``found``."""
        changed = {ext for ext in set(found) | set(self.book.crm) if found.get(ext) != self.book.crm.get(ext)}
        self.book.crm = dict(found)
        for ext in changed:
            self.reread(ext, list(self.calls))

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

    def close(self) -> None:
        for handle in self._settles.values():
            handle.cancel()
        self._settles.clear()

    def _tell(self, call_id: str, call: Call, ext: str, device: Availability) -> None:
        availability = self.book.of(ext, device)
        noted = self._noted.get(call_id, {})
        if noted.get(ext, call.availability.get(ext, Availability.AVAILABLE)) is availability:
            return
        if core.only_records_availability(call, ext, availability):
            self._noted.setdefault(call_id, {})[ext] = availability  # applied by flush, before the call's next step
        else:
            self.step(call_id, AvailabilityChanged(ext, availability))

    def flush(self, call_id: str) -> None:
        """Apply the device news noted for a call that only records them; the dispatcher calls this before every
        step of the call, so the core never decides on a stale view, and a change seen by 200 calls costs 200
        dictionary writes instead of 200 steps."""
        noted = self._noted.pop(call_id, None)
        call = self.calls.get(call_id)
        if noted and call is not None:
            self.calls[call_id] = core.note_availability(call, noted)

    def _settle_later(self, call_id: str, ext: str) -> None:
        if (call_id, ext) not in self._settles:
            loop = asyncio.get_running_loop()
            self._settles[(call_id, ext)] = loop.call_later(self.settle_seconds, self.put, DeviceSettled(call_id, ext))

    def _drop_settle(self, call_id: str, ext: str) -> None:
        handle = self._settles.pop((call_id, ext), None)
        if handle is not None:
            handle.cancel()
