"""A call's view of the agents' devices after it missed many changes (a call talking in a busy call centre)."""

from __future__ import annotations

from bridge.dispatch.availability import AvailabilityBook
from bridge.dispatch.device_views import DeviceViews
from bridge.domain.commands import ConnectLeg
from bridge.domain.events import AvailabilityChanged, Event, LegAnswered
from bridge.domain.scheme import Availability, Hangup, ToQueue
from bridge.domain.state import Call, State
from tests.domain.builders import Driver, queue, route, started

BUSY, FREE = Availability.BUSY, Availability.AVAILABLE


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
