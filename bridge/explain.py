"""``b24-bridge explain``: what the routing core does with one call, step by step, on a simulated clock.

Nobody answers unless told: ``--answer EXT@SECONDS`` makes EXT (or a number the plan dials) answer once its
device has rung SECONDS in a leg (each leg counts from its own start; a device that must ring longer than the
ring timeout never answers). Prompts end at once; ``--press`` keys are pressed whenever a menu waits for one;
``--responsible EXT`` makes the CRM know the caller as EXT's client; ``--talk`` is how long a conversation lasts
before the agent hangs up; ``--hangup`` is when the caller hangs up, counted from the call's arrival.
``--at`` without a UTC offset is local time. In the output ``<X>`` stands for the CALL_ID Bitrix24 returns for
the call registered with EXTERNAL_CALL_ID X.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from bridge.crm.builders import voicemail_task_request
from bridge.domain.commands import (
    AnswerCaller,
    CancelLeg,
    Command,
    ConnectLeg,
    CrmAssignLead,
    CrmAttachRecord,
    CrmFinish,
    CrmHide,
    CrmMissedTask,
    CrmNotify,
    CrmRegister,
    CrmShow,
    HangupCaller,
    LookupCrm,
    PlayPrompt,
    RecordVoicemail,
    RingAgent,
    RingNumber,
    StartMusic,
    StartRecording,
    StopMusic,
    StopPrompt,
)
from bridge.domain.leads import describe_fields, fields_from_text
from bridge.domain.scheme import Availability
from bridge.domain.simulation import ExplainError, Trail, TrailStep, explain

__all__ = ["ExplainError", "Trail", "explain", "main", "render_json", "render_text"]

EXIT_USAGE = 2


def _pbx(command: Command, who: dict[str, str], ring: float) -> str | None:
    """A PBX command in words (None for a Bitrix24 one); ``who`` maps legs to the device they ring; ``ring`` is
    one ring in seconds."""
    if isinstance(command, RingAgent | RingNumber):
        device = command.ext if isinstance(command, RingAgent) else command.number
        who[command.leg] = device
        rings = command.timeout / ring
        return f"ring {device} for {command.timeout:g} s ({rings:g} ring{'' if rings == 1 else 's'})"
    if isinstance(command, StartMusic) and command.moh_class:
        return f"music on (class {command.moh_class})"
    simple = {
        AnswerCaller: "answer the caller",
        StartMusic: "music on",
        StopMusic: "music off",
        StopPrompt: "stop the prompt",
        HangupCaller: "hang up the caller",
    }
    if type(command) in simple:
        return simple[type(command)]
    if isinstance(command, CancelLeg):
        return f"stop ringing {who.get(command.leg, command.leg)}"
    if isinstance(command, ConnectLeg):
        return f"connect the caller with {who.get(command.leg, command.leg)}"
    if isinstance(command, PlayPrompt):
        return f"play {command.media}"
    if isinstance(command, StartRecording):
        return f"record the conversation as {command.name}"
    if isinstance(command, RecordVoicemail):
        return f"record a voicemail as {command.name} ({command.max_seconds:g} s at most)"
    if isinstance(command, LookupCrm):
        return f"look {command.phone} up in the CRM"
    return None


def _bitrix24(command: Command) -> list[tuple[str, dict[str, Any]]]:
    """The Bitrix24 methods and parameters a CRM command becomes (none for a PBX command)."""
    if isinstance(command, CrmAssignLead):  # after crm.lead.get finds the lead open and still the finisher's
        lead = f"<lead {command.crm_leg} created>"
        who: Any = command.user_id
        if command.field_rules:  # decided by the lead's fields: the manager reads as the choice the hand-over makes
            ifs = [f"{u or 'nobody'} if the lead has {describe_fields(fields_from_text(t))}"
                   for t, u in zip(command.field_rules, command.field_users, strict=True)]  # fmt: skip
            who = f"<{', else '.join(ifs)}, else {command.user_id or 'nobody'}>"
        requests: list[tuple[str, dict[str, Any]]] = [("crm.lead.get", {"id": lead})]
        requests += [
            ("crm.lead.update", {"id": lead, "fields": {"ASSIGNED_BY_ID": who}}),
            ("im.notify.personal.add", {"USER_ID": who, "MESSAGE": command.message}),
        ]
        if command.task_title:
            fields = {"TITLE": command.task_title, "RESPONSIBLE_ID": who, "DESCRIPTION": command.task_description}
            requests.append(("tasks.task.add", {"fields": fields}))
        return requests
    one = _one(command)
    return [one] if one else []


def _one(command: Command) -> tuple[str, dict[str, Any]] | None:
    if isinstance(command, CrmRegister):
        params: dict[str, Any] = {
            "USER_ID": command.user_id,
            "PHONE_NUMBER": command.phone,
            "TYPE": int(command.call_type),
            "LINE_NUMBER": command.line,
            "EXTERNAL_CALL_ID": command.crm_leg,
            "CALL_START_DATE": command.started_at.isoformat(timespec="seconds"),
            "SHOW": int(command.show),
            "CRM_CREATE": int(command.crm_create),
        }
        if command.crm_source:
            params["CRM_SOURCE"] = command.crm_source
        if command.crm_entity_type:
            params |= {"CRM_ENTITY_TYPE": command.crm_entity_type, "CRM_ENTITY_ID": command.crm_entity_id}
        return "telephony.externalCall.register", params
    if isinstance(command, CrmShow | CrmHide):
        method = "show" if isinstance(command, CrmShow) else "hide"
        return f"telephony.externalCall.{method}", {
            "CALL_ID": f"<{command.crm_leg}>",
            "USER_ID": list(command.user_ids),
        }
    if isinstance(command, CrmFinish):
        return "telephony.externalCall.finish", {
            "CALL_ID": f"<{command.crm_leg}>",
            "USER_ID": command.user_id,
            "DURATION": command.duration,
            "STATUS_CODE": command.status_code,
            "ADD_TO_CHAT": int(command.add_to_chat),
        }
    if isinstance(command, CrmAttachRecord):
        return "telephony.externalCall.attachRecord", {"CALL_ID": f"<{command.crm_leg}>", "FILENAME": command.recording}
    if isinstance(command, CrmMissedTask):
        if command.crm_leg:  # after the recording is attached, linking it (CALL_RECORD_URL of the statistics)
            return voicemail_task_request(command, f"<record of {command.crm_leg}>")
        fields = {"TITLE": command.title, "RESPONSIBLE_ID": command.user_id, "DESCRIPTION": command.description}
        return "tasks.task.add", {"fields": fields}
    if isinstance(command, CrmNotify):
        return "im.notify.personal.add", {"USER_ID": command.user_id, "MESSAGE": command.message}
    return None


def _step_data(step: TrailStep, who: dict[str, str], ring: float) -> dict[str, Any]:
    pbx = [text for text in (_pbx(c, who, ring) for c in step.commands) if text]
    crm = [{"method": m, "params": p} for c in step.commands for m, p in _bitrix24(c)]
    picks = [f"lead distribution {c.distribution}: {c.why}" for c in step.commands if isinstance(c, CrmAssignLead)]
    return {
        "offset": step.offset,
        "event": step.event,
        "state": step.state,
        "ringing": list(step.ringing),
        "pbx": pbx,
        "bitrix24": crm,
        "note": "; ".join(n for n in (step.note, *picks) if n),
    }


def _outcome(trail: Trail) -> str:
    if not trail.complete:
        return f"the simulation stopped with the call still {trail.final_state.replace('_', ' ')}"
    if not trail.status:
        return "Bitrix24 receives no call (nobody owns it: set the line's default_ext)"
    if trail.handled_by:
        return f"STATUS_CODE {trail.status}, handled by {trail.handled_by}"
    return f"STATUS_CODE {trail.status}" + (" (missed)" if trail.status == "304" else "")


def render_json(trail: Trail) -> str:
    who: dict[str, str] = {}
    data = {
        "line": trail.line,
        "line_name": trail.line_name,
        "caller": trail.caller,
        "at": trail.at.isoformat(),
        "status": trail.status,
        "handled_by": trail.handled_by,
        "complete": trail.complete,
        "final_state": trail.final_state,
        "outcome": _outcome(trail),
        "steps": [_step_data(step, who, trail.ring_seconds) for step in trail.steps],
    }
    return json.dumps(data, ensure_ascii=False, indent=2)


def render_text(trail: Trail) -> str:
    who: dict[str, str] = {}
    out = [f"Call from {trail.caller} to line {trail.line} ({trail.line_name}) at {trail.at.isoformat()}", ""]
    for step in trail.steps:
        data = _step_data(step, who, trail.ring_seconds)
        rings = f"  [ringing: {', '.join(step.ringing)}]" if step.ringing else ""
        out.append(f"{f'+{step.offset:g} s':>10}  {step.event} -> {step.state.replace('_', ' ')}{rings}")
        if data["pbx"]:
            out.append(f"{'':12}PBX:      {'; '.join(data['pbx'])}")
        for n, call in enumerate(data["bitrix24"]):
            params = " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in call["params"].items())
            out.append(f"{'':12}{'Bitrix24:' if n == 0 else '':10}{call['method']} {params}")
        if data["note"]:
            out.append(f"{'':12}note:     {data['note']}")
    out += ["", f"Result: {_outcome(trail)}"]
    return "\n".join(out)


def _pair(text: str, sep: str, what: str) -> tuple[str, str]:
    key, found, value = text.partition(sep)
    if not found or not key or not value:
        raise ExplainError(f"{what} must look like {'EXT=STATE' if sep == '=' else 'EXT@SECONDS'}, got {text!r}")
    return key, value


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line strings -> the arguments of ``explain``; raises ``ExplainError``."""
    agents: dict[str, Availability] = {}
    for text in getattr(args, "agent", None) or []:
        ext, state = _pair(text, "=", "--agent")
        try:
            agents[ext] = Availability(state)
        except ValueError:
            choices = "|".join(a.value for a in Availability)
            raise ExplainError(f"--agent {text}: the state is one of {choices}") from None
    answers: dict[str, float] = {}
    for text in getattr(args, "answer", None) or []:
        ext, seconds = _pair(text, "@", "--answer")
        try:
            answers[ext] = float(seconds)
        except ValueError:
            raise ExplainError(f"--answer {text}: SECONDS must be a number") from None
        if answers[ext] < 0:
            raise ExplainError(f"--answer {text}: SECONDS must not be negative")
    talk, hangup = getattr(args, "talk", 60.0), getattr(args, "hangup", None)
    if talk <= 0 or (hangup is not None and hangup < 0):
        raise ExplainError("--talk must be > 0 and --hangup >= 0")
    return {
        "line": args.line,
        "caller": args.caller,
        "at": _when(getattr(args, "at", None)),
        "agents": agents,
        "answers": answers,
        "responsible": getattr(args, "responsible", None),
        "press": getattr(args, "press", "") or "",
        "talk": talk,
        "hangup": hangup,
    }


def _when(text: str | None) -> datetime:
    if not text:
        return datetime.now().astimezone()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ExplainError(f"--at {text!r} is not an ISO time such as 2026-03-10T13:00+03:00") from None
    return when if when.tzinfo else when.astimezone()


def main(args: argparse.Namespace) -> int:
    """Load the config, run the call, print the trail. 0 on success, 2 for a bad question."""
    from bridge.config import load_config

    plan = load_config(Path(args.config)).plan
    try:
        trail = explain(plan, **_options(args))
    except ExplainError as exc:
        print(f"b24-bridge explain: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(render_json(trail) if args.json else render_text(trail))
    return 0
