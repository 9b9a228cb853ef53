"""The core's ``replace``: the same record :func:`dataclasses.replace` gives, for less."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from bridge.domain.records import replace
from bridge.domain.state import Call, State


def test_a_replaced_call_equals_what_dataclasses_gives_and_leaves_the_old_one_alone() -> None:
    call = Call(plan=None, call_id="1.1", started_at=datetime(2026, 1, 2, tzinfo=UTC))  # type: ignore[arg-type]
    new = replace(call, state=State.RINGING, serial=3)
    assert new == dataclasses.replace(call, state=State.RINGING, serial=3)
    assert type(new) is Call
    assert (call.state, call.serial) == (State.NEW, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.serial = 4  # type: ignore[misc]


def test_a_name_that_is_not_a_field_is_refused() -> None:
    call = Call(plan=None, call_id="1.1", started_at=datetime(2026, 1, 2, tzinfo=UTC))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="no field stat"):
        replace(call, stat=State.RINGING)


@dataclasses.dataclass(frozen=True)
class Checked:
    seconds: int

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError("negative")


@dataclasses.dataclass(frozen=True)
class Derived:
    base: int
    double: int = dataclasses.field(init=False, default=0)


def test_a_record_that_checks_itself_still_runs_its_check() -> None:
    assert replace(Checked(1), seconds=2) == Checked(2)
    with pytest.raises(ValueError, match="negative"):
        replace(Checked(1), seconds=-1)
    assert replace(Derived(1), base=2) == Derived(2)
