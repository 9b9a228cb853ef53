"""Every leg the core stops carries why (``CancelLeg.reason``, logged by the shell as ``leg.released``)."""

from __future__ import annotations

import pytest

from bridge.domain.commands import CancelLeg, ReleaseReason
from bridge.domain.events import AvailabilityChanged, CallerHungUp, LegAnswered, TimerFired
from bridge.domain.scheme import Availability, Distribution, Hangup, ToQueue
from tests.domain.builders import Driver, employees, queue, route, started

R = ReleaseReason


def everybody() -> Driver:
    staff = employees("1001", "1002", "1003")
    q = queue("q", *staff, dist=Distribution.EVERYBODY, rings_per_member=2, final=Hangup())
    d = Driver(route(ToQueue("q"), queues=(q,), staff=staff, default_ext="1003"))
    d(started())
    return d


def reasons(commands: list[object]) -> list[tuple[str, ReleaseReason]]:
    return [(c.leg, c.reason) for c in commands if isinstance(c, CancelLeg)]


@pytest.mark.parametrize(
    ("availability", "reason"),
    [
        (Availability.BUSY, R.BUSY_ELSEWHERE),
        (Availability.UNREGISTERED, R.UNREGISTERED),
        (Availability.ABSENT, R.ABSENT),
        (Availability.NOT_CLOCKED_IN, R.NOT_CLOCKED_IN),
    ],
)
def test_a_ringing_member_who_becomes_unavailable_is_released_saying_why(
    availability: Availability, reason: ReleaseReason
) -> None:
    d = everybody()
    assert reasons(d(AvailabilityChanged("1002", availability), 1)) == [("c-leg2", reason)]


def test_an_answer_releases_the_others_as_answered_elsewhere() -> None:
    d = everybody()
    assert reasons(d(LegAnswered("c-leg1"), 1)) == [("c-leg2", R.ANSWERED_ELSEWHERE), ("c-leg3", R.ANSWERED_ELSEWHERE)]


def test_the_ring_window_ends_as_a_timeout_and_a_caller_who_gives_up_as_caller_gone() -> None:
    d = everybody()
    assert {reason for _, reason in reasons(d(TimerFired(), 20))} == {R.TIMEOUT}
    d = everybody()
    assert {reason for _, reason in reasons(d(CallerHungUp(), 1))} == {R.CALLER_GONE}


def test_a_leg_answering_after_its_release_is_hung_up_as_too_late() -> None:
    d = everybody()
    d(AvailabilityChanged("1002", Availability.BUSY), 1)
    assert reasons(d(LegAnswered("c-leg2"), 2)) == [("c-leg2", R.TOO_LATE)]
