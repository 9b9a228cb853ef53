"""A call talking while the whole call centre's devices change keeps reading them right, and keeps of its own only
what reads differently for it (its own agent's phone), not a copy of every change it was told."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from bridge.dispatch.availability import AvailabilityBook
from bridge.dispatch.device_views import KEEP_CHANGES, DeviceViews
from bridge.domain.call import start_call
from bridge.domain.events import Event
from bridge.domain.overlay import Overlay
from bridge.domain.scheme import Availability as A
from bridge.domain.state import Call, State, Talk
from tests.domain.builders import plan

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
OTHERS = [f"2{n:04d}" for n in range(3 * KEEP_CHANGES)]


def talking(book: AvailabilityBook, call_id: str, ext: str) -> tuple[Call, Call]:
    new = replace(start_call(plan(), call_id, NOW), availability=book.snapshot())
    return new, replace(new, state=State.TALKING, talk=Talk(f"{call_id}.1", f"{call_id}-leg1", ext, 11, NOW))


def test_a_call_talking_through_thousands_of_device_changes_keeps_only_its_own_reading() -> None:
    book = AvailabilityBook()
    calls: dict[str, Call] = {}
    stepped: list[tuple[str, Event]] = []
    views = DeviceViews(book, calls, lambda call_id, event: stepped.append((call_id, event)), lambda _item: None)
    for call_id, ext in (("c1", "1001"), ("c2", "1002")):
        before, calls[call_id] = talking(book, call_id, ext)
        views.flush(call_id)
        views.stepped(call_id, before, calls[call_id])
    views.seen("1001", "INUSE")  # c1's own leg answered: free for c1, busy for everybody else
    for ext in OTHERS:  # every other agent takes a call: more changes than a talking call is kept behind by
        views.seen(ext, "INUSE")
    views.flush("c1")
    views.flush("c2")

    assert stepped == []
    first, second = calls["c1"].availability, calls["c2"].availability
    assert first.get("1001") is A.AVAILABLE and second.get("1001") is A.BUSY
    assert all(first.get(ext) is A.BUSY and second.get(ext) is A.BUSY for ext in OTHERS)
    assert isinstance(first, Overlay) and isinstance(second, Overlay)
    shared = book.snapshot()
    assert isinstance(shared, Overlay)
    assert set(first.own) - set(shared.own) == {"1001"}
    assert set(second.own) <= set(shared.own)
