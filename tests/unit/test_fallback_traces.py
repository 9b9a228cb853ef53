"""Fallback traces as AstDB holds them -> the Bitrix24 operations that mirror the call (who, status, talk)."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bridge.config import parse_settings
from bridge.dialplan.trace import FallbackTrace, parse_tree
from bridge.domain.commands import CallType, CrmAttachRecord, CrmFinish, CrmMissedTask, CrmRegister
from bridge.domain.scheme import Plan
from bridge.pbx.outcomes import EndpointTemplate
from bridge.recovery.fallback import mirror_commands

EXAMPLE = Path(__file__).resolve().parents[2] / "bridge.example.toml"
SALES = "74951112233"
AGENTS = EndpointTemplate("PJSIP/{ext}")
STARTED = datetime.fromtimestamp(1700000000, UTC).isoformat(timespec="seconds")


def plan() -> Plan:
    return parse_settings(tomllib.loads(EXAMPLE.read_text(encoding="utf-8")), path=EXAMPLE, env={}).plan


def tree(uid: str, **fields: str) -> list[tuple[str, str]]:
    return [(f"/b24fallback/{uid}/{name}", value) for name, value in fields.items()]


def test_complete_open_and_broken_traces_are_told_apart() -> None:
    rows = [
        *tree(
            "1700000000.1",
            line=SALES,
            caller="79160000001",
            start="1700000000",
            peer="PJSIP/1002-0000000a",
            talk="42",
            recording="b24fb-1700000000.1",
            status="ANSWER",
            end="1700000050",
        ),
        *tree("1700000000.2", line=SALES, caller="79160000002", start="1700000010"),  # still ringing
        *tree("1700000000.3", line=SALES, start="soon", end="1700000020"),  # not a time
        *tree("systemname-1.4", line=SALES, start="1700000000", end="1700000020"),  # not a Uniqueid of ours
        ("/b24fallback/1700000000.5/unknown", "x"),
        ("/other/1700000000.6/line", SALES),
    ]
    complete, open_, bad = parse_tree(rows)
    assert complete == [
        FallbackTrace(
            "1700000000.1",
            SALES,
            "79160000001",
            1700000000,
            1700000050,
            peer="PJSIP/1002-0000000a",
            talk=42,
            recording="b24fb-1700000000.1",
        ),
    ]
    assert open_ == [FallbackTrace("1700000000.2", SALES, "79160000002", 1700000010, 0)]
    assert bad == ["1700000000.3"]


def test_an_answered_call_is_finished_for_who_talked_with_the_talk_time_and_recording() -> None:
    trace = FallbackTrace("1700000000.1", SALES, "79160000001", 1700000000, 1700000050,
                          peer="PJSIP/1002-0000000a", talk=42, recording="b24fb-1700000000.1")  # fmt: skip
    leg = "fallback-1700000000.1"
    assert mirror_commands(trace, plan(), AGENTS) == [
        CrmRegister(
            leg,
            15,
            "79160000001",
            CallType.INCOMING,
            SALES,
            datetime.fromtimestamp(1700000000, UTC),
            show=False,
            crm_create=True,
            crm_source="CALL",
        ),
        CrmFinish(leg, 12, 42, "200"),
        CrmAttachRecord(leg, "b24fb-1700000000.1"),
    ]


def test_a_call_answered_outside_the_agents_is_the_owners() -> None:
    trace = FallbackTrace("1.2", "74951112244", "79160000001", 1700000000, 1700000050,
                          peer="PJSIP/trunk-0000000b", talk=30)  # fmt: skip
    commands = mirror_commands(trace, plan(), AGENTS)
    assert isinstance(commands, list) and commands[1] == CrmFinish("fallback-1.2", 16, 30, "200")


def test_a_missed_call_is_the_owners_and_a_message_the_voicemails_with_it_attached() -> None:
    missed = FallbackTrace("1.3", SALES, "79160000001", 1700000000, 1700000010, recording="b24fb-1.3")
    commands = mirror_commands(missed, plan(), AGENTS)
    assert isinstance(commands, list) and commands[1:] == [
        CrmFinish("fallback-1.3", 15, 0, "304"),  # the sales line asks for a task for the missed call's owner
        CrmMissedTask(
            15,
            "Skipped incoming call from 79160000001",
            f"A call from 79160000001 to line Sales was not answered. Called at {STARTED}.",
        ),
    ]
    message = replace(missed, uniqueid="1.4", voicemail="1003", message="b24fb-msg-1.4")
    commands = mirror_commands(message, plan(), AGENTS)
    assert isinstance(commands, list)
    assert commands[1:3] == [CrmFinish("fallback-1.4", 13, 0, "304"), CrmAttachRecord("fallback-1.4", "b24fb-msg-1.4")]
    assert isinstance(commands[3], CrmMissedTask) and "left a voicemail" in commands[3].description


def test_a_dismissed_talker_falls_back_to_the_owner_and_an_unknown_line_is_not_mirrored() -> None:
    p = plan()
    p.employees["1002"] = replace(p.employees["1002"], dismissed=True)
    trace = FallbackTrace("1.5", SALES, "79160000001", 1700000000, 1700000050, peer="PJSIP/1002-0000000a", talk=5)
    commands = mirror_commands(trace, p, AGENTS)
    assert isinstance(commands, list) and commands[1] == CrmFinish("fallback-1.5", 15, 5, "200")
    assert mirror_commands(replace(trace, line="74950000009"), p, AGENTS) == "line '74950000009' is not configured"
