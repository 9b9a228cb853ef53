"""Starting and releasing ringing legs, and the caller's music. Cards follow in ``cards.sync``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bridge.domain.cards import employee_user, ensure_registered
from bridge.domain.commands import (
    CancelLeg,
    Command,
    ReleaseReason,
    RingAgent,
    RingNumber,
    StartMusic,
    StopMusic,
    StopPrompt,
)
from bridge.domain.records import replace
from bridge.domain.state import Call, Leg, Step, new_id


def ring_agent(call: Call, ext: str, seconds: float, now: datetime, **changes: Any) -> Step:
    """Ring employee ``ext``'s device; the first employee rung owns the CRM call if nobody else does yet.

    ``changes``: other changes of the call (a walk's new position), made in the same new record."""
    user = employee_user(call, ext)
    serial, leg_id = new_id(call, "leg")  # taken into the call with the leg: one new record, not two
    call, commands = ensure_registered(call, user, now)
    leg = Leg(leg_id, now, ext=ext, user_id=user)
    call = replace(call, serial=serial, ringing=(*call.ringing, leg), **changes)
    return call, [RingAgent(leg_id, ext, seconds), *commands]


def ring_number(call: Call, number: str, seconds: float, now: datetime, *, ext: str = "", user_id: int = 0) -> Step:
    """Ring an external number; ``ext``/``user_id`` when it is an employee's own mobile (their card follows)."""
    serial, leg_id = new_id(call, "leg")
    call, commands = ensure_registered(call, user_id, now)
    leg = Leg(leg_id, now, ext=ext, user_id=user_id, number=number)
    return replace(call, serial=serial, ringing=(*call.ringing, leg)), [RingNumber(leg_id, number, seconds), *commands]


def release(
    call: Call, legs: Iterable[Leg], reason: ReleaseReason, *, cancel: bool = True, on_timeout: bool = False
) -> Step:
    """Stop ``legs`` ringing for ``reason``: ``CancelLeg`` each (unless it ended by itself) and await its end.

    ``on_timeout``: the core's own ring timeout released them, so an answer racing the cancel still wins (the
    cancel is not sent for a leg the PBX has seen answer).
    """
    gone = tuple(legs)
    ids = tuple(leg.id for leg in gone)
    ringing = tuple(leg for leg in call.ringing if leg.id not in ids)
    if not cancel:
        return replace(call, ringing=ringing), []
    if on_timeout:
        call = replace(call, ringing=ringing, released=(*call.released, *gone), grace=ids)
    else:
        call = replace(call, ringing=ringing, released=(*call.released, *gone))
    return call, [CancelLeg(leg.id, unless_answered=on_timeout, reason=reason) for leg in gone]


def music_on(call: Call) -> Step:
    if call.music:
        return call, []
    line = call.plan.lines.get(call.line)
    return replace(call, music=True), [StartMusic(line.moh_class if line else "")]


def media_off(call: Call) -> Step:
    """Silence whatever the caller hears (a prompt, music) before a prompt, a connect or a recording."""
    commands: list[Command] = []
    if call.prompt:
        commands.append(StopPrompt(call.prompt))
    if call.music:
        commands.append(StopMusic())
    return replace(call, prompt="", music=False), commands
