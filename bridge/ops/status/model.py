"""What the status page shows, as one pure function of what the daemon holds (:class:`Sources` -> plain data).

No I/O here: the shell (``bridge.ops.status.sources``) gathers the links, calls, agents, delivery figures and finished
calls into :class:`Sources`; :func:`status_data` turns them into the JSON that ``/status.json`` serves and the
page renders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bridge.dispatch import presence
from bridge.domain import observed as watch
from bridge.domain.scheme import (
    Action,
    Availability,
    Employee,
    Hangup,
    HoldUntilFree,
    Plan,
    ToEmployee,
    ToIvr,
    ToNumber,
    ToQueue,
    ToResponsible,
    ToVoicemail,
)
from bridge.domain.state import Call, Stage, Walk, WalkKind

RECENT_CALLS = 100


@dataclass(frozen=True)
class LinkState:
    """One link as the daemon sees it: up or down since when, and the last error it met."""

    up: bool
    since: datetime | None = None
    last_error: str = ""
    error_at: datetime | None = None
    detail: str = ""


@dataclass(frozen=True)
class ParkedOp:
    """An operation delivery gave up on (``failed`` in the journal)."""

    crm_leg: str
    kind: str
    reason: str
    at: datetime | None


@dataclass(frozen=True)
class DeliveryFigures:
    depth: int
    oldest_pending_seconds: float
    bucket_level: float
    bucket_size: float
    requests_per_minute: float
    commands_per_minute: float
    parked: tuple[ParkedOp, ...] = ()


@dataclass(frozen=True)
class HeldLeg:
    """One Bitrix24 call of a finished call, as the journal says Bitrix24 took it (``delivery``: done, pending,
    failed)."""

    crm_leg: str
    b24_call_id: str
    user_id: int
    duration: int
    status_code: str
    recording: bool
    delivery: str


@dataclass(frozen=True)
class Finished:
    call_id: str
    kind: str
    line: str
    number: str
    caller_name: str
    handled_by: str
    status: str
    duration: int
    ended_at: datetime | None
    legs: tuple[HeldLeg, ...] = ()


@dataclass(frozen=True)
class Sources:
    now: datetime
    plan: Plan
    links: Mapping[str, LinkState]
    calls: Sequence[Call]
    observed: Sequence[watch.Observed]
    caller_names: Mapping[str, str]
    devices: Mapping[str, str]
    """Extension -> the device state the PBX last reported."""
    crm_day: Mapping[str, Availability]
    answered_today: Mapping[str, int]
    delivery: DeliveryFigures
    finished: Sequence[Finished] = field(default_factory=tuple)


def status_data(src: Sources) -> dict[str, Any]:
    """Everything the page shows; times as ISO-8601, durations in whole seconds."""
    on_calls = _agents_on_calls(src)
    return {
        "generated_at": _iso(src.now),
        "links": [_link(name, link, src.now) for name, link in src.links.items()],
        "calls": [_call(call, src) for call in sorted(src.calls, key=lambda c: c.started_at)]
        + [_observed(call, src) for call in sorted(src.observed, key=lambda c: c.started_at)],
        "agents": [_agent(emp, src, on_calls.get(ext, "")) for ext, emp in sorted(src.plan.employees.items())],
        "delivery": _delivery(src.delivery),
        "recent": [_finished(f, src.plan) for f in list(src.finished)[-RECENT_CALLS:][::-1]],
    }


# --- links -----------------------------------------------------------------------------------------------


def _link(name: str, link: LinkState, now: datetime) -> dict[str, Any]:
    return {
        "name": name,
        "up": link.up,
        "since": _iso(link.since),
        "for_seconds": _seconds(link.since, now),
        "last_error": link.last_error,
        "error_at": _iso(link.error_at),
        "detail": link.detail,
    }


# --- calls in progress ---------------------------------------------------------------------------------


def _call(call: Call, src: Sources) -> dict[str, Any]:
    plan = call.plan
    talk = call.talk if call.talk is not None and call.talk.ended_at is None else None
    crm = call.crm_leg
    return {
        "call_id": call.call_id,
        "kind": "inbound",
        "line": call.line,
        "line_name": plan.lines[call.line].name if call.line in plan.lines else "",
        "caller": call.caller,
        "caller_name": src.caller_names.get(call.call_id, ""),
        "state": call.state.value,
        "age_seconds": _seconds(call.started_at, src.now),
        "ringing": [_ring(plan, leg.ext, leg.number, _seconds(leg.started_at, src.now)) for leg in call.ringing],
        "next": _next_step(call),
        "next_in_seconds": _seconds(src.now, call.deadline) if call.deadline is not None else None,
        "card_shown_to": [_user(plan, user) for user in (crm.shown if crm is not None else ())],
        "talking": None
        if talk is None
        else {"ext": talk.ext, "name": _name(plan, talk.ext), "seconds": _seconds(talk.answered_at, src.now)},
    }  # fmt: skip


def _observed(call: watch.Observed, src: Sources) -> dict[str, Any]:
    plan = call.plan
    return {
        "call_id": call.call_id,
        "kind": call.direction.value,
        "line": call.line,
        "line_name": plan.lines[call.line].name if call.line in plan.lines else "",
        "caller": call.number,
        "caller_name": src.caller_names.get(call.call_id, ""),
        "state": call.state.value,
        "age_seconds": _seconds(call.started_at, src.now),
        "ringing": [_ring(plan, ext, "", None) for ext in call.ringing],
        "next": "",
        "next_in_seconds": None,
        "card_shown_to": [_user(plan, user) for user in call.shown],
        "talking": None
        if call.answered_at is None or not call.talker
        else {"ext": call.talker, "name": _name(plan, call.talker), "seconds": _seconds(call.answered_at, src.now)},
    }


def _ring(plan: Plan, ext: str, number: str, seconds: int | None) -> dict[str, Any]:
    return {"ext": ext, "number": number, "name": _name(plan, ext), "seconds": seconds}


def _next_step(call: Call) -> str:
    """What the walk does when the ring running now ends unanswered."""
    walk = call.walk
    if walk is None:
        return ""
    plan = call.plan
    if walk.kind is WalkKind.QUEUE:
        group = plan.queues.get(walk.queue)
        ahead = _queue_ahead(walk, group.passes if group is not None else 1)
        if ahead:
            return f"ring {ahead}"
        return f"queue {walk.queue} final: {action_text(group.final)}" if group is not None else ""
    if walk.kind is WalkKind.EVERYBODY:
        group = plan.queues.get(walk.queue)
        return f"queue {walk.queue} final: {action_text(group.final)}" if group is not None else ""
    if walk.kind is WalkKind.TARGETS:
        if walk.stage is Stage.DEVICE and walk.position < len(walk.order):
            emp = plan.employees.get(walk.order[walk.position])
            if emp is not None and emp.mobile and emp.no_answer_to_mobile:
                return f"ring {emp.ext}'s mobile"
        rest = walk.order[walk.position + 1 :]
        return f"ring {rest[0]}" if rest else "the line's next rule"
    if walk.kind is WalkKind.HOLD:
        return f"offer to the next free member of {walk.queue}"
    if walk.kind is WalkKind.NUMBER:
        return "the line's next rule"
    return "end as missed"


def _queue_ahead(walk: Walk, passes: int) -> str:
    if not walk.order:
        return ""
    nxt = walk.position + 1
    if nxt >= len(walk.order) * max(1, passes):
        return ""
    return walk.order[nxt % len(walk.order)]


def action_text(action: Action) -> str:
    """An action as the config writes it (``queue:sales``, ``voicemail:1001``)."""
    if isinstance(action, ToEmployee):
        return f"employee:{action.ext}"
    if isinstance(action, ToNumber):
        return f"number:{action.number}"
    if isinstance(action, ToQueue):
        return f"queue:{action.queue}"
    if isinstance(action, ToIvr):
        return f"ivr:{action.menu}"
    if isinstance(action, ToResponsible):
        return "responsible" if action.supervisor else "responsible:nosupervisor"
    if isinstance(action, ToVoicemail):
        return f"voicemail:{action.ext}" if action.ext else "voicemail"
    if isinstance(action, HoldUntilFree):
        return f"hold:{action.queue}"
    assert isinstance(action, Hangup)
    return "hangup"


# --- agents ----------------------------------------------------------------------------------------------

REASONS = {
    Availability.BUSY: "busy",
    Availability.UNREGISTERED: "not registered",
    Availability.ABSENT: "absent today (Bitrix24 absence chart)",
    Availability.NOT_CLOCKED_IN: "not clocked in (Bitrix24 time management)",
    Availability.OFFLINE: "offline in Bitrix24 (employees.require_online)",
}


def _agents_on_calls(src: Sources) -> dict[str, str]:
    """Extension -> what it does on one of the bridge's calls now (``ringing for ...``, ``talking on ...``)."""
    found: dict[str, str] = {}
    for call in src.calls:
        for leg in call.ringing:
            if leg.ext and not leg.number:
                found[leg.ext] = f"ringing for {call.caller or call.call_id}"
        if call.talk is not None and call.talk.ext and call.talk.ended_at is None:
            found[call.talk.ext] = f"talking with {call.caller or call.call_id}"
        for ext in presence.devices_of(call) - found.keys():
            found[ext] = f"ending a leg of {call.caller or call.call_id}"
    for obs in src.observed:
        for ext in obs.ringing:
            found.setdefault(ext, f"ringing ({obs.direction.value} {obs.number})")
        if obs.talker:
            found[obs.talker] = f"talking ({obs.direction.value} {obs.number})"
    return found


