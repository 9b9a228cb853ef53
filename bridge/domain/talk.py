"""Connecting an answered leg, and transfers: every conversation leg is its own CRM call.

Blind transfer: the talker's CRM leg is finished with its own talk time; a new CRM leg (TYPE 3, incoming with
redirection) is registered for the target, whose phone now rings (the card follows); the target's answer
starts a new conversation and recording. If the target does not answer, the call ends missed for the target.
Attended transfer: the same, except that the target already talks.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bridge.domain import walk as walks
from bridge.domain.cards import employee_user, ensure_registered, finish, missed_owner, recording_started, register
from bridge.domain.commands import CallType, ConnectLeg, ReleaseReason, StartRecording
from bridge.domain.events import Direction, Transferred
from bridge.domain.legs import media_off, release
from bridge.domain.records import replace
from bridge.domain.state import Call, Leg, State, Step, Talk, Walk, WalkKind, move, next_id
from bridge.domain.status import status_code

TRANSFER_RINGS = 6
"""A blind transfer's target rings this many rings before the call counts as missed for them."""


def connect(call: Call, leg: Leg, now: datetime) -> Step:
    """Bridge ``leg`` with the caller: stop the music or prompt, release every other leg, record."""
    call, commands = media_off(call)
    commands.append(ConnectLeg(leg.id))
    others = [other for other in call.ringing if other.id != leg.id]
    call, cancelled = release(call, others, ReleaseReason.ANSWERED_ELSEWHERE)
    call = replace(call, ringing=(), released=tuple(old for old in call.released if old.id != leg.id))
    call, registered = ensure_registered(call, leg.user_id or missed_owner(call), now)
    crm = call.crm_leg
    talk = Talk(crm.id if crm else "", leg.id, leg.ext, leg.user_id, now, walk=call.walk)
    call = move(call, State.TALKING, talk=talk, walk=None, menu=None, timer=None, voicemail_user=0)
    call, recording = _record(call)
    return call, [*commands, *cancelled, *registered, *recording]


def not_joined(call: Call, now: datetime) -> walks.WalkStep:
    """The connected leg never joined the caller (hung up by a cancel that crossed its answer, or the PBX refused
    the join): no conversation happened, its recording is not the call's; the interrupted walk goes on."""
    assert call.talk is not None, "only a talking call has a leg that may fail to join"
    interrupted = call.talk.walk
    call = recording_started(replace(call, talk=None), "")
    return walks.resume(call, interrupted, now)


def _record(call: Call) -> Step:
    if not call.plan.lines[call.line].record:
        return call, []
    call, name = next_id(call, "rec")
    return recording_started(call, name), [StartRecording(name)]


def on_transfer(call: Call, event: Transferred, now: datetime) -> Step:
    assert call.talk is not None, "only a talking call is transferred"
    old = replace(call.talk, ended_at=now)
    old_leg = Leg(old.leg, old.answered_at, ext=old.ext, user_id=old.user_id)
    call = replace(call, talk=None, talks=(*call.talks, old), released=(*call.released, old_leg))
    call, commands = finish(call, old.user_id or missed_owner(call), old.seconds, _answered())
    target = employee_user(call, event.ext)
    owner = target or old.user_id or missed_owner(call)
    if owner:
        call, registered = register(call, owner, now, CallType.INCOMING_REDIRECTED)
        commands += registered
    if event.attended:
        crm = call.crm_leg
        talk = Talk(crm.id if crm else "", event.leg, event.ext, target, now)
        call, recording = _record(replace(call, talk=talk))
        return call, commands + recording
    leg = Leg(event.leg, now, ext=event.ext, user_id=target, number=event.number)
    seconds = TRANSFER_RINGS * call.plan.ring_seconds
    call = replace(
        move(call, State.RINGING),
        ringing=(leg,),
        walk=Walk(WalkKind.TRANSFER, ring_seconds=seconds),
        timer=now + timedelta(seconds=seconds),
    )
    return call, commands


def _answered() -> str:
    return status_code(Direction.INBOUND, answered=True)
