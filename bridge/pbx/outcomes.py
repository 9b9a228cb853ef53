"""The PBX's words for outcomes and presence, mapped to the domain's: one table each, no I/O.

* A leg on a **Local channel** (``Local/1001@agents``) ends as its ``Dial`` status says (BUSY, CHANUNAVAIL, ...);
  the ``;1`` half we hold reports cause 0 for busy and congestion, so its hangup cause means nothing. A leg
  destroyed with no final ``Dial`` status rang until our originate timeout: no answer.
* A leg on a **single channel** (``PJSIP/1001``) ends as its hangup cause says (17 busy, 18/19 no answer, 20
  unregistered, 21 rejected, 34/42 congestion); its ``Dial`` status is the fallback.
* **Device state -> availability** (design.md) for a call with no leg of its own on the device: UNAVAILABLE/INVALID
  -> unregistered; INUSE/BUSY/RINGINUSE/ONHOLD -> busy; NOT_INUSE, UNKNOWN and RINGING -> available (a site without
  presence still gets its calls). A call whose own leg is on the device reads it in ``bridge/dispatch/presence.py``.
"""

from __future__ import annotations

import re

from bridge.domain.events import LegOutcome
from bridge.domain.scheme import Availability

FINAL_DIALSTATUS: dict[str, LegOutcome] = {
    "BUSY": LegOutcome.BUSY,
    "CHANUNAVAIL": LegOutcome.UNAVAILABLE,
    "CONGESTION": LegOutcome.CONGESTION,
    "NOANSWER": LegOutcome.NO_ANSWER,
    "CANCEL": LegOutcome.NO_ANSWER,
    "ABORT": LegOutcome.FAILED,
    "DONTCALL": LegOutcome.REJECTED,
    "TORTURE": LegOutcome.REJECTED,
    "INVALIDARGS": LegOutcome.FAILED,
    "ANSWER": LegOutcome.NO_ANSWER,
}
"""Final ``Dial`` statuses of a leg that never reached us answered (ANSWER here: it hung up before entering
Stasis, which the walk treats as no answer)."""

PROGRESS_DIALSTATUS = frozenset({"", "RINGING", "PROGRESS", "PROCEEDING"})
"""``Dial`` statuses that are not an outcome yet."""

CAUSE_OUTCOMES: dict[int, LegOutcome] = {
    17: LegOutcome.BUSY,
    18: LegOutcome.NO_ANSWER,
    19: LegOutcome.NO_ANSWER,
    20: LegOutcome.UNAVAILABLE,
    21: LegOutcome.REJECTED,
    34: LegOutcome.CONGESTION,
    42: LegOutcome.CONGESTION,
    1: LegOutcome.FAILED,
    3: LegOutcome.FAILED,
    27: LegOutcome.UNAVAILABLE,
    28: LegOutcome.FAILED,
    38: LegOutcome.FAILED,
    41: LegOutcome.CONGESTION,
    44: LegOutcome.CONGESTION,
    66: LegOutcome.FAILED,
}
"""Hangup causes (``include/asterisk/causes.h``) of an unanswered single-channel leg."""

CALLER_CANCEL_CAUSES = frozenset({0, 16, 26, 31, 127})
"""Causes of a leg hung up before answer by someone else (us cancelling it, answered elsewhere): no answer."""

REJECT_CAUSE = 21

DEVICE_AVAILABILITY: dict[str, Availability] = {
    "UNAVAILABLE": Availability.UNREGISTERED,
    "INVALID": Availability.UNREGISTERED,
    "INUSE": Availability.BUSY,
    "BUSY": Availability.BUSY,
    "RINGINUSE": Availability.BUSY,
    "ONHOLD": Availability.BUSY,
    "NOT_INUSE": Availability.AVAILABLE,
    "UNKNOWN": Availability.AVAILABLE,
    "RINGING": Availability.AVAILABLE,
}


def local_leg_outcome(final_dialstatus: str | None, cause: int | None) -> LegOutcome:
    """Outcome of an unanswered leg on a Local channel: the final Dial status, or no answer (our timeout).

    A rejection after ringing shows as ``NOANSWER`` with cause 21 on both halves; that is reported as rejected.
    """
    if final_dialstatus is None:
        return LegOutcome.NO_ANSWER
    outcome = FINAL_DIALSTATUS.get(final_dialstatus, LegOutcome.FAILED)
    if outcome is LegOutcome.NO_ANSWER and final_dialstatus == "NOANSWER" and cause == REJECT_CAUSE:
        return LegOutcome.REJECTED
    return outcome


def single_leg_outcome(final_dialstatus: str | None, cause: int | None) -> LegOutcome:
    """Outcome of an unanswered leg on a single channel (PJSIP, SIP, ...): the hangup cause first."""
    if cause is not None and cause in CAUSE_OUTCOMES:
        return CAUSE_OUTCOMES[cause]
    if final_dialstatus is not None:
        return FINAL_DIALSTATUS.get(final_dialstatus, LegOutcome.FAILED)
    if cause is None or cause in CALLER_CANCEL_CAUSES:
        return LegOutcome.NO_ANSWER
    return LegOutcome.FAILED


def device_state_name(state: str) -> str | None:
    """An Asterisk device state name as we key it (``inuse`` -> ``INUSE``); None for a state we do not know."""
    name = state.strip().upper()
    return name if name in DEVICE_AVAILABILITY else None


_CHANNEL_SUFFIX = re.compile(r"^(?P<device>.+)-[0-9a-fA-F]{8}(?:;[12])?$")


def device_of_channel(name: str) -> str:
    """``PJSIP/1001-0000002a`` -> ``PJSIP/1001``; ``Local/1001@agents-00000002;1`` -> ``Local/1001@agents``."""
    match = _CHANNEL_SUFFIX.match(name)
    return match.group("device") if match else name


class EndpointTemplate:
    """A dial-string template with one ``{ext}`` or ``{number}`` field, and its reverse."""

    def __init__(self, template: str, field: str = "ext") -> None:
        placeholder = "{" + field + "}"
        if template.count(placeholder) != 1:
            raise ValueError(f"template {template!r} must contain {placeholder} exactly once")
        self.template = template
        self.field = field
        before, _, after = template.partition(placeholder)
        self._reverse = re.compile(re.escape(before) + r"(?P<value>[^/@;&,\s]+)" + re.escape(after), re.IGNORECASE)

    def format(self, value: str) -> str:
        return self.template.replace("{" + self.field + "}", value)

    def value_of(self, device: str) -> str | None:
        """The ``{ext}`` of a device name (``PJSIP/1001`` -> ``1001``), or None when it does not fit."""
        match = self._reverse.fullmatch(device)
        return match.group("value") if match else None

    def value_of_channel(self, channel_name: str) -> str | None:
        """The ``{ext}`` of a channel's device (``PJSIP/1001-0000002a`` -> ``1001``)."""
        return self.value_of(device_of_channel(channel_name))
