"""The CRM side of an inbound call: register each conversation leg once, keep the card on exactly the users
whose phone rings or who talk, finish each leg exactly once, and attach its recording only after the finish.

The card is not shown or hidden where a leg starts or stops. ``sync`` compares the users who should see it
now (every ringing leg's user plus the talker) with the users who do, at the end of every step: the card
follows the ring by construction, the whole ``everybody`` group gets one ``show`` and the rest one ``hide``
when somebody answers, and a member who keeps ringing across two legs (re-ring, device -> mobile) never
sees the card flicker.
"""

from __future__ import annotations

from datetime import datetime

from bridge.domain.commands import (
    CallType,
    Command,
    CrmAttachRecord,
    CrmFinish,
    CrmHide,
    CrmMissedTask,
    CrmNotify,
    CrmRegister,
    CrmShow,
)
from bridge.domain.records import replace
from bridge.domain.scheme import Line
from bridge.domain.state import Call, CrmLeg, Step


def employee_user(call: Call, ext: str) -> int:
    """The Bitrix24 user of ``ext``; 0 when it is no employee or a dismissed one."""
    emp = call.plan.employees.get(ext)
    return emp.user_id if emp and not emp.dismissed else 0


def dismissed(call: Call, user_id: int) -> bool:
    emp = call.plan.employee_by_user(user_id)
    return emp is not None and emp.dismissed


def _update(call: Call, leg: CrmLeg) -> Call:
    """``call`` with ``leg`` in place of its CRM leg of the same id (always one of the call's: ids are unique).

    A loop, not a generator: a call has a CRM leg or two, and this runs at every card move."""
    legs = call.crm_legs
    n = 0
    while legs[n].id != leg.id:
        n += 1
    return replace(call, crm_legs=(*legs[:n], leg, *legs[n + 1 :]))


def register(call: Call, user_id: int, now: datetime, call_type: CallType = CallType.INCOMING) -> Step:
    """Register a new CRM leg for ``user_id`` (never shown at once: ``sync`` shows the card to who rings)."""
    line = call.plan.lines[call.line]
    leg_id = f"{call.crm_key or call.call_id}.{len(call.crm_legs) + 1}"
    client = call.client
    command = CrmRegister(
        crm_leg=leg_id,
        user_id=user_id,
        phone=call.caller,
        call_type=call_type,
        line=call.line,
        started_at=call.started_at if not call.crm_legs else now,
        show=False,
        crm_create=line.crm_create,
        crm_source=line.crm_source,
        crm_entity_type=client.entity_type if client else "",
        crm_entity_id=client.entity_id if client else 0,
    )
    return replace(call, crm_legs=(*call.crm_legs, CrmLeg(leg_id, user_id))), [command]


def ensure_registered(call: Call, user_id: int, now: datetime) -> Step:
    """Register the call's first CRM leg for ``user_id`` unless one exists or nobody is known yet."""
    if call.crm_legs or not user_id:
        return call, []
    return register(call, user_id, now, call.call_type)


def wanted(call: Call, leg: CrmLeg) -> tuple[int, ...]:
    """Users who should see the card of ``leg`` (the open CRM leg) now: whoever rings, and whoever talks on it.

    Loops, not comprehensions: a call rings a user or two, and this runs at every step."""
    users: tuple[int, ...] = ()
    for ringing in call.ringing:
        if ringing.user_id and ringing.user_id not in users:
            users += (ringing.user_id,)
    talk = call.talk
    if talk and talk.user_id and talk.crm_leg == leg.id and talk.user_id not in users:
        users += (talk.user_id,)
    return users


def sync(call: Call) -> Step:
    """``hide`` the card from users who no longer ring or talk, ``show`` it to those who newly do."""
    leg = call.crm_leg
    if leg is None:
        return call, []
    want = wanted(call, leg)
    if want == leg.shown:
        return call, []  # most steps: the same users ring and talk
    gone = tuple(u for u in leg.shown if u not in want)
    new = tuple(u for u in want if u not in leg.shown)
    commands: list[Command] = []
    if gone:
        commands.append(CrmHide(leg.id, gone))
    if new:
        commands.append(CrmShow(leg.id, new))
    return _update(call, replace(leg, shown=want)), commands


