"""The machine for calls the bridge only watches on AMI (no Stasis): ``step(call, event, now)``.

Kinds of calls, told apart by ``ObservedStarted``:

* Outbound from a desk phone through the dialplan: register TYPE 1 (OUTGOING) for the employee who dials,
  with the card shown to them for the whole call (they see the client's CRM record while they dial and talk;
  ``finish`` hides it); finish with the talk time and the outbound status (``status.py``: DialStatus first).
* Click-to-call (``adopt_call_id``): Bitrix24 registered the call itself, so ``CrmAdopt`` maps our leg to its
  CALL_ID; never register, never show (Bitrix24 opened its own card); finish that CALL_ID the same way.
* Callback (``call_type`` CALLBACK): like outbound, registered as TYPE 4.
* Inbound on a monitor-only line (the dialplan routes): register TYPE 2 for the extension the DID points to,
  else the line's default extension, else the first extension that rings; the card follows the ringing
  extensions and the one who answers; finish 200 with the talk time, or 304 for the missed-call owner.

States: NEW -ObservedStarted-> RINGING -ObservedAnswered-> TALKING; ObservedEnded from either -> finish ->
WRAP_UP (a MixMonitor file is expected: wait for ``ObservedRecording``, at most ``RECORDING_WAIT_SECONDS``,
then attach after the finish) or DONE. Events with no entry for the state are ignored (``ignored`` says why).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from bridge.domain.cards import line_notices
from bridge.domain.commands import (
    CallType,
    Command,
    CrmAdopt,
    CrmAttachRecord,
    CrmFinish,
    CrmHide,
    CrmRegister,
    CrmShow,
)
from bridge.domain.ending import RECORDING_WAIT_SECONDS
from bridge.domain.events import (
    Direction,
    ObservedAnswered,
    ObservedEnded,
    ObservedEvent,
    ObservedRecording,
    ObservedRinging,
    ObservedStarted,
    ObservedStoppedRinging,
    TimerFired,
)
from bridge.domain.records import replace
from bridge.domain.scheme import Plan
from bridge.domain.status import status_code, talk_seconds


class ObservedState(Enum):
    NEW = "new"
    RINGING = "ringing"
    TALKING = "talking"
    WRAP_UP = "wrap_up"
    DONE = "done"


@dataclass(frozen=True)
class Observed:
    plan: Plan = field(repr=False)
    call_id: str
    started_at: datetime
    state: ObservedState = ObservedState.NEW
    direction: Direction = Direction.OUTBOUND
    call_type: CallType = CallType.OUTGOING
    ext: str = ""
    number: str = ""
    line: str = ""
    crm_key: str = ""
    crm_leg: str = ""
    """Our EXTERNAL_CALL_ID of the call once registered or adopted ('' before)."""
    adopted: bool = False
    user_id: int = 0
    """The Bitrix24 user the call is registered for."""
    ringing: tuple[str, ...] = ()
    shown: tuple[int, ...] = ()
    talker: str = ""
    answered_at: datetime | None = None
    recording: str = ""
    recording_ready: bool = False
    timer: datetime | None = None
    ignored: str = ""
    warning: str = ""

    @property
    def deadline(self) -> datetime | None:
        return self.timer


Step = tuple[Observed, list[Command]]
Handler = Callable[[Observed, Any, datetime], Step]


def start_observed(plan: Plan, call_id: str, now: datetime) -> Observed:
    return Observed(plan=plan, call_id=call_id, started_at=now)


def step(call: Observed, event: ObservedEvent, now: datetime) -> Step:
    handler = TABLE.get((call.state, type(event)))
    if handler is None:
        return replace(call, ignored=f"{type(event).__name__} has no meaning in state {call.state.value}"), []
    new, commands = handler(replace(call, ignored="", warning=""), event, now)
    if new.ignored:
        return replace(call, ignored=new.ignored, warning=""), []
    new, cards = _sync(new)
    return new, commands + cards


def _user(call: Observed, ext: str) -> int:
    emp = call.plan.employees.get(ext)
    return emp.user_id if emp and not emp.dismissed else 0


def _default_user(call: Observed) -> int:
    line = call.plan.lines.get(call.line)
    return _user(call, line.default_ext) if line else 0


def _register(call: Observed, user_id: int) -> Step:
    """Register the call for ``user_id`` (once; nothing while nobody is known)."""
    if call.crm_leg or not user_id:
        return call, []
    crm_leg = f"{call.crm_key}.1"
    command = CrmRegister(crm_leg, user_id, call.number, call.call_type, call.line, call.started_at, show=False)
    return replace(call, crm_leg=crm_leg, user_id=user_id), [command]


def _wanted(call: Observed) -> tuple[int, ...]:
    if call.adopted or call.state in (ObservedState.WRAP_UP, ObservedState.DONE):
        return ()
    if call.direction is Direction.OUTBOUND:
        return (call.user_id,)
    users = [_user(call, ext) for ext in (*call.ringing, call.talker) if ext]
    return tuple(dict.fromkeys(u for u in users if u))


def _sync(call: Observed) -> Step:
    if not call.crm_leg:
        return call, []
    want = _wanted(call)
    gone = tuple(u for u in call.shown if u not in want)
    new = tuple(u for u in want if u not in call.shown)
    commands: list[Command] = []
    if gone:
        commands.append(CrmHide(call.crm_leg, gone))
    if new:
        commands.append(CrmShow(call.crm_leg, new))
    return replace(call, shown=want), commands


# --- handlers --------------------------------------------------------------------------------------


def _started(call: Observed, event: ObservedStarted, now: datetime) -> Step:
    inbound = event.direction is Direction.INBOUND
    call = replace(
        call,
        direction=event.direction,
        call_type=event.call_type or (CallType.INCOMING if inbound else CallType.OUTGOING),
        ext=event.ext,
        number=event.number,
        line=event.line,
        crm_key=event.crm_key or call.call_id,
        state=ObservedState.RINGING,
    )
    user = event.user_id or _user(call, event.ext)
    if inbound:
        return _register(call, user or _default_user(call))
    if not user:
        call = replace(call, state=ObservedState.DONE, warning=f"extension {event.ext!r} is not an employee")
        return call, []
    if event.adopt_call_id:
        crm_leg = f"{call.crm_key}.1"
        return replace(call, crm_leg=crm_leg, user_id=user, adopted=True), [
            CrmAdopt(crm_leg, event.adopt_call_id, user, call.number, call.line)
        ]
    return _register(call, user)


def _ringing(call: Observed, event: ObservedRinging, now: datetime) -> Step:
    if call.direction is Direction.OUTBOUND or event.ext in call.ringing:
        return replace(call, ignored=f"{event.ext} rings already or the call is outbound"), []
    return _register(replace(call, ringing=(*call.ringing, event.ext)), _user(call, event.ext))


def _stopped_ringing(call: Observed, event: ObservedStoppedRinging, now: datetime) -> Step:
    if event.ext not in call.ringing:
        return replace(call, ignored=f"{event.ext} is not ringing"), []
    return replace(call, ringing=tuple(ext for ext in call.ringing if ext != event.ext)), []


def _answered(call: Observed, event: ObservedAnswered, now: datetime) -> Step:
    talker = event.ext if call.direction is Direction.INBOUND and event.ext else call.ext
    call = replace(call, state=ObservedState.TALKING, talker=talker, answered_at=now, ringing=())
    return _register(call, _user(call, talker))


def _recording(call: Observed, event: ObservedRecording, now: datetime) -> Step:
    return replace(call, recording=event.name, recording_ready=True), []


def _ended(call: Observed, event: ObservedEnded, now: datetime) -> Step:
    answered = call.answered_at
    status = status_code(call.direction, answered=answered is not None, dialstatus=event.dialstatus, cause=event.cause)
    duration = talk_seconds(answered, now) if answered else 0
    owner = _user(call, call.talker) if answered else 0
    owner = owner or (_default_user(call) if call.direction is Direction.INBOUND else 0) or call.user_id
    call, commands = _register(replace(call, ringing=()), owner)
    if not call.crm_leg:
        return replace(call, state=ObservedState.DONE, warning="nobody owns this call in Bitrix24: not mirrored"), []
    others = tuple(u for u in call.shown if u != owner)
    if others:
        commands.append(CrmHide(call.crm_leg, others))
    line = call.plan.lines.get(call.line)
    chat = line.add_to_chat if line else True
    commands.append(CrmFinish(call.crm_leg, owner, duration, status, event.failed_reason, add_to_chat=chat))
    if line and call.direction is Direction.INBOUND and not answered:
        commands += line_notices(line, call.number, call.started_at, owner, voicemail=False)
    call = replace(call, shown=())
    expected = event.recording or call.recording
    if not answered and call.direction is Direction.OUTBOUND:
        expected = ""  # MixMonitor recorded only ringback: nothing for the CRM
    if expected and call.recording_ready and call.recording == expected:
        return replace(call, state=ObservedState.DONE), [*commands, CrmAttachRecord(call.crm_leg, expected)]
    if expected:
        timer = now + timedelta(seconds=RECORDING_WAIT_SECONDS)
        return replace(
            call, state=ObservedState.WRAP_UP, recording=expected, recording_ready=False, timer=timer
        ), commands
    return replace(call, state=ObservedState.DONE), commands


def _stored(call: Observed, event: ObservedRecording, now: datetime) -> Step:
    if event.name != call.recording:
        return replace(call, ignored=f"recording {event.name} is not this call's"), []
    return replace(call, state=ObservedState.DONE, timer=None), [CrmAttachRecord(call.crm_leg, event.name)]


def _give_up(call: Observed, event: TimerFired, now: datetime) -> Step:
    if call.timer is None or now < call.timer:
        return replace(call, ignored="no deadline has passed"), []
    warning = f"recording {call.recording} not stored in time"
    return replace(call, state=ObservedState.DONE, timer=None, warning=warning), []


_LIVE = (ObservedState.RINGING, ObservedState.TALKING)
TABLE: dict[tuple[ObservedState, type], Handler] = {
    (ObservedState.NEW, ObservedStarted): _started,
    (ObservedState.RINGING, ObservedRinging): _ringing,
    (ObservedState.RINGING, ObservedStoppedRinging): _stopped_ringing,
    (ObservedState.RINGING, ObservedAnswered): _answered,
    **{(state, ObservedRecording): _recording for state in _LIVE},
    **{(state, ObservedEnded): _ended for state in _LIVE},
    (ObservedState.WRAP_UP, ObservedRecording): _stored,
    (ObservedState.WRAP_UP, TimerFired): _give_up,
}
"""(state, event type) -> handler. Anything not here is ignored."""
