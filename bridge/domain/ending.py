"""How a call ends: missed (nobody talked) or after a conversation, and the bounded wait for recordings."""

from __future__ import annotations

from datetime import datetime, timedelta

from bridge.domain.cards import (
    ensure_registered,
    finish,
    missed_notices,
    missed_owner,
    recordings_pending,
)
from bridge.domain.commands import CancelLeg, Command, CrmMissedTask, HangupCaller, ReleaseReason
from bridge.domain.events import Direction
from bridge.domain.leads import carry_task, lead_step
from bridge.domain.legs import release
from bridge.domain.records import replace
from bridge.domain.state import Call, State, Step, move
from bridge.domain.status import status_code

RECORDING_WAIT_SECONDS = 30.0
"""After the end, how long the core waits for recordings to be stored before it gives up attaching them."""


def end_missed(call: Call, now: datetime, *, hang_up: bool) -> Step:
    """Nobody talked: release every ringing leg, finish as missed (304, duration 0) for the missed-call owner,
    send the task / notification the line asks for."""
    left_message = call.state is State.VOICEMAIL_RECORDING
    call, commands = release(call, call.ringing, ReleaseReason.CALL_ENDED if hang_up else ReleaseReason.CALLER_GONE)
    if hang_up:
        commands.append(HangupCaller())
    owner = missed_owner(call)
    call, register = ensure_registered(call, owner, now)
    pick, assign = lead_step(call, False, now) if owner else (None, [])
    call, finished = finish(call, owner, 0, status_code(Direction.INBOUND, answered=False))
    notices = missed_notices(call, pick.user_id if pick and pick.user_id else owner, left_message) if owner else []
    if not owner:
        call = replace(call, warning="nobody owns this call in Bitrix24 (set the line's default_ext): not mirrored")
    assign, notices = carry_task(assign, notices)
    if recordings_pending(call):  # the voicemail's task waits for its recording: it links it
        held = tuple(n for n in notices if isinstance(n, CrmMissedTask) and n.crm_leg)
        call, notices = replace(call, held=held), [n for n in notices if n not in held]
    return settle(call, now), [*commands, *register, *finished, *assign, *notices]


def end_talk(call: Call, now: datetime, *, by_caller: bool) -> Step:
    """The conversation ended: hang up the other side and finish the CRM leg with the talk time."""
    assert call.talk is not None, "only a talking call ends a conversation"
    talk = replace(call.talk, ended_at=now)
    commands: list[Command] = [CancelLeg(talk.leg, reason=ReleaseReason.CALLER_GONE) if by_caller else HangupCaller()]
    call = replace(call, talk=None, talks=(*call.talks, talk))
    user_id = talk.user_id or missed_owner(call)
    _pick, assign = lead_step(call, True, now)
    call, finished = finish(call, user_id, talk.seconds, status_code(Direction.INBOUND, answered=True))
    return settle(call, now), [*commands, *finished, *assign]


def settle(call: Call, now: datetime) -> Call:
    """The caller is gone: wait (bounded) for recordings still to attach, else done."""
    gone = {"walk": None, "menu": None, "prompt": "", "music": False, "grace": (), "ended_at": now}
    if recordings_pending(call):  # reads the CRM legs only: the same before and after ``gone``
        return move(call, State.WRAP_UP, timer=now + timedelta(seconds=RECORDING_WAIT_SECONDS), **gone)
    return move(call, State.DONE, timer=None, **gone)
