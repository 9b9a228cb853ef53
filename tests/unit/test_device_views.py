"""Device news for calls that do not step for a long time (calls talking): they see every change at their next
step, and no single change brings every such call up to date at once (at 200 calls with 1,240 agents that held up
the event loop for 40-60 ms every 20 s or so)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bridge.dispatch import device_views
from bridge.dispatch.availability import AvailabilityBook
from bridge.dispatch.device_views import CATCH_UP, KEEP_CHANGES, DeviceViews
from bridge.domain.call import start_call
from bridge.domain.scheme import Availability
from bridge.domain.state import Call, State
from tests.domain.builders import plan

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
STATES = ("NOT_INUSE", "INUSE", "UNAVAILABLE", "RINGING")


def talking_calls(book: AvailabilityBook, count: int) -> dict[str, Call]:
    base = replace(start_call(plan(), "c", NOW), state=State.TALKING, availability=book.snapshot())
    return {f"c{index}": replace(base, call_id=f"c{index}") for index in range(count)}


def change_devices(views: DeviceViews, changes: int, agents: int = 300) -> None:
    for index in range(changes):
        views.seen(f"5{index % agents:04d}", STATES[(index // agents + index) % len(STATES)])


def views_of(book: AvailabilityBook, calls: dict[str, Call]) -> tuple[DeviceViews, list[int]]:
    """Views over ``calls``, every one of them stepped once (so known to be up to date), and how many calls were
    flushed at each change from then on."""
    views = DeviceViews(book, calls, step=lambda *_: pytest.fail("no call watches a device"), put=lambda _: None)
    for call_id in calls:
        views.flush(call_id)
    per_change: list[int] = []
    flush, seen = views.flush, views.seen
    flushed = 0

    def counted_flush(call_id: str) -> None:
        nonlocal flushed
        flushed += 1
        flush(call_id)

    def counted_seen(ext: str, state: str) -> None:
        nonlocal flushed
        flushed = 0
        seen(ext, state)
        per_change.append(flushed)

    views.flush = counted_flush  # type: ignore[method-assign]
    views.seen = counted_seen  # type: ignore[method-assign]
    return views, per_change


def test_a_call_that_did_not_step_for_many_changes_sees_every_device_as_it_is_now() -> None:
    book = AvailabilityBook()
    calls = talking_calls(book, 50)
    views, _ = views_of(book, calls)
    change_devices(views, 5 * KEEP_CHANGES)
    for call_id in calls:
        views.flush(call_id)  # before its next step
        seen = calls[call_id].availability
        assert {ext: seen.get(ext, Availability.AVAILABLE) for ext in book.devices} == dict(book.plain())
    assert set(book.plain().values()) >= {Availability.BUSY, Availability.UNREGISTERED}


def test_no_device_change_brings_more_than_a_few_calls_up_to_date_at_once() -> None:
    book = AvailabilityBook()
    calls = talking_calls(book, 200)
    views, per_change = views_of(book, calls)
    change_devices(views, 5 * KEEP_CHANGES)
    assert max(per_change) <= CATCH_UP
    assert sum(per_change) >= 4 * len(calls)  # every call was brought up to date now and then
    assert len(views._changes) <= KEEP_CHANGES + KEEP_CHANGES // 4 + CATCH_UP


def test_with_more_calls_behind_than_it_catches_up_with_the_changes_kept_stay_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(device_views, "KEEP_CHANGES", 16)
    book = AvailabilityBook()
    calls = talking_calls(book, 200)
    views, _ = views_of(book, calls)
    change_devices(views, 400, agents=40)
    assert len(views._changes) <= 2 * 16 + 1
    views.flush("c0")
    seen = calls["c0"].availability
    assert {ext: seen.get(ext, Availability.AVAILABLE) for ext in book.devices} == dict(book.plain())
