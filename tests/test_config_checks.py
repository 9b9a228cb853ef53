"""check-config catches what would fail (or surprise) at run time, naming the key and what to do."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import main
from bridge.config import EXIT_CONFIG, config_warnings, parse_settings
from tests.test_config import EXAMPLE, example_data, problems_of


def write_config(tmp_path: Path, **journal: str) -> Path:
    """The example's text with ``key = "value"`` lines replaced (the first of each key)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    for key, value in journal.items():
        text = re.sub(rf'(?m)^{key} = "[^"]*"', f'{key} = "{value}"', text, count=1)
    path = tmp_path / "bridge.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- routing loops --------------------------------------------------------------------------------


def test_a_queue_whose_final_action_leads_back_to_itself_is_refused() -> None:
    data = example_data()
    data["queues"]["overflow"]["final"] = "queue:support"  # support -> overflow -> support
    data["queues"]["duty"]["final"] = "queue:duty"
    problems = problems_of(data)
    assert [p for p in problems if "routing loop" in p] == [
        "queues.duty.final: routing loop queue:duty -> queue:duty: a call goes round with no caller's choice until "
        "the bridge hangs it up as missed; end the chain with voicemail, an employee, a number or hangup",
        "queues.overflow.final: routing loop queue:overflow -> queue:support -> queue:overflow: a call goes round "
        "with no caller's choice until the bridge hangs it up as missed; end the chain with voicemail, an employee, "
        "a number or hangup",
    ]


def test_an_ivr_cycle_without_a_caller_choice_is_refused_one_with_a_choice_is_not() -> None:
    data = example_data()
    assert data["ivr"]["billing"]["options"]["9"] == "ivr:main", "the example's menus already cycle by a key press"
    parse_settings(data, path=Path("/etc/b24/bridge.toml"), env={})
    data["ivr"]["billing"]["on_fail"] = "ivr:main"
    data["ivr"]["main"]["on_fail"] = "queue:duty"
    data["queues"]["duty"]["final"] = "ivr:billing"
    [problem] = problems_of(data)
    assert problem.startswith("ivr.billing.on_fail: routing loop ivr:billing -> ivr:main -> queue:duty -> ivr:billing")


def test_check_config_exits_78_on_a_routing_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace('final = "hold:duty"', 'final = "queue:duty"'))
    assert main(["check-config", "--config", str(path)]) == EXIT_CONFIG
    assert "queues.duty.final: routing loop queue:duty -> queue:duty" in capsys.readouterr().err


# --- the files the daemon writes ----------------------------------------------------------------------


def test_a_missing_journal_directory_is_refused_by_check_config_and_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "state" / "b24-bridge.db"
    path = write_config(tmp_path, path=str(missing))
    for command in ("check-config", "run"):
        assert main([command, "--config", str(path)]) == EXIT_CONFIG
        err = capsys.readouterr().err
        assert f"journal.path: directory {missing.parent} does not exist; create it" in err, command
    (tmp_path / "state").mkdir()
    assert main(["check-config", "--config", str(path)]) == 0


def test_a_journal_directory_the_user_cannot_write_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = write_config(tmp_path, path=str(state / "b24-bridge.db"))
    real_access = os.access
    # the tests may run as root, whom no mode bit stops: let the directory be read-only as it is for a service user
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == state else real_access(p, mode))
    assert main(["check-config", "--config", str(path)]) == EXIT_CONFIG
    assert f"journal.path: directory {state} is not writable by this user" in capsys.readouterr().err


def test_under_the_systemd_unit_relative_state_files_go_into_its_state_directory() -> None:
    settings = parse_settings(example_data(), path=Path("/etc/b24-bridge/bridge.toml"), env={})
    assert settings.journal.path == Path("/etc/b24-bridge/b24-bridge.db") and settings.journal.relative
    env = {"STATE_DIRECTORY": "/var/lib/b24-bridge"}
    settings = parse_settings(example_data(), path=Path("/etc/b24-bridge/bridge.toml"), env=env)
    assert settings.journal.path == Path("/var/lib/b24-bridge/b24-bridge.db")
    assert settings.bitrix24.oauth is not None
    assert settings.bitrix24.oauth.token_file == Path("/var/lib/b24-bridge/b24-token.json")
    unit = (EXAMPLE.parent / "systemd" / "b24-bridge.service").read_text()
    assert "StateDirectory=b24-bridge" in unit and "ProtectSystem=strict" in unit

    data = example_data()
    data["journal"]["path"] = "/etc/b24-bridge/b24-bridge.db"
    settings = parse_settings(data, path=Path("/etc/b24-bridge/bridge.toml"), env=env)
    assert settings.journal.path == Path("/etc/b24-bridge/b24-bridge.db"), "an absolute path stays"
    [warning] = config_warnings(settings)
    assert warning.startswith("journal.path: /etc/b24-bridge/b24-bridge.db is read-only for the daemon under")


