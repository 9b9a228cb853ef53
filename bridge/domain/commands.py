"""Outputs of the call core: what the shell must do, as frozen dataclasses.

PBX commands go to the ARI adapter; ``Crm*`` commands go to the journal (outbox) and from there to Bitrix24.
A CRM call is named by ``crm_leg``: the EXTERNAL_CALL_ID of one conversation leg, unique per leg. The delivery
side maps it to the CALL_ID that ``register`` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, IntEnum


class CallType(IntEnum):
    """Bitrix24 ``TYPE`` of ``telephony.externalCall.register``."""

    OUTGOING = 1
    INCOMING = 2
    INCOMING_REDIRECTED = 3
    CALLBACK = 4
    INFO = 5


# --- PBX ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerCaller:
    pass


@dataclass(frozen=True)
class StartMusic:
    """Music on hold (or ringback) to the caller while the walk goes on."""

    moh_class: str = ""
    """The line's music-on-hold class; empty: the PBX settings' own."""


@dataclass(frozen=True)
class StopMusic:
    pass


@dataclass(frozen=True)
class PlayPrompt:
    prompt: str
    """Our id for this playback; it comes back in ``PromptFinished``."""
    media: str


@dataclass(frozen=True)
class StopPrompt:
    prompt: str


@dataclass(frozen=True)
class RingAgent:
    """Originate leg ``leg`` to the employee's device; the PBX gives up after ``timeout`` seconds."""

    leg: str
    ext: str
    timeout: float


@dataclass(frozen=True)
class RingNumber:
    """Originate leg ``leg`` to an external number (a mobile or a forward) through the trunk."""

    leg: str
    number: str
    timeout: float


class ReleaseReason(Enum):
    """Why the core stops a leg (logged as ``leg.released``)."""

    TIMEOUT = "timeout"
    """Its rings are over (or the caller waited as long as the line allows)."""
    BUSY_ELSEWHERE = "busy elsewhere"
    """The agent took another call while it rang."""
    UNREGISTERED = "unregistered"
    ABSENT = "absent"
    NOT_CLOCKED_IN = "not clocked in"
    OFFLINE = "offline in Bitrix24"
    ANSWERED_ELSEWHERE = "answered elsewhere"
    """Another leg answered first."""
    CALLER_GONE = "caller gone"
    """The caller hung up."""
    CALL_ENDED = "call ended"
    """The line's scheme ended the call (hang-up action, voicemail over)."""
    TOO_LATE = "answered too late"
    """It answered after the core had released it."""
    NOT_ALLOWED = "not allowed"
    """An intercept by someone who may not take the call now."""


@dataclass(frozen=True)
class CancelLeg:
    """Stop ringing (or hang up) leg ``leg``."""

    leg: str
    unless_answered: bool = False
    """The core's ring timeout released it: if the PBX has already seen it answer, leave it (the answer, on its
    way to the core, wins the call)."""
    reason: ReleaseReason = field(default=ReleaseReason.CALL_ENDED, compare=False)
    """Why, for the log: an explanation, not part of what the PBX does (so not compared)."""


@dataclass(frozen=True)
class ConnectLeg:
    """Bridge the answered leg ``leg`` with the caller."""

    leg: str


@dataclass(frozen=True)
class StartRecording:
    name: str


@dataclass(frozen=True)
class RecordVoicemail:
    name: str
    max_seconds: float


@dataclass(frozen=True)
class HangupCaller:
    reason: str = "normal"


@dataclass(frozen=True)
class LookupCrm:
    """Ask the CRM who the caller is (answer: ``CrmLookedUp``; the core waits a bounded time)."""

    phone: str


# --- Bitrix24 --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrmRegister:
    crm_leg: str
    user_id: int
    phone: str
    call_type: CallType
    line: str
    started_at: datetime
    show: bool
    crm_create: bool = True
    crm_source: str = ""
    crm_entity_type: str = ""
    crm_entity_id: int = 0


@dataclass(frozen=True)
class CrmAdopt:
    """Bitrix24 registered this leg itself (click-to-call): ``call_id`` is its CALL_ID; do not register."""

    crm_leg: str
    call_id: str
    user_id: int = 0
    """The employee Bitrix24 registered it for (who clicked): a restart's recovery finishes it for them."""
    phone: str = ""
    line: str = ""


@dataclass(frozen=True)
class CrmShow:
    crm_leg: str
    user_ids: tuple[int, ...]


@dataclass(frozen=True)
class CrmHide:
    crm_leg: str
    user_ids: tuple[int, ...]


@dataclass(frozen=True)
class CrmFinish:
    crm_leg: str
    user_id: int
    duration: int
    """Talk time in whole seconds, from answer to hang-up; 0 when nobody answered."""
    status_code: str
    failed_reason: str = ""
    add_to_chat: bool = True
    """Bitrix24 posts the call to the finishing employee's chat (the line's ``add_to_chat``)."""


@dataclass(frozen=True)
class CrmAttachRecord:
    crm_leg: str
    recording: str


@dataclass(frozen=True)
class CrmMissedTask:
    user_id: int
    title: str
    description: str
    crm_leg: str | None = None
    """A voicemail's CRM leg: the task goes after that leg's recording is attached (journaled under the leg) and
    links the recording; None for a task of no leg."""


@dataclass(frozen=True)
class CrmNotify:
    user_id: int
    message: str


@dataclass(frozen=True)
class CrmAssignLead:
    """Make ``user_id`` responsible for the lead ``crm_leg``'s register created (``CRM_CREATED_LEAD``) and tell
    them (``message``). Journaled after the leg's finish, which would otherwise name the finishing user; the
    delivery leaves alone a lead the call did not create, one already converted or junk, or one someone else took."""

    crm_leg: str
    user_id: int
    """0: the lead stays with the finishing user (unless a field rule below matches)."""
    message: str
    distribution: str = ""
    why: str = ""
    field_rules: tuple[str, ...] = ()
    """Rules on fields of the lead, in order, each its conditions as JSON (``bridge.domain.leads.fields_text``):
    the first the lead matches picks ``field_users[i]`` (0: nobody, the lead stays) instead of ``user_id``."""
    field_users: tuple[int, ...] = ()
    field_whys: tuple[str, ...] = ()
    task_title: str = ""
    """The missed-call task, created after the hand-over for the manager it chose (else ``task_user_id``), so that
    it is one task with the right responsible; empty: no task travels with the hand-over."""
    task_description: str = ""
    task_user_id: int = 0


PbxCommand = (
    AnswerCaller
    | StartMusic
    | StopMusic
    | PlayPrompt
    | StopPrompt
    | RingAgent
    | RingNumber
    | CancelLeg
    | ConnectLeg
    | StartRecording
    | RecordVoicemail
    | HangupCaller
    | LookupCrm
)
CrmCommand = (
    CrmRegister | CrmAdopt | CrmShow | CrmHide | CrmFinish | CrmAttachRecord | CrmMissedTask | CrmNotify | CrmAssignLead
)
Command = PbxCommand | CrmCommand
