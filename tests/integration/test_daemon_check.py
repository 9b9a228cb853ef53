"""``b24-bridge check``: one line per connection (ARI, AMI, Bitrix24), a clear reason for each failure, no secrets."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bridge.check import check
from bridge.config import Secret
from bridge.sim.stage import ARI_PASSWORD, stage


def verdicts(out: str) -> list[str]:
    """The check's own lines (the simulators' logs share stdout in tests)."""
    return [line for line in out.splitlines() if line.startswith(("ok ", "FAIL ", "warn "))]


async def test_everything_reachable_is_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with stage(tmp_path) as s:
        assert await check(s.settings) == 0
    lines = verdicts(capsys.readouterr().out)
    assert [line.split()[:2] for line in lines] == [
        ["ok", "ari"],
        ["ok", "ami"],
        ["ok", "bitrix24"],
        ["warn", "events"],
        ["ok", "stats"],
        ["ok", "journal"],
    ]
    assert "the app is connected" in lines[0] and "logged in" in lines[1]
    assert "webhook mode cannot bind or list event handlers" in lines[3] and "outbound webhook" in lines[3]
    assert "sees every call" in lines[4]


async def test_each_failure_says_why_without_the_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with stage(tmp_path) as s:
        wrong = "not-the-ari-password"
        asterisk = replace(s.settings.asterisk, ari_password=Secret(wrong), ami_port=1)
        s.crm.set_fault(outage_seconds=60)
        assert await check(replace(s.settings, asterisk=asterisk)) == 1
    out = capsys.readouterr().out
    lines = verdicts(out)
    assert [line.split()[:2] for line in lines] == [
        ["FAIL", "ari"], ["FAIL", "ami"], ["FAIL", "bitrix24"], ["warn", "events"], ["FAIL", "stats"], ["ok", "journal"]
    ]  # fmt: skip
    assert "wrong password" in lines[0]
    assert wrong not in out and ARI_PASSWORD not in out and "simwebhookcode" not in out


async def test_oauth_lists_the_bound_events_and_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with stage(tmp_path, auth="oauth") as s:
        assert await check(s.settings) == 0
        url = s.events_url
    events = verdicts(capsys.readouterr().out)[3]
    assert events.split()[:2] == ["ok", "events"]
    assert f"ONEXTERNALCALLSTART -> {url}" in events and f"ONEXTERNALCALLBACKSTART -> {url}" in events


async def test_pull_mode_shows_the_offline_queue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def pull(data: dict[str, Any]) -> None:
        data["bitrix24"]["events"] = "pull"

    async with stage(tmp_path, auth="oauth", tweak=pull) as s:
        assert await check(s.settings) == 0
    events = verdicts(capsys.readouterr().out)[3]
    assert "ONEXTERNALCALLSTART -> offline queue" in events and events.startswith("ok ")


async def test_missing_bindings_and_a_missing_token_fail_with_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with stage(tmp_path, auth="oauth") as s:
        s.crm.core.events.bindings = [b for b in s.crm.core.events.bindings if b.event != "ONEXTERNALCALLSTART"]
        assert await check(s.settings) == 1
        lost = verdicts(capsys.readouterr().out)[3]
        assert lost.startswith("FAIL events") and f"not bound to {s.events_url}: ONEXTERNALCALLSTART" in lost
        await s.stop_daemon()
        oauth = s.settings.bitrix24.oauth
        assert oauth is not None
        stored = json.loads(oauth.token_file.read_text())
        del stored["application_token"]
        oauth.token_file.write_text(json.dumps(stored))
        await s.start_daemon()  # binds again at start, but no install came to tell the token
        assert await check(s.settings) == 1
    no_token = verdicts(capsys.readouterr().out)[3]
    assert "no application_token yet" in no_token and f"install path to {s.events_url}" in no_token


async def test_statistics_permission_denied_fails_the_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with stage(tmp_path) as s:
        s.crm.set_rights(1, admin=False, statistics="none")
        assert await check(s.settings) == 1
    lines = verdicts(capsys.readouterr().out)
    assert [line.split()[:2] for line in lines][-2] == ["FAIL", "stats"]
    assert "ACCESS_DENIED" in lines[-2] and "Call statistics — View" in lines[-2] and "parked" in lines[-2]


async def test_a_view_of_some_users_only_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with stage(tmp_path) as s:
        s.crm.set_rights(1, admin=False, statistics="department")
        assert await check(s.settings) == 0
    lines = verdicts(capsys.readouterr().out)
    assert [line.split()[:2] for line in lines][-2] == ["warn", "stats"]
    assert "not a portal admin" in lines[-2] and "app user 1" in lines[-2]