def finish(call: Call, user_id: int, duration: int, status: str) -> Step:
    """Finish the open CRM leg once, for ``user_id``; hide every other open card first (finish hides the
    finishing user's own); attach the recording at once if it is already stored. A dismissed employee is never
    named: the line's owner (``default_ext``), else the user the leg was registered for, finishes instead."""
    leg = call.crm_leg
    if leg is None:
        return call, []
    if dismissed(call, user_id):
        owner = employee_user(call, call.plan.lines[call.line].default_ext) or leg.user_id
        why = f"user {user_id} is dismissed in Bitrix24, which refuses a finish naming them: finished for user {owner}"
        call, user_id = replace(call, warning=why), owner
    commands: list[Command] = []
    others = tuple(u for u in leg.shown if u != user_id)
    if others:
        commands.append(CrmHide(leg.id, others))
    chat = call.plan.lines[call.line].add_to_chat if call.line in call.plan.lines else True
    commands.append(CrmFinish(leg.id, user_id, duration, status, add_to_chat=chat))
    done = replace(leg, shown=(), finished=True)
    if done.recording_ready:
        commands.append(CrmAttachRecord(leg.id, done.recording))
        done = replace(done, attached=True)
    return _update(call, done), commands


def recording_started(call: Call, name: str) -> Call:
    leg = call.crm_leg
    return _update(call, replace(leg, recording=name)) if leg else call


def recording_ready(call: Call, name: str) -> Step | None:
    """Attach ``name`` if its leg is finished, else remember it; None if no leg waits for it."""
    for leg in call.crm_legs:
        if leg.recording == name and not leg.attached and not leg.recording_ready:
            if not leg.finished:
                return _update(call, replace(leg, recording_ready=True)), []
            return _update(call, replace(leg, attached=True)), [CrmAttachRecord(leg.id, name)]
    return None


def recordings_pending(call: Call) -> bool:
    return any(leg.recording and not leg.attached for leg in call.crm_legs)


def missed_owner(call: Call) -> int:
    """Who owns a missed call: the voicemail's owner; a transfer's target; the CRM-responsible manager; the
    queue's missed-call owner; the line's default extension; whoever the call was registered for."""
    if call.voicemail_user:
        return call.voicemail_user
    leg = call.crm_leg
    if leg is not None and len(call.crm_legs) > 1:
        return leg.user_id
    if call.client and call.client.responsible_user_id and not dismissed(call, call.client.responsible_user_id):
        return call.client.responsible_user_id
    queue = call.plan.queues.get(call.last_queue)
    owners = (queue.missed_owner if queue else "", call.plan.lines[call.line].default_ext)
    for ext in owners:
        if employee_user(call, ext):
            return employee_user(call, ext)
    return leg.user_id if leg else 0


def missed_notices(call: Call, user_id: int, voicemail: bool) -> list[Command]:
    """The missed-call task and notification the call's line asks for (a voicemail's task links its recording)."""
    leg = call.crm_legs[-1].id if voicemail and call.crm_legs else ""
    return line_notices(call.plan.lines[call.line], call.caller, call.started_at, user_id, voicemail, leg)


def missed_task_title(caller: str) -> str:
    """As Bitrix24 names a missed call to the employee: its chat's ``VI_IN_CALL_SKIP`` ("Skipped incoming call from
    #NUMBER#.", voximplant ``lang/en/classes/general/vi_history.php``), without the closing full stop."""
    return f"Skipped incoming call from {caller}"


def line_notices(
    line: Line, caller: str, started_at: datetime, user_id: int, voicemail: bool, leg: str = ""
) -> list[Command]:
    """``leg``: the voicemail's CRM leg, whose recording the task links (journaled after its attachRecord)."""
    what = "left a voicemail" if voicemail else "was not answered"
    text = f"A call from {caller} to line {line.name or line.number} {what}."
    commands: list[Command] = []
    if line.missed_task:
        when = started_at.isoformat(timespec="seconds")
        task_leg = leg if voicemail and leg else None
        commands.append(CrmMissedTask(user_id, missed_task_title(caller), f"{text} Called at {when}.", task_leg))
    if line.missed_notify:
        commands.append(CrmNotify(user_id, text))
    return commands
