"""The TOML configuration: the example loads, every problem is reported with its key, secrets stay hidden."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.config import EXIT_CONFIG, ConfigError, Secret, load_config, parse_settings
from bridge.domain.scheme import (
    Always,
    CallerPrefix,
    CrmField,
    Distribution,
    HoldUntilFree,
    InHours,
    KnownClient,
    LeadField,
    ToEmployee,
    ToIvr,
    ToNumber,
    ToQueue,
    ToResponsible,
    ToVoicemail,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "bridge.example.toml"


def example_data() -> dict:
    return tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


def problems_of(data: dict, env: dict[str, str] | None = None, tmp: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(data, path=(tmp or Path("/etc/b24")) / "bridge.toml", env=env or {})
    return info.value.problems


def test_example_config_loads_into_the_plan() -> None:
    settings = load_config(EXAMPLE, env={})
    plan = settings.plan
    assert settings.asterisk.agent_endpoint == "PJSIP/{ext}"
    assert settings.bitrix24.rate == 2.0 and settings.bitrix24.burst == 50
    assert settings.journal.path == EXAMPLE.parent / "b24-bridge.db"
    assert (settings.http.host, settings.http.port) == ("127.0.0.1", 8480)
    sales = plan.lines["74951112233"]
    assert [r.when for r in sales.rules] == [
        InHours("office", inside=False),
        CrmField("OPPORTUNITY", ">=", "100000"),
        KnownClient(True),
        Always(),
    ]
    assert [r.then for r in sales.rules] == [
        ToVoicemail("1005"),
        ToEmployee("1005"),
        ToResponsible(supervisor=True),
        ToQueue("sales"),
    ]
    assert plan.lines["74951112255"].rules[0].when == CallerPrefix(("7812",))
    assert sales.callback_queue == "sales" and plan.lines["74951112244"].callback_queue == ""
    assert plan.lines["74951112244"].rules[1].then == ToIvr("main")
    assert plan.queues["support"].distribution is Distribution.EVERYBODY
    assert plan.queues["overflow"].final == ToNumber("74950000000")
    assert plan.queues["duty"].final == HoldUntilFree("duty")
    assert dict(plan.menus["main"].options)["3"] == ToIvr("billing")
    assert plan.employees["1003"].on_busy == ToVoicemail("")
    assert plan.employees["1004"].unavailable_to_mobile
    assert plan.employees["1002"].supervisor_ext == "1005"
    office = plan.schedules["office"]
    assert office.timezone == "Europe/Moscow" and len(office.holidays) == 2


def test_secrets_from_env_and_file_and_never_in_repr(tmp_path: Path) -> None:
    data = example_data()
    del data["asterisk"]["ari_password"]
    data["asterisk"]["ari_password_env"] = "ARI_PW"
    del data["asterisk"]["ami_secret"]
    (tmp_path / "ami.secret").write_text("s3cr3t-ami\n")
    data["asterisk"]["ami_secret_file"] = "ami.secret"
    settings = parse_settings(data, path=tmp_path / "bridge.toml", env={"ARI_PW": "pw-from-env"})
    assert settings.asterisk.ari_password.reveal() == "pw-from-env"
    assert settings.asterisk.ami_secret.reveal() == "s3cr3t-ami"
    text = repr(settings)
    for secret in ("pw-from-env", "s3cr3t-ami", "webhookcode", "app-token-from"):
        assert secret not in text
    assert repr(Secret("x")) == "'***'"


def test_every_problem_is_reported_with_its_key() -> None:
    data = example_data()
    data["asterisk"]["ami_port"] = 70000
    data["asterisk"]["agent_endpoint"] = "PJSIP/agent"
    data["asterisk"]["colour"] = "blue"
    data["bitrix24"]["rate"] = -1
    data["queues"]["sales"]["distribution"] = "randomly"
    data["queues"]["sales"]["members"].append("9999")
    data["employees"]["auto_map"] = False  # else 9999 may come from Bitrix24 (a warning)
    data["lines"]["74951112233"]["rules"][0]["then"] = "queue:nosuch"
    data["lines"]["74951112233"]["rules"][1]["when"] = "moon:full"
    data["ivr"]["main"]["options"]["x"] = "hangup"
    data["schedules"]["office"]["timezone"] = "Mars/Olympus"
    data["schedules"]["office"]["mon"] = ["18:00-09:00"]
    data["employees"]["map"]["1001"]["mobile"] = "+7 (916) 000"
    data["lines"]["74951112244"]["callback_queue"] = "nosuchqueue"
    problems = problems_of(data)
    expected = [
        "asterisk.ami_port",
        "asterisk.agent_endpoint",
        "asterisk.colour: unknown key",
        "bitrix24.rate",
        "queues.sales.distribution",
        "queues.sales.members: unknown employee '9999' (not in [employees.map], and employees.auto_map is off)",
        "lines.74951112233.rules[0].then: unknown queue 'nosuch'",
        "lines.74951112233.rules[1].when: unknown condition",
        "ivr.main.options.x",
        "schedules.office.timezone",
        "schedules.office.mon: interval '18:00-09:00' ends before it starts",
        "employees.map.1001.mobile",
        "lines.74951112244.callback_queue: unknown queue 'nosuchqueue'",
    ]
    for prefix in expected:
        assert any(p.startswith(prefix) for p in problems), (prefix, problems)
    assert len(problems) == len(expected)


def test_missing_secrets_and_auth_mode() -> None:
    data = example_data()
    del data["asterisk"]["ari_password"]
    data["asterisk"]["ami_secret_env"] = "NOPE"
    del data["asterisk"]["ami_secret"]
    data["bitrix24"]["webhook_url"] = "https://x.bitrix24.ru/rest/1/webhookcode/"  # beside [bitrix24.oauth]
    problems = problems_of(data)
    assert any(p.startswith("asterisk.ari_password: missing") for p in problems)
    assert any("environment variable NOPE is not set" in p for p in problems)
    assert any("exactly one of bitrix24.webhook_url and [bitrix24.oauth]" in p for p in problems)


def test_bad_webhook_url_error_does_not_show_it() -> None:
    data = example_data()
    data["bitrix24"]["webhook_url"] = "ftp://portal/hooks/supersecretcode"
    problems = problems_of(data)
    assert any(p.startswith("bitrix24.webhook_url") for p in problems)
    assert all("supersecretcode" not in p for p in problems)


def test_rest_over_websocket_is_auto_on_or_off() -> None:
    assert load_config(EXAMPLE, env={}).asterisk.rest_over_websocket == "auto"
    for mode in ("on", "off"):
        data = example_data()
        data["asterisk"]["rest_over_websocket"] = mode
        settings = parse_settings(data, path=Path("/etc/b24/bridge.toml"), env={})
        assert settings.asterisk.rest_over_websocket == mode
    for wrong, said in ((True, 'must be "auto", "on" or "off" (a string), got true'),
                        ("yes", "must be \"auto\", \"on\" or \"off\", got 'yes'"),
                        (1, "must be str, got int 1")):  # fmt: skip
        data = example_data()
        data["asterisk"]["rest_over_websocket"] = wrong
        assert problems_of(data) == [f"asterisk.rest_over_websocket: {said}"]


def test_check_config_prints_redacted_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(EXAMPLE)]) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert data["asterisk"]["ari_password"] == "***"
    assert data["bitrix24"]["oauth"]["client_secret"] == "***" and data["bitrix24"]["webhook_url"] is None
    assert "client-secret-from" not in out.out and "ari-secret" not in out.out
    assert data["plan"]["queues"]["sales"]["final"] == {"kind": "ToVoicemail", "ext": "1005"}
    assert "3 line(s)" in out.err


def test_broken_toml_names_the_line_and_exits_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[asterisk]\nari_url = "http://x"\nari_password = \n')
    assert main(["check-config", "--config", str(bad)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "TOML syntax" in err and "line 3" in err


def test_missing_file_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(tmp_path / "nope.toml")]) == EXIT_CONFIG
    assert "cannot read the file" in capsys.readouterr().err


def test_dial_rules_are_read_top_to_bottom_and_printed_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    rules = load_config(EXAMPLE, env={}).asterisk.dial_rules
    assert [str(rule) for rule in rules.rules][:2] == ["+7XXXXXXXXXX -> 8XXXXXXXXXX", "7XXXXXXXXXX -> 8XXXXXXXXXX"]
    assert (
        rules.dialled("+7 (916) 123-45-67") == "89161234567" and rules.dialled("+44 20 7946 0018") == "810442079460018"
    )
    assert main(["check-config", "--config", str(EXAMPLE)]) == 0
    printed = json.loads(capsys.readouterr().out)["asterisk"]["dial_rules"]["rules"]
    assert printed[0] == {"match": "+7XXXXXXXXXX", "replace": "8XXXXXXXXXX"}


def test_a_malformed_dial_rule_is_named_with_its_key_and_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = example_data()
    data["asterisk"]["dial_rules"] = ["+7XXXXXXXXXX -> 8XXXXXXXXXX", "+7XXX => 8XXX", "+7XX -> 8X", 5]
    assert problems_of(data) == ["asterisk.dial_rules: must be a list of strings"]
    data["asterisk"]["dial_rules"] = data["asterisk"]["dial_rules"][:3]
    assert problems_of(data) == [
        "asterisk.dial_rules[1]: rule '+7XXX => 8XXX': write one rule as \"PATTERN -> REPLACEMENT\"",
        "asterisk.dial_rules[2]: rule '+7XX -> 8X': the replacement has 1 X but the pattern catches 2 digit(s): "
        "use each once",
    ]
    text = EXAMPLE.read_text(encoding="utf-8").replace('"+. -> 810.",', '"+. -> 810.", "8. -> +8.",')
    (tmp_path / "bridge.toml").write_text(text, encoding="utf-8")
    assert main(["check-config", "--config", str(tmp_path / "bridge.toml")]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "asterisk.dial_rules[3]: rule '8. -> +8.': the trunk is dialled digits only" in err


def test_a_plan_number_the_dial_rules_make_undialable_is_a_config_problem() -> None:
    data = example_data()
    data["asterisk"]["dial_rules"] = ["7916XXXXXXX -> 7916XXXXXXX0000000000"]
    problems = problems_of(data)
    assert problems and all(p.startswith("asterisk.dial_rules: the plan's number 7916") for p in problems)
    assert "rewritten by the dial rule 7916XXXXXXX -> 7916XXXXXXX0000000000" in problems[0]
    assert "too long" in problems[0]


# --- auth modes: what can work with a webhook and what needs the local application --------------------------


def oauth_data(**bitrix24: object) -> dict:
    data = example_data()
    b24 = data["bitrix24"]
    for key in ("webhook_url", "application_token", "events_url"):
        b24.pop(key, None)
    b24["oauth"] = {"portal": "x.bitrix24.ru", "client_id": "local.1.2", "client_secret": "s", "token_file": "t.json"}
    b24.update(bitrix24)
    return data


def webhook_data(**bitrix24: object) -> dict:
    data = example_data()
    b24 = data["bitrix24"]
    b24.pop("oauth", None)
    b24.update(webhook_url="https://x.bitrix24.ru/rest/1/webhookcode/", application_token="app-token-from-the-form")
    b24.update(bitrix24)
    return data


def test_check_config_rejects_webhook_with_pull_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bridge.toml"
    text = EXAMPLE.read_text(encoding="utf-8").replace("[journal]", "[journal-placeholder]")
    b24 = '[bitrix24]\nwebhook_url = "https://x.bitrix24.ru/rest/1/webhookcode/"\nevents = "pull"\n'
    head, _, tail = text.partition("[bitrix24]")
    path.write_text(head + b24 + "\n[journal]" + tail.split("[journal-placeholder]", 1)[1], encoding="utf-8")
    assert main(["check-config", "--config", str(path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    problem = next(line for line in err.splitlines() if "bitrix24.events:" in line)
    assert 'events = "pull" cannot work with an inbound webhook' in problem
    assert "[bitrix24.oauth]" in problem and 'events = "push"' in problem, "it says what to do instead"
    assert "webhookcode" not in err


def test_oauth_push_needs_an_events_url_and_no_token_by_hand() -> None:
    problems = problems_of(oauth_data(events="push"))
    assert len(problems) == 1 and problems[0].startswith("bitrix24.events_url: required with [bitrix24.oauth]")
    assert 'events = "pull"' in problems[0]
    assert problems_of(oauth_data(events_url="ftp://bridge.example.com/x"))[0].startswith(
        "bitrix24.events_url: must be an http(s) URL"
    )
    settings = parse_settings(oauth_data(events_url="https://bridge.example.com/b24/events"), path=EXAMPLE, env={})
    assert not settings.bitrix24.application_token, "captured from ONAPPINSTALL, not required in the config"
    pull = parse_settings(oauth_data(events="pull"), path=EXAMPLE, env={})
    assert pull.bitrix24.events == "pull" and pull.bitrix24.events_url == ""


def test_webhook_push_needs_the_outbound_webhooks_token() -> None:
    data = webhook_data()
    del data["bitrix24"]["application_token"]
    problems = problems_of(data)
    assert len(problems) == 1 and problems[0].startswith("bitrix24.application_token: missing")
    assert "outbound webhook" in problems[0]
    assert parse_settings(webhook_data(events="off"), path=EXAMPLE, env={}).bitrix24.events == "off"


def test_check_config_warns_what_a_valid_config_will_not_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bridge.config import config_warnings

    webhook = parse_settings(webhook_data(), path=EXAMPLE, env={})
    assert [w.split(":", 1)[0] for w in config_warnings(webhook)] == ["bitrix24.webhook_url"]
    assert "ONEXTERNALCALLSTART" in config_warnings(webhook)[0]
    for url, local in [
        ("http://127.0.0.1:8480/b24/events", True),
        ("https://192.168.1.10/b24/events", True),
        ("https://bridge/b24/events", True),
        ("https://pbx.lan/b24/events", True),
        ("https://[::1]:8480/b24/events", True),
        ("https://bridge.example.com/b24/events", False),
        ("https://203.0.113.7/b24/events", True),  # documentation range: not global either
        ("https://8.8.8.8/b24/events", False),
    ]:
        oauth = parse_settings(oauth_data(events_url=url), path=EXAMPLE, env={})
        warned = [w for w in config_warnings(oauth) if w.startswith("bitrix24.events_url")]
        assert bool(warned) == local, url
    assert config_warnings(parse_settings(oauth_data(events="pull"), path=EXAMPLE, env={})) == []
    assert main(["check-config", "--config", str(EXAMPLE)]) == 0
    err = capsys.readouterr().err
    assert "configuration OK" in err and "warning: bitrix24." not in err, "the example config is the recommended set-up"


def test_rings_on_a_rule_and_an_employees_own_no_answer_rings() -> None:
    data = example_data()
    rules = data["lines"]["74951112255"]["rules"]
    rules[0]["rings"] = 3
    rules.insert(1, {"when": "known", "then": "responsible:nosupervisor", "rings": 2})
    rules.insert(2, {"when": "prefix:7499", "then": "number:74950000001", "rings": 8})
    data["employees"]["map"]["1002"]["no_answer_rings"] = 2
    plan = parse_settings(data, path=Path("/etc/b24/bridge.toml"), env={}).plan
    assert [r.then for r in plan.lines["74951112255"].rules[:3]] == [
        ToEmployee("1004", rings=3),
        ToResponsible(supervisor=False, rings=2),
        ToNumber("74950000001", rings=8),
    ]
    assert plan.employees["1002"].no_answer_rings == 2


@pytest.mark.parametrize(
    ("rule", "employee", "message"),
    [
        ({"rings": 0}, {}, "rules[0].rings: must be a whole number of rings from 1 to 60"),
        ({"rings": 61}, {}, "rules[0].rings: must be a whole number of rings from 1 to 60"),
        ({"rings": "3"}, {}, "(routing.ring_seconds each), got '3'"),
        ({"rings": True}, {}, "rules[0].rings: must be a whole number"),
        ({"then": "queue:sales", "rings": 3}, {}, "rules[0].rings: only employee:, number: and responsible rules"),
        ({}, {"no_answer_rings": 2.5}, "map.1002.no_answer_rings: must be a whole number of rings"),
        ({}, {"no_answer_rings": 2, "no_answer_to_mobile": False}, "needs no_answer_to_mobile = true"),
    ],
)
def test_a_bad_ring_count_is_named_by_its_key(rule: dict, employee: dict, message: str) -> None:
    data = example_data()
    data["lines"]["74951112255"]["rules"][0].update(rule)
    data["employees"]["map"]["1002"].update(employee)
    problems = problems_of(data)
    assert len(problems) == 1 and message in problems[0], problems


def test_per_line_media_and_the_telephony_wide_intercept_code() -> None:
    data = example_data()
    data["routing"]["greeting"] = "sound:custom/welcome"
    data["lines"]["74951112244"].update(
        moh_class="support", greeting="sound:custom/support", voicemail_prompt="sound:vm"
    )
    plan = parse_settings(data, path=Path("/etc/b24/bridge.toml"), env={}).plan
    support, sales = plan.lines["74951112244"], plan.lines["74951112233"]
    assert (support.moh_class, support.greeting, support.voicemail_prompt) == ("support", "sound:custom/support",
                                                                               "sound:vm")  # fmt: skip
    assert (plan.greeting_of(sales.number), plan.voicemail_prompt_of(sales.number)) == ("sound:custom/welcome",
                                                                                        "sound:vm-intro")  # fmt: skip
    assert plan.intercept_code == "*9" and plan.queues["sales"].intercept_code == "*8"


@pytest.mark.parametrize(
    ("where", "changes", "message"),
    [
        ("line", {"greeting": "sound:hello, world"}, "lines.74951112244.greeting: must be a media URI"),
        ("line", {"voicemail_prompt": "/var/lib/x.wav"}, "lines.74951112244.voicemail_prompt: must be a media URI"),
        ("line", {"moh_class": "on hold"}, "lines.74951112244.moh_class: must be a musiconhold.conf class name"),
        ("routing", {"greeting": 5}, "routing.greeting: must be a media URI"),
        ("routing", {"intercept_code": "*9x"}, "routing.intercept_code: must be 1-10 of 0-9 * #"),
        ("routing", {"intercept_code": "*8"}, "routing.intercept_code: is also queues.sales.intercept_code: a group's "
                                              "own code takes only that group's calls"),
    ],
)  # fmt: skip
def test_bad_media_and_a_clashing_intercept_code_are_refused_by_key(where: str, changes: dict, message: str) -> None:
    data = example_data()
    (data["lines"]["74951112244"] if where == "line" else data["routing"]).update(changes)
    problems = problems_of(data)
    assert len(problems) == 1 and problems[0].startswith(message), problems


def test_lead_distribution_is_read_and_every_mistake_reported_with_its_key() -> None:
    plan = load_config(EXAMPLE, env={}).plan
    dist = plan.lead_distributions["sales_leads"]
    assert plan.lines["74951112233"].lead_distribution == "sales_leads"
    assert (dist.managers, dist.mode.value, dist.hours, dist.off_hours) == (
        ("1001", "1002", "1003", "1004"), "round_robin", "office", "owner",
    )  # fmt: skip
    assert [(r.when, r.managers) for r in dist.rules] == [((CallerPrefix(("7812",)),), ("1004",))]
    data = example_data()
    data["employees"]["auto_map"] = False  # else an unknown extension is resolved from Bitrix24 at start
    data["lead_distribution"]["sales_leads"] |= {
        "mode": "fairly", "calls": "some", "hours": "lunch", "off_hours": "9999", "colour": "red",
        "managers": ["1001", "1001", "9998"],
        "rules": [
            {"when": "known", "then": "employee:1001"},
            {"when": ["line:74950000000", "source:WEB"], "then": "queue:nosuch"},
            {"when": "always", "then": "responsible"},
            "employee:1001",
        ],
    }  # fmt: skip
    data["lines"]["74951112244"]["lead_distribution"] = "nosuch"
    data["lines"]["74951112255"] |= {"lead_distribution": "sales_leads", "crm_create": False}
    data["queues"]["sales"] |= {"distribution": "workload", "workload_of": "tasks"}
    problems = problems_of(data)
    expected = [
        "lead_distribution.sales_leads.colour: unknown key",
        "lead_distribution.sales_leads.managers: lists an extension twice",
        "lead_distribution.sales_leads.mode: must be one of round_robin, workload, got 'fairly'",
        "lead_distribution.sales_leads.calls: must be one of missed, all, got 'some'",
        "lead_distribution.sales_leads.rules[0].when[0]: a lead is made only for an unknown caller",
        "lead_distribution.sales_leads.rules[2].then: must be employee:EXT or queue:ID, got 'responsible'",
        "lead_distribution.sales_leads.rules[3]: must be a table with `then`",
        "lead_distribution.sales_leads.managers: unknown employee '9998'",
        "lead_distribution.sales_leads.hours: unknown schedule 'lunch'",
        "lead_distribution.sales_leads.off_hours: unknown employee '9999'",
        "lead_distribution.sales_leads.rules[1].when[0]: unknown line '74950000000'",
        "lead_distribution.sales_leads.rules[1].then: unknown queue 'nosuch'",
        "lines.74951112244.lead_distribution: unknown lead distribution 'nosuch'",
        "lines.74951112255.lead_distribution: needs crm_create = true",
        "queues.sales.workload_of: must be leads or deals, got 'tasks'",
    ]
    for prefix in expected:
        assert any(p.startswith(prefix) for p in problems), (prefix, problems)
    assert len(problems) == len(expected), problems


def test_a_lead_rule_on_a_field_of_the_lead_is_read_and_its_mistakes_named_by_key() -> None:
    data = example_data()
    data["lead_distribution"]["sales_leads"]["rules"] = [
        {"when": ["field:UF_CRM_REGION = north, south", "prefix:7495"], "then": "employee:1002", "name": "north"},
        {"when": "field:UF_CRM_VIP", "then": "employee:1003"},
    ]
    rules = parse_settings(data, path=EXAMPLE, env={}).plan.lead_distributions["sales_leads"].rules
    assert [(r.when, r.managers) for r in rules] == [
        ((LeadField("UF_CRM_REGION", ("north", "south")), CallerPrefix(("7495",))), ("1002",)),
        ((LeadField("UF_CRM_VIP"),), ("1003",)),
    ]
    data["lead_distribution"]["sales_leads"]["rules"] = [
        {"when": "field:uf_crm_region=north", "then": "employee:1002"},
        {"when": "field:UF_CRM_REGION=", "then": "employee:1002"},
        {"when": "field:", "then": "employee:1002"},
    ]
    line = data["lines"]["74951112233"]
    line["rules"] = [{"when": "field:SOURCE_ID=WEB", "then": "employee:1001"}, *line["rules"]]
    problems = problems_of(data)
    expected = [
        "lead_distribution.sales_leads.rules[0].when[0]: field:NAME=VALUE needs the field's name as crm.lead.get "
        "spells it (SOURCE_ID, UF_CRM_REGION), got 'uf_crm_region'",
        "lead_distribution.sales_leads.rules[1].when[0]: field:UF_CRM_REGION= needs a value",
        "lead_distribution.sales_leads.rules[2].when[0]: field:NAME=VALUE needs the field's name",
        "lines.74951112233.rules[0].when: unknown condition 'field:SOURCE_ID=WEB'",
    ]
    for prefix in expected:
        assert any(p.startswith(prefix) for p in problems), (prefix, problems)
    assert len(problems) == len(expected), problems