def _agent(emp: Employee, src: Sources, doing: str) -> dict[str, Any]:
    device = src.devices.get(emp.ext)
    plain = presence.plain(device)
    day = src.crm_day.get(emp.ext, Availability.AVAILABLE)
    if emp.dismissed:
        availability, reason = "dismissed", "no longer an active Bitrix24 user: skipped"
    elif doing:
        availability, reason = "on_call", doing
    elif plain is not Availability.AVAILABLE:
        availability, reason = plain.value, f"{REASONS[plain]} (device {device})"
    elif day is not Availability.AVAILABLE:
        availability, reason = day.value, REASONS[day]
    else:
        availability = "available"
        reason = f"registered, free (device {device})" if device else "no device state reported: counted as free"
    return {
        "ext": emp.ext,
        "user_id": emp.user_id,
        "name": emp.name,
        "device_state": device or "",
        "availability": availability,
        "reason": reason,
        "answered_today": src.answered_today.get(emp.ext, 0),
    }


# --- delivery and finished calls ---------------------------------------------------------------------------


def _delivery(d: DeliveryFigures) -> dict[str, Any]:
    return {
        "journal_depth": d.depth,
        "oldest_pending_seconds": round(d.oldest_pending_seconds),
        "bucket_level": round(d.bucket_level, 1),
        "bucket_size": d.bucket_size,
        "requests_per_minute": round(d.requests_per_minute, 1),
        "commands_per_minute": round(d.commands_per_minute, 1),
        "parked": [{"crm_leg": p.crm_leg, "kind": p.kind, "reason": p.reason, "at": _iso(p.at)} for p in d.parked],
    }


