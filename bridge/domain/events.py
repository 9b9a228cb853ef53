"""Inputs of the call core: facts that already happened, as frozen dataclasses.

The shell (``bridge.daemon`` via ``bridge.pbx.translate`` and the CRM side) turns wire traffic into these and
feeds them, one at a time and with the current time, to ``bridge.domain.call.step``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from bridge.domain.scheme import Availability


class LegOutcome(Enum):
    """How an outgoing leg (an agent, a mobile, an external number) ended before or after answer."""

    NO_ANSWER = "no_answer"
    BUSY = "busy"
    UNAVAILABLE = "unavailable"
    CONGESTION = "congestion"
    REJECTED = "rejected"
    FAILED = "failed"
    HANGUP = "hangup"
    """The leg was answered and has now hung up."""


@dataclass(frozen=True)
class CallStarted:
    """An inbound call entered the Stasis application for ``line`` (the DID)."""

    line: str
    caller: str
    caller_name: str = ""
    linkedid: str = ""
    crm_key: str = ""
    """Prefix of the unique EXTERNAL_CALL_IDs of this call's legs (unique across restarts)."""
    availability: dict[str, Availability] = field(default_factory=dict)
    """Extension -> availability now; extensions not listed count as available."""
    answered_today: dict[str, int] = field(default_factory=dict)
    """Extension -> calls answered so far, for the ``evenly`` distribution."""


@dataclass(frozen=True)
class CrmClient:
    """What the CRM lookup found about the caller."""

    entity_type: str
    entity_id: int
    responsible_user_id: int | None = None
    fields: dict[str, str] = field(default_factory=dict)
    """Fields of the entity found and of its open deal (e.g. ``OPPORTUNITY``), all as text."""


@dataclass(frozen=True)
class CrmLookedUp:
    """The answer to ``LookupCrm``; ``client`` is None when the caller is unknown."""

    client: CrmClient | None


@dataclass(frozen=True)
class AvailabilityChanged:
    ext: str
    availability: Availability


@dataclass(frozen=True)
class LegAnswered:
    leg: str


@dataclass(frozen=True)
class LegEnded:
    leg: str
    outcome: LegOutcome


@dataclass(frozen=True)
class CallerHungUp:
    cause: int = 16


@dataclass(frozen=True)
class DtmfReceived:
    digit: str


@dataclass(frozen=True)
class PromptFinished:
    prompt: str
    """The ``prompt`` id given in ``PlayPrompt``."""


@dataclass(frozen=True)
class RecordingReady:
    """A recording the core asked for is stored and can be attached."""

    name: str
    duration: float = 0.0


@dataclass(frozen=True)
class Intercepted:
    """A queue member dialled the group's intercept code; their channel is the new leg ``leg``."""

    ext: str
    leg: str
    code: str = ""


@dataclass(frozen=True)
class Transferred:
    """The talking agent transferred the caller.

    Blind (``attended=False``): the new leg ``leg`` now rings ``ext`` or ``number``. Attended: the new leg is
    already talking to the caller.
    """

    leg: str
    ext: str = ""
    number: str = ""
    attended: bool = False


@dataclass(frozen=True)
class TimerFired:
    """The shell's timer for the deadline the core returned has expired."""


Event = (
    CallStarted
    | CrmLookedUp
    | AvailabilityChanged
    | LegAnswered
    | LegEnded
    | CallerHungUp
    | DtmfReceived
    | PromptFinished
    | RecordingReady
    | Intercepted
    | Transferred
    | TimerFired
)