# --- valid, but not what the author expects -------------------------------------------------------------


def test_an_everybody_group_larger_than_what_rings_at_once_names_who_is_dropped() -> None:
    data = example_data()
    for ext in range(1011, 1019):
        data["employees"]["map"][str(ext)] = {"user_id": ext}
    data["queues"]["support"]["members"] += [str(ext) for ext in range(1011, 1019)]  # 4 + 8 = 12
    [warning] = config_warnings(parse_settings(data, path=EXAMPLE, env={}))
    assert warning.startswith("queues.support.members: everybody rings at most 10 phones at once")
    assert "1017, 1018 ring only while one of the first 10 cannot" in warning


def test_rules_that_can_never_match_are_named() -> None:
    data = example_data()
    data["schedules"]["never"] = {"timezone": "Europe/Moscow"}
    data["lines"]["74951112255"]["rules"] = [
        {"when": "region:moscow", "then": "queue:overflow"},
        {"when": "prefix:74951", "then": "employee:1001"},  # Moscow's 7495 took it
        {"when": "known", "then": "responsible"},  # passes unknown owners on: the next rules still match
        {"when": "hours:never", "then": "queue:sales"},  # a schedule with no hours
        {"when": "hours:office", "then": "queue:sales"},
        {"when": "closed:office", "then": "hangup"},
        {"when": "unknown", "then": "queue:duty"},  # open or closed, the two above took it
    ]
    warnings = config_warnings(parse_settings(data, path=EXAMPLE, env={}))
    assert warnings == [
        "lines.74951112255.rules[1]: can never match: rules[0] takes its calls first; move it up or remove it",
        "lines.74951112255.rules[3]: can never match: schedule never has no open hours; move it up or remove it",
        "lines.74951112255.rules[6]: can never match: the rules above take every call whichever way schedule office "
        "goes; move it up or remove it",
    ]


def test_extensions_only_bitrix24_knows_are_warned_about_with_every_key_that_names_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = example_data()
    data["queues"]["sales"]["members"].append("1007")
    data["lines"]["74951112255"]["rules"][0]["then"] = "employee:1007"
    data["employees"]["map"]["1001"]["supervisor"] = "1008"
    data["lines"]["74951112244"]["default_ext"] = "1008"
    data["queues"]["support"]["final"] = "voicemail:1009"
    warnings = config_warnings(parse_settings(data, path=EXAMPLE, env={}))
    assert [w.split(": extension")[0] for w in warnings] == [
        "queues.sales.members, lines.74951112255.rules[0].then",
        "employees.map.1001.supervisor, lines.74951112244.default_ext",
        "queues.support.final",
    ]
    assert "extension 1007 is not in [employees.map]: it is looked up in Bitrix24 (UF_PHONE_INNER" in warnings[0]
    assert "calls skip it as unavailable" in warnings[0]
    path = tmp_path / "bridge.toml"
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'members = ["1001", "1002", "1003", "1004"]', 'members = ["1001", "1002", "1003", "1004", "1007"]', 1
    )
    path.write_text(text, encoding="utf-8")
    assert main(["check-config", "--config", str(path)]) == 0, "a warning, not a refusal"
    assert "warning: queues.sales.members: extension 1007 is not in [employees.map]" in capsys.readouterr().err
    data["employees"]["auto_map"] = False
    problems = problems_of(data)
    assert "queues.sales.members: unknown employee '1007' (not in [employees.map], and employees.auto_map is off)" \
        in problems and len(problems) == 5  # fmt: skip


def test_the_example_has_no_warnings_and_its_commented_keys_stay_in_their_table() -> None:
    assert config_warnings(parse_settings(example_data(), path=EXAMPLE, env={})) == []
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    table = ""
    commented = 0
    for number, text in enumerate(lines):
        header = re.match(r"\[([^\]]+)\]", text)
        if header:
            table = header.group(1)
        key = re.match(r"# ([a-z_]+) = ", text)
        if not key:
            continue
        commented += 1
        # uncommented, the key belongs to the table whose plain keys it sits among, not to a table that follows
        uncommented = [*lines[:number], text[2:], *lines[number + 1 :]]
        data = tomllib.loads("\n".join(uncommented))
        node: Any = data
        for part in table.split("."):
            node = node[part]
        assert key.group(1) in node, f"line {number + 1}: {key.group(1)} would not land in [{table}]"
    assert commented >= 2


def test_the_example_switched_to_a_webhook_as_its_comment_says_loads(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^# (webhook_url|application_token) = ", r"\1 = ", text)
    text = re.sub(r"(?s)\[bitrix24\.oauth\]\n.*?\n\n", "", text)  # "delete [bitrix24.oauth]"
    path = tmp_path / "bridge.toml"
    path.write_text(text, encoding="utf-8")
    assert main(["check-config", "--config", str(path)]) == 0