def _finished(f: Finished, plan: Plan) -> dict[str, Any]:
    return {
        "call_id": f.call_id,
        "kind": f.kind,
        "line": f.line,
        "number": f.number,
        "caller_name": f.caller_name,
        "handled_by": f.handled_by,
        "handled_by_name": _name(plan, f.handled_by),
        "status": f.status,
        "duration": f.duration,
        "ended_at": _iso(f.ended_at),
        "bitrix24": [
            {
                "crm_leg": leg.crm_leg, "b24_call_id": leg.b24_call_id, "user_id": leg.user_id,
                "user": _user(plan, leg.user_id), "duration": leg.duration, "status_code": leg.status_code,
                "recording": leg.recording, "delivery": leg.delivery,
            }
            for leg in f.legs
        ],
    }  # fmt: skip


# --- helpers ------------------------------------------------------------------------------------------------


def _name(plan: Plan, ext: str) -> str:
    emp = plan.employees.get(ext)
    return emp.name if emp is not None else ""


def _user(plan: Plan, user_id: int) -> str:
    """A Bitrix24 user as ``name (ext)``, or ``user N`` when the plan does not map them."""
    for emp in plan.employees.values():
        if emp.user_id == user_id:
            return f"{emp.name} ({emp.ext})" if emp.name else emp.ext
    return f"user {user_id}"


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat(timespec="seconds")


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, int((end - start).total_seconds()))
