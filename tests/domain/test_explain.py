"""``b24-bridge explain``: the trail of one call on a simulated clock, for each kind of routing."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import build_parser
from bridge.config import parse_settings
from bridge.domain.commands import CrmFinish, CrmHide, CrmRegister, CrmShow, RingAgent, RingNumber
from bridge.domain.scheme import Availability, Plan
from bridge.domain.simulation import HORIZON_SECONDS, MAX_STEPS, ExplainError, Trail
from bridge.explain import explain, main, render_json, render_text

CONFIG = """
[asterisk]
ari_password = "x"
ami_secret = "y"
[bitrix24]
webhook_url = "https://example.bitrix24.ru/rest/1/code/"
application_token = "t"

[schedules.office]
timezone = "Europe/Moscow"
mon = ["09:00-18:00"]
tue = ["09:00-18:00"]

[employees.map.1001]
user_id = 11
[employees.map.1002]
user_id = 12
mobile = "79160000012"
supervisor = "1005"
no_answer_to_mobile = true
[employees.map.1003]
user_id = 13
supervisor = "1005"
on_busy = "voicemail"
[employees.map.1004]
user_id = 14
mobile = "79160000014"
unavailable_to_mobile = true
[employees.map.1005]
user_id = 15
[employees.map.1006]
user_id = 16

[queues.sales]
members = ["1001", "1002", "1003", "1004"]
rings_per_member = 2
final = "voicemail:1005"
missed_owner = "1005"
[queues.support]
members = ["1001", "1002", "1003", "1006"]
distribution = "everybody"
rings_per_member = 4
final = "queue:overflow"
[queues.overflow]
members = ["1005", "1006"]
distribution = "evenly"
rings_per_member = 2
final = "number:74950000000"
[queues.duty]
members = ["1001", "1002"]
rings_per_member = 1
final = "hold:duty"
[queues.forever]
members = ["1001"]
distribution = "everybody"
rings_per_member = 0

[ivr.main]
prompt = "sound:ivr-main"
on_fail = "queue:support"
[ivr.main.options]
"1" = "queue:sales"
"2" = "queue:support"
"3" = "ivr:billing"
[ivr.billing]
prompt = "sound:ivr-billing"
[ivr.billing.options]
"1" = "employee:1004"

