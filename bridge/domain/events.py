"""Inputs of the call core: facts that already happened, as frozen dataclasses.

The shell (``bridge.daemon`` via ``bridge.pbx.translate`` and the CRM side) turns wire traffic into these and
feeds them, one at a time and with the current time, to ``bridge.domain.call.step``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from bridge.domain.commands import CallType
from bridge.domain.scheme import Availability


class Direction(Enum):
    """Which way a call goes, seen from the company: a client calls in, or an employee calls out."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


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
    availability: Mapping[str, Availability] = field(default_factory=dict)
    """Extension -> availability now; extensions not listed count as available (an ``Overlay`` is kept as is, any
    other mapping copied)."""
    answered_today: Mapping[str, int] = field(default_factory=dict)
    """Extension -> calls answered so far, for the ``evenly`` distribution."""
    open_leads: dict[str, int] = field(default_factory=dict)
    """Extension -> open leads (the shell's cached count), for ``workload`` (queues and lead distribution)."""
    open_deals: dict[str, int] = field(default_factory=dict)
    """Extension -> open deals, for queues whose ``workload_of`` is deals."""
    last_assigned: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Lead distribution id -> its managers in the order they last got a lead, the most recent last (round robin
    goes on after the latest of its candidates)."""
    call_type: CallType = CallType.INCOMING
    """Bitrix24 TYPE of the call's first CRM leg: INCOMING, or CALLBACK for a callback the bridge placed."""


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
    failed: str = ""
    """The media that could not be played (Asterisk: a missing sound file ends its playback as ``failed``)."""


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


# --- calls the bridge only watches (AMI; no Stasis): inputs of ``bridge.domain.observed.step`` ---------------


@dataclass(frozen=True)
class ObservedStarted:
    """A call the dialplan handles itself has started.

    Outbound (a desk phone dials out, a click-to-call or a callback leg): ``ext`` is the employee calling and
    ``number`` the client. Inbound on a monitor-only line: ``number`` is the caller, ``ext`` is empty (or the
    extension the DID points to). ``adopt_call_id`` is set when Bitrix24 registered the call itself
    (click-to-call, ONEXTERNALCALLSTART): the bridge must finish that CALL_ID and never register.
    """

    direction: Direction
    number: str
    ext: str = ""
    line: str = ""
    crm_key: str = ""
    """Prefix of the call's unique EXTERNAL_CALL_ID."""
    call_type: CallType | None = None
    """Bitrix24 TYPE; default OUTGOING for outbound, INCOMING for inbound (CALLBACK for callback legs)."""
    adopt_call_id: str = ""
    user_id: int = 0
    """The employee's Bitrix24 user when the shell knows it (click-to-call's USER_ID); else from ``ext``."""
    linkedid: str = ""


@dataclass(frozen=True)
class ObservedRinging:
    """Extension ``ext`` started ringing for this call (monitor-only inbound lines)."""

    ext: str


@dataclass(frozen=True)
class ObservedStoppedRinging:
    ext: str


@dataclass(frozen=True)
class ObservedAnswered:
    """The call was answered: inbound by ``ext``; outbound by the client (``ext`` may stay empty)."""

    ext: str = ""


@dataclass(frozen=True)
class ObservedEnded:
    """The call hung up. ``dialstatus`` (DialEnd) wins over ``cause`` (Hangup) for the status code.

    ``recording`` names the MixMonitor file of the call, if one ran; the core then waits for
    ``ObservedRecording`` with that name (bounded) to attach it.
    """

    dialstatus: str = ""
    cause: int | None = None
    recording: str = ""
    failed_reason: str = ""
    """Why the call failed, in words, for ``finish``'s FAILED_REASON ('' when the status code says it all)."""


@dataclass(frozen=True)
class ObservedRecording:
    """The recording ``name`` is stored and can be attached."""

    name: str


ObservedEvent = (
    ObservedStarted
    | ObservedRinging
    | ObservedStoppedRinging
    | ObservedAnswered
    | ObservedEnded
    | ObservedRecording
    | TimerFired
)
