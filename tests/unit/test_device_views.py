"""A call's view of the agents' devices after it missed many changes (a call talking in a busy call centre)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridge.dispatch.availability import AvailabilityBook
from bridge.dispatch.device_views import DeviceViews
from bridge.dispatch.inputs import DeviceSettled
from bridge.domain.call import start_call
from bridge.domain.commands import ConnectLeg
from bridge.domain.events import AvailabilityChanged, Event, LegAnswered
from bridge.domain.scheme import Availability, Hangup, ToQueue
from bridge.domain.state import Call, Leg, State, Talk
from tests.domain.builders import Driver, plan, queue, route, started

BUSY, FREE = Availability.BUSY, Availability.AVAILABLE
A = Availability
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def ringing_and_talking() -> tuple[Call, Call]:
    q = queue("q", "1001", final=Hangup())
    d = Driver(route(ToQueue("q"), queues=(q,), default_ext="1004", record=False))
    d(started())
    ringing = d.call
    assert ConnectLeg("c-leg1") in d(LegAnswered("c-leg1"), 1)
    assert d.call.state is State.TALKING
    return ringing, d.call


def test_a_call_behind_on_changes_reads_the_others_plainly_and_its_own_agent_as_its_leg_makes_it() -> None:
    book = AvailabilityBook()
    ringing, talking = ringing_and_talking()
    calls = {"c": talking}
    steps: list[tuple[str, Event]] = []
    views = DeviceViews(book, calls, step=lambda call, event: steps.append((call, event)), put=lambda _: None)
    views.flush("c")  # the dispatcher's before the answer's step
    views.stepped("c", ringing, talking)  # the call now watches the device of its own leg

    views.seen("1001", "INUSE")  # our own leg answered: the talking call reads its agent as available
    for n in range(3000):  # the rest of the call centre takes and ends calls while ours talks
        ext = str(2000 + n % 500)
        views.seen(ext, "INUSE" if n % 3 else "NOT_INUSE")
    views.seen("2001", "UNAVAILABLE")
    views.flush("c")

    seen = calls["c"].availability
    assert seen.get("1001", FREE) is FREE
    for ext in ("2000", "2001", "2002", "2499"):
        assert seen.get(ext, FREE) is book.of(ext), ext
    assert seen.get("2001") is Availability.UNREGISTERED
    assert not [event for _, event in steps if not isinstance(event, AvailabilityChanged)]


def talking(book: AvailabilityBook, call_id: str, ext: str) -> tuple[Call, Call]:
    new = replace(start_call(plan(), call_id, NOW), availability=book.snapshot())
    return new, replace(new, state=State.TALKING, talk=Talk(f"{call_id}.1", f"{call_id}-leg1", ext, 11, NOW))


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
    """The device views of two calls: c1 talks on 1001; c2 talks on 1002 and has a released leg on 1003.
    ``rebase_at`` 0 puts a call back on the shared view at every flush; a huge one tells it each change."""

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
