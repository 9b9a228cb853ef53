"""How an agent's device state reads for a call with and without a leg of its own on the device."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.dispatch import presence
from bridge.dispatch.availability import AvailabilityBook
from bridge.domain.call import start_call
from bridge.domain.scheme import Availability as A
from bridge.domain.state import Leg, Talk
from tests.domain.builders import plan

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state", "without_leg", "with_leg"),
    [
        ("NOT_INUSE", A.AVAILABLE, A.AVAILABLE),
        ("RINGING", A.AVAILABLE, A.AVAILABLE),  # our leg rings
        ("INUSE", A.BUSY, A.AVAILABLE),  # our leg answered, its StasisStart on the way
        ("ONHOLD", A.BUSY, A.AVAILABLE),
        ("BUSY", A.BUSY, A.AVAILABLE),  # devicestate_busy_at counts our ringing leg
        ("RINGINUSE", A.BUSY, None),  # ours rings + another call up, or ours up + another rings: unsettled
        ("UNAVAILABLE", A.UNREGISTERED, A.UNREGISTERED),
        ("INVALID", A.UNREGISTERED, A.UNREGISTERED),
        ("UNKNOWN", A.AVAILABLE, A.AVAILABLE),  # no presence (Local devices): calls still come
        (None, A.AVAILABLE, A.AVAILABLE),  # never reported
    ],
)
def test_a_device_state_reads_differently_for_the_call_whose_leg_is_on_it(
    state: str | None, without_leg: A, with_leg: A | None
) -> None:
    assert presence.reading(state, own_leg=False) is without_leg
    assert presence.reading(state, own_leg=True) is with_leg


def test_an_unsettled_reading_is_busy_once_its_time_is_up() -> None:
    assert presence.settled("RINGINUSE", own_leg=True) is A.BUSY
    assert presence.settled("INUSE", own_leg=True) is A.AVAILABLE


def test_a_call_is_on_the_devices_it_rings_has_released_or_talks_on_but_not_on_a_mobile() -> None:
    call = start_call(plan(), "c", NOW)
    ringing = Leg("l1", NOW, ext="1001", user_id=11)
    released = Leg("l2", NOW, ext="1002", user_id=12)
    mobile = Leg("l3", NOW, ext="1003", user_id=13, number="79160001003")
    talk = Talk("k.1", "l4", "1004", 14, NOW)
    call = replace(call, ringing=(ringing, mobile), released=(released,), talk=talk)
    assert presence.devices_of(call) == {"1001", "1002", "1004"}
    assert presence.devices_of(replace(call, talk=replace(talk, ended_at=NOW))) == {"1001", "1002"}


_EXTS = st.sampled_from(["1001", "1002", "1003"])
_WRITES = st.lists(
    st.one_of(
        st.tuples(st.just("device"), _EXTS, st.sampled_from(["NOT_INUSE", "INUSE", "RINGING", "UNAVAILABLE"])),
        st.tuples(st.just("crm"), st.dictionaries(_EXTS, st.sampled_from(list(A)), max_size=3)),
    ),
    max_size=12,
)


@given(_WRITES)
def test_a_new_call_sees_every_known_agent_as_the_book_reads_it_after_any_writes(writes: list[tuple[Any, ...]]) -> None:
    book = AvailabilityBook()
    for write in writes:
        if write[0] == "device":
            book.set_device(write[1], write[2])
        else:
            book.set_crm(write[1])
    assert book.snapshot() == {ext: book.of(ext) for ext in set(book.devices) | set(book.crm)}
