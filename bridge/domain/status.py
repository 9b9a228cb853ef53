"""The one table from an Asterisk outcome to Bitrix24's ``STATUS_CODE``, and the talk-time rule.

Rules, in order:

1. Answered (or ``DialStatus`` ANSWER) -> ``200``; the call's DURATION is then at least one second.
2. An unanswered INBOUND call is always ``304`` (missed), never the code of the last agent leg that failed:
   Bitrix24 starts its missed-call automation on exactly this code.
3. An unanswered OUTBOUND call: the leg outcome if the shell knows it, else the ``DialStatus``, else the
   hangup cause. For Local channels the ``;1`` half's cause says 0 "Unknown" for busy or congested agents,
   so ``DialStatus`` (and our own ring timeout, reported as ``LegOutcome.NO_ANSWER``) must win over the cause.
4. Anything not in the tables -> ``OTHER``.

No answer on an outbound call is ``304``, not ``480``: Bitrix24 lists it as "not answered" (the same as its
default for DURATION 0), and ``480`` stays reserved for a destination that is not registered / not reachable,
so the two remain distinguishable in the reports.
"""

from __future__ import annotations

from datetime import datetime

from bridge.domain.events import Direction, LegOutcome

ANSWERED = "200"
MISSED = "304"
OTHER = "OTHER"

BY_OUTCOME: dict[LegOutcome, str] = {
    LegOutcome.NO_ANSWER: "304",
    LegOutcome.BUSY: "486",
    LegOutcome.UNAVAILABLE: "480",
    LegOutcome.CONGESTION: "503",
    LegOutcome.REJECTED: "603",
    LegOutcome.FAILED: OTHER,
}
"""How an unanswered outbound leg ended -> STATUS_CODE (``HANGUP`` means it was answered: rule 1)."""

BY_DIALSTATUS: dict[str, str] = {
    "BUSY": "486",
    "NOANSWER": "304",
    "CANCEL": "603-S",
    "CHANUNAVAIL": "480",
    "CONGESTION": "503",
    "DONTCALL": "603",
    "TORTURE": "603",
    "INVALIDARGS": "404",  # Dial() refused its dial string; the bridge reports an undialable number the same way
}
"""AMI ``DialEnd.DialStatus`` / ARI ``Dial.dialstatus`` of an unanswered outbound call -> STATUS_CODE."""

BY_CAUSE: dict[int, str] = {
    1: "404",  # UNALLOCATED
    16: "603-S",  # NORMAL_CLEARING before answer: the caller gave up
    17: "486",  # USER_BUSY
    18: "304",  # NO_USER_RESPONSE
    19: "304",  # NO_ANSWER
    20: "480",  # SUBSCRIBER_ABSENT
    21: "603",  # CALL_REJECTED
    28: "484",  # INVALID_NUMBER_FORMAT
    34: "503",  # NORMAL_CIRCUIT_CONGESTION
    42: "503",  # SWITCH_CONGESTION
    127: "603-S",  # INTERWORKING (what a cancelled call often reports)
}
"""Q.850 hangup cause of an unanswered outbound call -> STATUS_CODE (used only without a known outcome)."""


def status_code(
    direction: Direction,
    *,
    answered: bool,
    outcome: LegOutcome | None = None,
    dialstatus: str = "",
    cause: int | None = None,
) -> str:
    """The ``STATUS_CODE`` for ``telephony.externalCall.finish`` of one call leg."""
    dial = dialstatus.strip().upper()
    if answered or dial == "ANSWER":
        return ANSWERED
    if direction is Direction.INBOUND:
        return MISSED
    if outcome is not None and outcome in BY_OUTCOME:
        return BY_OUTCOME[outcome]
    if dial in BY_DIALSTATUS:
        return BY_DIALSTATUS[dial]
    if cause is not None and cause in BY_CAUSE:
        return BY_CAUSE[cause]
    return OTHER


def talk_seconds(answered_at: datetime, ended_at: datetime) -> int:
    """DURATION of an answered leg: whole seconds from answer to hang-up (rounded), at least 1.

    Ringing never counts: the clock starts at the answer. An answered call reports at least one second so
    that Bitrix24 (which decides "successful" from DURATION > 0) agrees with STATUS_CODE 200.
    """
    seconds = (ended_at - answered_at).total_seconds()
    return max(1, int(seconds + 0.5))
