"""The STATUS_CODE table: Asterisk outcome -> Bitrix24 finish status, and the talk-time rule."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bridge.domain.events import Direction, LegOutcome
from bridge.domain.status import status_code, talk_seconds
from tests.domain.builders import T0

IN, OUT = Direction.INBOUND, Direction.OUTBOUND


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # answered -> 200, whatever else is said
        ({"answered": True, "outcome": LegOutcome.HANGUP, "cause": 16}, "200"),
        ({"answered": False, "dialstatus": "ANSWER"}, "200"),
        ({"answered": False, "dialstatus": " answer "}, "200"),
        # outbound outcomes of a leg
        ({"answered": False, "outcome": LegOutcome.NO_ANSWER}, "304"),
        ({"answered": False, "outcome": LegOutcome.BUSY}, "486"),
        ({"answered": False, "outcome": LegOutcome.UNAVAILABLE}, "480"),
        ({"answered": False, "outcome": LegOutcome.CONGESTION}, "503"),
        ({"answered": False, "outcome": LegOutcome.REJECTED}, "603"),
        ({"answered": False, "outcome": LegOutcome.FAILED}, "OTHER"),
        # AMI DialStatus
        ({"answered": False, "dialstatus": "BUSY"}, "486"),
        ({"answered": False, "dialstatus": "NOANSWER"}, "304"),
        ({"answered": False, "dialstatus": "CANCEL"}, "603-S"),
        ({"answered": False, "dialstatus": "CHANUNAVAIL"}, "480"),
        ({"answered": False, "dialstatus": "congestion"}, "503"),
        ({"answered": False, "dialstatus": "DONTCALL"}, "603"),
        ({"answered": False, "dialstatus": "TORTURE"}, "603"),
        ({"answered": False, "dialstatus": "INVALIDARGS"}, "404"),
        # hangup causes
        ({"answered": False, "cause": 17}, "486"),
        ({"answered": False, "cause": 19}, "304"),
        ({"answered": False, "cause": 18}, "304"),
        ({"answered": False, "cause": 16}, "603-S"),
        ({"answered": False, "cause": 127}, "603-S"),
        ({"answered": False, "cause": 21}, "603"),
        ({"answered": False, "cause": 20}, "480"),
        ({"answered": False, "cause": 1}, "404"),
        ({"answered": False, "cause": 28}, "484"),
        ({"answered": False, "cause": 34}, "503"),
        ({"answered": False, "cause": 42}, "503"),
        ({"answered": False, "cause": 38}, "OTHER"),
        ({"answered": False}, "OTHER"),
        ({"answered": False, "dialstatus": "ABORT"}, "OTHER"),
        # Local channels: the ;1 half says cause 0 for busy and congested agents; DialStatus wins
        ({"answered": False, "dialstatus": "BUSY", "cause": 0}, "486"),
        ({"answered": False, "dialstatus": "CONGESTION", "cause": 0}, "503"),
        ({"answered": False, "dialstatus": "NOANSWER", "cause": 21}, "304"),
        # ... and our own ring timeout (reported as the outcome) wins over both
        ({"answered": False, "outcome": LegOutcome.NO_ANSWER, "dialstatus": "CHANUNAVAIL", "cause": 20}, "304"),
        # an answered-then-hung-up outcome says nothing about an unanswered call: the cause decides
        ({"answered": False, "outcome": LegOutcome.HANGUP, "cause": 17}, "486"),
        ({"answered": False, "dialstatus": "ABORT", "cause": 127}, "603-S"),
    ],
)
def test_outbound_status(kwargs: dict[str, object], expected: str) -> None:
    assert status_code(OUT, **kwargs) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"outcome": LegOutcome.UNAVAILABLE, "cause": 20},
        {"outcome": LegOutcome.BUSY},
        {"dialstatus": "CONGESTION", "cause": 34},
        {"cause": 16},
        {},
    ],
)
def test_an_unanswered_inbound_call_is_always_missed_never_the_last_agent_legs_code(kwargs: dict[str, object]) -> None:
    assert status_code(IN, answered=False, **kwargs) == "304"  # type: ignore[arg-type]
    assert status_code(IN, answered=True, **kwargs) == "200"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(11.0, 11), (11.4, 11), (11.5, 12), (0.2, 1), (0.0, 1), (-3.0, 1), (3600.0, 3600)],
)
def test_talk_time_is_whole_seconds_from_the_answer_and_at_least_one(seconds: float, expected: int) -> None:
    assert talk_seconds(T0, T0 + timedelta(seconds=seconds)) == expected
