"""A call talking while the whole call centre's devices change keeps reading them right, and keeps of its own only
what reads differently for it (its own agent's phone), not a copy of every change it was told."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridge.dispatch.availability import AvailabilityBook
from bridge.dispatch.device_views import KEEP_CHANGES, DeviceViews
from bridge.dispatch.inputs import DeviceSettled
from bridge.domain.call import start_call
from bridge.domain.events import Event
from bridge.domain.overlay import Overlay
from bridge.domain.scheme import Availability as A
from bridge.domain.state import Call, Leg, State, Talk
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


EXTS = ["1001", "1002", "1003", "1004"]
STATES = ["NOT_INUSE", "INUSE", "RINGING", "RINGINUSE", "ONHOLD", "BUSY", "UNAVAILABLE"]
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("device"), st.sampled_from(EXTS), st.sampled_from(STATES)),
        st.tuples(st.just("crm"), st.dictionaries(st.sampled_from(EXTS), st.sampled_from(list(A)), max_size=4)),
        st.tuples(st.just("flush"), st.sampled_from(["c1", "c2"])),
        st.tuples(st.just("settle")),
    ),
    max_size=40,
)


class World:
    """The device views of two calls: c1 talks on 1001; c2 talks on 1002 and has a released leg on 1003."""

    def __init__(self, rebase_at: int) -> None:
        self.book = AvailabilityBook()
        self.calls: dict[str, Call] = {}
        self.settling: list[DeviceSettled] = []
        self.views = DeviceViews(self.book, self.calls, self.stepped, self.settling.append, settle_seconds=3600)
        self.views.rebase_at = rebase_at
        for call_id, ext in (("c1", "1001"), ("c2", "1002")):
            before, self.calls[call_id] = talking(self.book, call_id, ext)
            if call_id == "c2":
                self.calls[call_id] = replace(self.calls[call_id], released=(Leg("c2-leg0", NOW, ext="1003"),))
            self.views.flush(call_id)
            self.views.stepped(call_id, before, self.calls[call_id])

    def stepped(self, call_id: str, event: Event) -> None:
        raise AssertionError(f"a talking call only records availability, {call_id} stepped on {event}")

    def apply(self, op: tuple[Any, ...]) -> None:
        if op[0] == "device":
            self.views.seen(op[1], op[2])
        elif op[0] == "crm":
            self.views.crm_changed(op[1])
        elif op[0] == "flush":
            self.views.flush(op[1])
        elif self.settling:
            self.views.settled(self.settling.pop(0))

    def reads(self) -> dict[str, list[A]]:
        return {c: [call.availability.get(ext, A.AVAILABLE) for ext in EXTS] for c, call in self.calls.items()}


@given(OPS)
def test_a_call_put_back_on_the_shared_view_reads_every_agent_as_it_did(ops: list[tuple[Any, ...]]) -> None:
    async def run() -> None:
        always, never = World(rebase_at=0), World(rebase_at=10**9)
        for op in ops:
            always.apply(op)
            never.apply(op)
            assert always.reads() == never.reads()
        always.views.close()
        never.views.close()

    asyncio.run(run())


def test_a_call_reads_an_unwatched_change_plainly_whatever_it_read_before() -> None:
    """A call that read an agent otherwise than the book (its own leg was on the phone) and no longer watches it
    reads the agent's next device change as the book does, even when the book's reading did not change (INUSE to
    BUSY) and the call's view is over the book's own base."""
    book = AvailabilityBook()
    book.set_device("1001", "INUSE")
    for ext in OTHERS[:100]:  # a busy centre: the book folds its changes into a new base, 1001 in it
        book.set_device(ext, "INUSE")
    calls: dict[str, Call] = {}
    views = DeviceViews(book, calls, lambda call_id, event: None, lambda _item: None)
    shared = book.snapshot()
    assert isinstance(shared, Overlay)
    before, talked = talking(book, "c1", "1002")
    calls["c1"] = replace(talked, availability=shared.updated({"1001": A.AVAILABLE}))
    views.flush("c1")
    views.stepped("c1", before, calls["c1"])
    views.seen("1001", "BUSY")  # the book still reads it busy: only the call's reading changes
    views.flush("c1")
    assert calls["c1"].availability.get("1001") is A.BUSY