[lines.74951112233]
name = "Sales"
default_ext = "1005"
missed_task = true
rules = [
  { when = "closed:office", then = "voicemail:1005" },
  { when = "crm:OPPORTUNITY>=100000", then = "employee:1005" },
  { when = "known", then = "responsible" },
  { when = "always", then = "queue:sales" },
]
[lines.74951112244]
name = "Support"
default_ext = "1006"
rules = [{ when = "always", then = "ivr:main" }]
[lines.74951112255]
name = "Regional"
default_ext = "1006"
missed_notify = true
rules = [
  { when = "prefix:7812", then = "employee:1004" },
  { when = "prefix:7495", then = "queue:overflow" },
  { when = "prefix:7999", then = "queue:forever" },
  { when = "always", then = "queue:duty" },
]
[lines.74951112266]
name = "Nobody's"
rules = [{ when = "always", then = "ivr:billing" }]
[lines.74951112277]
name = "Direct"
default_ext = "1005"
rules = [
  { when = "known", then = "responsible", rings = 1 },
  { when = "prefix:7812", then = "employee:1002", rings = 6 },
  { when = "always", then = "employee:1001", rings = 3 },
  { when = "always", then = "number:74950000000", rings = 2 },
]
"""
SALES, SUPPORT, REGIONAL, ORPHAN = "74951112233", "74951112244", "74951112255", "74951112266"
DIRECT = "74951112277"
TUESDAY_1PM = datetime.fromisoformat("2026-03-10T13:00:00+03:00")


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    path = tmp_path_factory.mktemp("cfg") / "bridge.toml"
    return parse_settings(tomllib.loads(CONFIG), path=path, env={}).plan


def run(plan: Plan, line: str = SALES, caller: str = "79991234567", **kw: Any) -> Trail:
    return explain(plan, line=line, caller=caller, at=kw.pop("at", TUESDAY_1PM), **kw)


def rings(trail: Trail) -> list[tuple[float, str]]:
    """(offset, device) for every leg the core rang."""
    found = []
    for step in trail.steps:
        for c in step.commands:
            if isinstance(c, RingAgent | RingNumber):
                found.append((step.offset, c.ext if isinstance(c, RingAgent) else c.number))
    return found


def crm(trail: Trail, kind: type) -> list[Any]:
    return [c for step in trail.steps for c in step.commands if isinstance(c, kind)]


def test_nobody_answers_the_sales_queue_so_the_caller_leaves_a_voicemail_for_the_head_of_sales(plan: Plan) -> None:
    trail = run(plan)
    assert rings(trail) == [(0, "1001"), (10, "1002"), (20, "1003"), (30, "1004")]
    assert crm(trail, CrmRegister)[0].user_id == 15  # the line's default extension owns the call
    assert crm(trail, CrmShow) == [CrmShow("explain.1", (u,)) for u in (11, 12, 13, 14)]
    assert crm(trail, CrmHide) == [CrmHide("explain.1", (u,)) for u in (11, 12, 13, 14)]
    assert crm(trail, CrmFinish) == [CrmFinish("explain.1", 15, 0, "304")]
    assert trail.status == "304" and trail.complete and trail.steps[-1].event.startswith("recording")
    data = json.loads(render_json(trail))
    methods = [c["method"] for s in data["steps"] for c in s["bitrix24"]]
    assert methods[-3:] == ["telephony.externalCall.finish", "telephony.externalCall.attachRecord", "tasks.task.add"]
    task = data["steps"][-1]["bitrix24"][-1]["params"]["fields"]
    assert task["TITLE"] == "Skipped incoming call from 79991234567"
    assert task["DESCRIPTION"].endswith("\nCaller left [URL=<record of explain.1>]a voice message[/URL].")
    assert data["steps"][-2]["offset"] == 160.0  # 40 s of ringing, then 120 s of voicemail


def test_a_known_client_rings_the_responsible_manager_then_the_supervisor_who_answers(plan: Plan) -> None:
    trail = run(plan, responsible="1003", answers={"1005": 5})
    assert rings(trail) == [(0, "1003"), (20, "1005")]
    assert crm(trail, CrmRegister)[0].user_id == 13
    assert crm(trail, CrmFinish) == [CrmFinish("explain.1", 15, 60, "200")]
    assert trail.handled_by == "1005" and "handled by 1005" in render_text(trail)


def test_after_hours_the_call_goes_to_voicemail_and_the_caller_hangs_up(plan: Plan) -> None:
    trail = run(plan, at=datetime.fromisoformat("2026-03-10T19:30:00+03:00"), hangup=30)
    assert rings(trail) == []
    assert [(s.offset, s.event) for s in trail.steps] == [
        (0, "79991234567 calls"),
        (0, "the CRM does not know the caller"),
        (0, "the prompt ends"),
        (30, "the caller hangs up"),
        (30, "recording explain.1-voicemail is stored"),
    ]
    assert crm(trail, CrmFinish) == [CrmFinish("explain.1", 15, 0, "304")]


def test_the_ivr_sends_key_2_to_the_support_group_that_rings_everybody_at_once(plan: Plan) -> None:
    trail = run(plan, line=SUPPORT, press="2", answers={"1006": 3}, agents={"1002": Availability.BUSY})
    assert rings(trail) == [(0, "1001"), (0, "1003"), (0, "1006")]
    assert crm(trail, CrmShow) == [CrmShow("explain.1", (11, 13, 16))]
    assert crm(trail, CrmHide) == [CrmHide("explain.1", (11, 13))]
    assert trail.status == "200" and trail.handled_by == "1006"
    assert "the caller presses 2" in [s.event for s in trail.steps]


def test_a_nested_menu_and_an_unregistered_employee_whose_mobile_answers(plan: Plan) -> None:
    trail = run(
        plan,
        line=SUPPORT,
        press="31",
        agents={"1004": Availability.UNREGISTERED},
        answers={"79160000014": 4},
        talk=30,
    )
    assert rings(trail) == [(0, "79160000014")]
    assert crm(trail, CrmFinish) == [CrmFinish("explain.1", 14, 30, "200")]


def test_the_regional_line_by_caller_prefix(plan: Plan) -> None:
    assert rings(run(plan, line=REGIONAL, caller="78125550000", hangup=5)) == [(0, "1004")]
    moscow = run(plan, line=REGIONAL, caller="74957654321", agents={"1005": Availability.BUSY}, hangup=35)
    assert rings(moscow) == [(0, "1006"), (10, "74950000000")]
    assert moscow.status == "304"


def test_hold_until_free_keeps_the_caller_until_they_hang_up(plan: Plan) -> None:
    busy = {"1001": Availability.BUSY, "1002": Availability.BUSY}
    trail = run(plan, line=REGIONAL, caller="79031112233", agents=busy, hangup=300)
    assert rings(trail) == []
    assert [s.state for s in trail.steps] == ["holding", "done"]
    assert [c["method"] for c in json.loads(render_json(trail))["steps"][-1]["bitrix24"]] == [
        "telephony.externalCall.finish",
        "im.notify.personal.add",
    ]
    still = run(plan, line=REGIONAL, caller="79031112233", agents=busy)
    assert not still.complete and still.final_state == "holding"
    assert "the simulation stopped with the call still holding" in render_text(still)


def test_an_answer_at_the_very_moment_the_ring_times_out_still_wins(plan: Plan) -> None:
    trail = run(plan, answers={"1001": 10})
    assert rings(trail) == [(0, "1001"), (10, "1002")]
    assert trail.handled_by == "1001" and trail.status == "200"
    late = run(plan, answers={"1004": 10})  # the last member: the voicemail prompt had started
    assert late.handled_by == "1004"
    assert "stop the prompt" in render_text(late)


def test_a_group_that_rings_endlessly_is_cut_by_the_simulation(plan: Plan) -> None:
    trail = run(plan, line=REGIONAL, caller="79990001122")
    assert not trail.complete and trail.final_state == "ringing"
    assert len(trail.steps) < MAX_STEPS and HORIZON_SECONDS - 60 <= trail.steps[-1].offset <= HORIZON_SECONDS
    assert {s.event for s in trail.steps[2:]} == {"1001 does not answer"}


def test_a_call_nobody_owns_reaches_bitrix24_as_nothing(plan: Plan) -> None:
    trail = run(plan, line=ORPHAN, hangup=3)
    assert trail.status == "" and trail.complete
    assert "Bitrix24 receives no call" in render_text(trail)
    assert "nobody owns this call" in trail.steps[-1].note


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"line": "1"}, "line '1' is not configured"),
        ({"agents": {"9": Availability.BUSY}}, "extension '9' is not an employee"),
        ({"responsible": "9"}, "extension '9' is not an employee"),
        ({"answers": {"79000000000": 1}}, "'79000000000' is neither"),
        ({"press": "1x"}, "not 'x'"),
    ],
)
def test_bad_questions_are_refused(plan: Plan, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ExplainError, match=message):
        run(plan, **kw)


# --- the command line ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "bridge.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def cli(config: Path, *argv: str) -> int:
    return main(build_parser().parse_args(["explain", "--config", str(config), *argv]))


def test_main_prints_the_trail_as_text_or_json(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--line", SALES, "--from", "79991234567", "--at", "2026-03-10T13:00"]
    assert cli(config, *base, "--answer", "1002@4", "--talk", "20", "--agent", "1001=absent") == 0
    text = capsys.readouterr().out
    assert "telephony.externalCall.finish" in text and "Result: STATUS_CODE 200, handled by 1002" in text
    assert cli(config, *base, "--json", "--hangup", "12") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "304" and data["steps"][1]["ringing"] == ["1001"]
    assert cli(config, "--line", SALES, "--from", "79991234567", "--json", "--hangup", "1") == 0  # default: now
    assert json.loads(capsys.readouterr().out)["complete"] is True


def test_a_rules_rings_set_how_long_its_employee_and_number_ring_and_explain_says_so(plan: Plan) -> None:
    trail = run(plan, line=DIRECT)
    assert rings(trail) == [(0.0, "1001"), (15.0, "74950000000")]
    text = render_text(trail)
    assert "ring 1001 for 15 s (3 rings)" in text and "ring 74950000000 for 10 s (2 rings)" in text
    assert trail.steps[-1].offset == 25.0 and trail.status == "304"


def test_a_rules_rings_apply_to_the_responsible_and_their_supervisor_each(plan: Plan) -> None:
    trail = run(plan, line=DIRECT, responsible="1002", answers={"1005": 3.0})
    assert rings(trail) == [(0.0, "1002"), (5.0, "79160000012"), (10.0, "1005")]
    assert "ring 1002 for 5 s (1 ring)" in render_text(trail) and trail.handled_by == "1005"


def test_no_answer_rings_move_an_employee_to_their_mobile_sooner(plan: Plan) -> None:
    staff = {**plan.employees, "1002": replace(plan.employees["1002"], no_answer_rings=2)}
    trail = run(replace(plan, employees=staff), line=DIRECT, caller="78121234567")
    assert rings(trail)[:2] == [(0.0, "1002"), (10.0, "79160000012")]
    assert "ring 79160000012 for 30 s (6 rings)" in render_text(trail)


def test_explain_names_an_extension_only_bitrix24_could_resolve_and_rings_past_it(plan: Plan) -> None:
    queues = {**plan.queues, "sales": replace(plan.queues["sales"], members=("1007", "1001"))}
    trail = run(replace(plan, queues=queues))
    assert rings(trail)[0] == (0.0, "1001")
    text = render_text(trail)
    assert "note:     skipped as unavailable: 1007 (no employee has this extension" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--line", "1"], "line '1' is not configured"),
        (["--agent", "1001"], "--agent must look like EXT=STATE"),
        (["--agent", "1001=sleeping"], "the state is one of available|busy"),
        (["--agent", "7777=busy"], "extension '7777'"),
        (["--answer", "1001"], "--answer must look like EXT@SECONDS"),
        (["--answer", "1001@soon"], "SECONDS must be a number"),
        (["--answer", "1001@-1"], "must not be negative"),
        (["--talk", "0"], "--talk must be > 0"),
        (["--at", "tuesday"], "is not an ISO time"),
        (["--press", "a"], "--press takes the keys"),
    ],
)
def test_main_exits_2_with_a_clear_message(
    config: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    base = ["--line", SALES] if "--line" not in argv else []
    assert cli(config, *base, "--from", "79991234567", *argv) == 2
    assert message in capsys.readouterr().err


def test_the_example_configuration_explains_its_sample_call(capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).resolve().parents[2] / "bridge.example.toml"
    assert cli(example, "--line", "74951112233", "--from", "79991234567", "--hangup", "30") == 0
    assert "Result: STATUS_CODE 304" in capsys.readouterr().out


def test_explain_names_the_lead_distribution_s_choice_and_the_hand_over() -> None:
    example = Path(__file__).resolve().parents[2] / "bridge.example.toml"
    settings = parse_settings(tomllib.loads(example.read_text(encoding="utf-8")), path=example, env={})
    trail = explain(
        settings.plan, line="74951112233", caller="79991234567", at=datetime.fromisoformat("2026-03-10T13:00+03:00"),
        agents={"1001": Availability.ABSENT}, hangup=20,
    )  # fmt: skip
    text = render_text(trail)
    assert "lead distribution sales_leads: the managers, round robin: 1002 is next (skipped" in text
    last = json.loads(render_json(trail))["steps"][-1]
    methods = [c["method"] for c in last["bitrix24"]]
    assert methods.index("telephony.externalCall.finish") < methods.index("crm.lead.update")
    update = last["bitrix24"][methods.index("crm.lead.update")]["params"]
    assert update["fields"] == {"ASSIGNED_BY_ID": 12}
    task = last["bitrix24"][methods.index("tasks.task.add")]["params"]
    assert task["fields"]["RESPONSIBLE_ID"] == 12


def test_an_agent_bitrix24_shows_offline_is_skipped_and_the_trail_says_why(plan: Plan) -> None:
    trail = run(plan, agents={"1002": Availability.OFFLINE, "1004": Availability.ABSENT}, answers={"1003": 2})
    assert rings(trail) == [(0, "1001"), (10, "1003")]
    noted = [s.note for s in trail.steps if s.note.startswith("skips")]
    assert noted == ["skips 1002 (offline in Bitrix24), 1004 (absent today in Bitrix24)"], "said once, where it starts"
    assert "note:     skips 1002 (offline in Bitrix24)" in render_text(trail)


def test_a_group_ringing_everybody_names_the_offline_member_it_leaves_out(plan: Plan) -> None:
    trail = run(plan, line=SUPPORT, press="2", answers={"1006": 3}, agents={"1003": Availability.OFFLINE})
    assert rings(trail) == [(0, "1001"), (0, "1002"), (0, "1006")]
    assert "skips 1003 (offline in Bitrix24)" in [s.note for s in trail.steps]


def test_explain_shows_a_rule_on_a_lead_field_with_and_without_a_match() -> None:
    example = Path(__file__).resolve().parents[2] / "bridge.example.toml"
    data = tomllib.loads(example.read_text(encoding="utf-8"))
    data["lead_distribution"]["sales_leads"]["rules"] = [
        {"name": "north", "when": "field:UF_CRM_REGION=45", "then": "employee:1003"}
    ]
    settings = parse_settings(data, path=example, env={})
    trail = explain(
        settings.plan, line="74951112233", caller="79991234567", at=datetime.fromisoformat("2026-03-10T13:00+03:00"),
        agents={"1001": Availability.ABSENT}, hangup=20,
    )  # fmt: skip
    assert (
        "lead distribution sales_leads: if the lead has UF_CRM_REGION = 45: rule north, round robin: 1003 is next; "
        "otherwise the managers, round robin: 1002 is next (skipped" in render_text(trail)
    )
    last = json.loads(render_json(trail))["steps"][-1]
    calls = {c["method"]: c["params"] for c in last["bitrix24"]}
    who = "<13 if the lead has UF_CRM_REGION = 45, else 12>"
    assert list(calls)[-4:] == ["crm.lead.get", "crm.lead.update", "im.notify.personal.add", "tasks.task.add"]
    assert calls["crm.lead.update"]["fields"] == {"ASSIGNED_BY_ID": who}
    assert calls["tasks.task.add"]["fields"]["RESPONSIBLE_ID"] == who, "the task waits for the hand-over"
    assert [c["method"] for c in last["bitrix24"]].count("tasks.task.add") == 1, "one task"
