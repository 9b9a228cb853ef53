"""IVR menus and the voicemail box.

Menu: the prompt plays (music stops); a key during or after it selects its option (the prompt stops). After the
prompt the caller has ``timeout`` seconds for a key. No key, or a key the menu does not have (the invalid
prompt plays first), replays the menu, at most ``max_replays`` times; then ``on_fail`` runs.

Voicemail: the intro prompt plays, then the message is recorded for at most ``plan.voicemail_max_seconds``;
it ends when the caller hangs up or the time is up. The call is finished as missed for the box's owner and
the message is attached to that CRM call once stored.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bridge.domain.cards import employee_user, ensure_registered, missed_owner, recording_started
from bridge.domain.commands import Command, PlayPrompt, RecordVoicemail
from bridge.domain.legs import media_off
from bridge.domain.records import replace
from bridge.domain.scheme import IvrMenu, ToVoicemail
from bridge.domain.state import Call, MenuVisit, State, Step, move, next_id
from bridge.domain.walk import PASS_ON, WalkStep


def enter_menu(call: Call, menu_id: str) -> WalkStep:
    menu = call.plan.menus.get(menu_id)
    if menu is None:
        return call, [], PASS_ON
    return _play(replace(call, walk=None, menu=MenuVisit(menu_id)), menu.prompt, invalid=False)


def _menu(call: Call) -> tuple[MenuVisit, IvrMenu]:
    assert call.menu is not None, "a call in a menu state always has its menu"
    return call.menu, call.plan.menus[call.menu.menu]


def _play(call: Call, media: str, *, invalid: bool) -> WalkStep:
    visit, _ = _menu(call)
    call, off = media_off(call)
    call, prompt = next_id(call, "prompt")
    call = move(call, State.MENU_PROMPT, prompt=prompt, timer=None, menu=replace(visit, invalid=invalid))
    return call, [*off, PlayPrompt(prompt, media)], None


def on_prompt_finished(call: Call, now: datetime) -> WalkStep:
    visit, menu = _menu(call)
    call = replace(call, prompt="")
    if visit.invalid:
        return _play(call, menu.prompt, invalid=False)
    return move(call, State.MENU_WAIT, timer=now + timedelta(seconds=menu.timeout)), [], None


def on_digit(call: Call, digit: str) -> WalkStep:
    _, menu = _menu(call)
    call, off = media_off(call)
    action = dict(menu.options).get(digit)
    if action is None:
        return _replay(call, off, invalid=True)
    return replace(call, menu=None, timer=None), off, action


def on_wait_timeout(call: Call) -> WalkStep:
    return _replay(call, [], invalid=False)


def _replay(call: Call, commands: list[Command], *, invalid: bool) -> WalkStep:
    visit, menu = _menu(call)
    if visit.replays >= menu.max_replays:
        return replace(call, menu=None, timer=None), commands, menu.on_fail
    call = replace(call, menu=replace(visit, replays=visit.replays + 1))
    call, more, _ = _play(call, menu.invalid_prompt if invalid else menu.prompt, invalid=invalid)
    return call, commands + more, None


def enter_voicemail(call: Call, action: ToVoicemail, now: datetime) -> WalkStep:
    """Take a message for ``action.ext`` (else the missed-call owner); nobody to own it -> the next rule."""
    owner = employee_user(call, action.ext) or missed_owner(call)
    if not owner:
        return call, [], PASS_ON
    call, register = ensure_registered(call, owner, now)
    call, off = media_off(call)
    call, prompt = next_id(call, "prompt")
    call = replace(
        move(call, State.VOICEMAIL_PROMPT), walk=None, menu=None, prompt=prompt, timer=None, voicemail_user=owner
    )
    return call, [*register, *off, PlayPrompt(prompt, call.plan.voicemail_prompt_of(call.line))], None


def on_voicemail_prompt_finished(call: Call, now: datetime) -> Step:
    leg = call.crm_leg
    assert leg is not None, "voicemail always has an owner, so the call is registered"
    name = f"{leg.id}-voicemail"
    seconds = call.plan.voicemail_max_seconds
    call = replace(
        move(recording_started(call, name), State.VOICEMAIL_RECORDING),
        prompt="",
        timer=now + timedelta(seconds=seconds),
    )
    return call, [RecordVoicemail(name, seconds)]
