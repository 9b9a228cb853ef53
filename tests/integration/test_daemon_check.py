"""``b24-bridge check``: one line per connection (ARI, AMI, Bitrix24), a clear reason for each failure, no secrets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

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
    assert [line.split()[:2] for line in lines] == [["ok", "ari"], ["ok", "ami"], ["ok", "bitrix24"], ["ok", "stats"]]
    assert "the app is connected" in lines[0] and "logged in" in lines[1]
    assert "sees every call" in lines[3]


async def test_each_failure_says_why_without_the_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with stage(tmp_path) as s:
        wrong = "not-the-ari-password"
        asterisk = replace(s.settings.asterisk, ari_password=Secret(wrong), ami_port=1)
        s.crm.set_fault(outage_seconds=60)
        assert await check(replace(s.settings, asterisk=asterisk)) == 1
    out = capsys.readouterr().out
    lines = verdicts(out)
    assert [line.split()[:2] for line in lines] == [
        ["FAIL", "ari"], ["FAIL", "ami"], ["FAIL", "bitrix24"], ["FAIL", "stats"]
    ]  # fmt: skip
    assert "wrong password" in lines[0]
    assert wrong not in out and ARI_PASSWORD not in out and "simwebhookcode" not in out


async def test_statistics_permission_denied_fails_the_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with stage(tmp_path) as s:
        s.crm.set_rights(1, admin=False, statistics="none")
        assert await check(s.settings) == 1
    lines = verdicts(capsys.readouterr().out)
    assert [line.split()[:2] for line in lines][-1] == ["FAIL", "stats"]
    assert "ACCESS_DENIED" in lines[-1] and "Call statistics — View" in lines[-1] and "parked" in lines[-1]


async def test_a_view_of_some_users_only_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with stage(tmp_path) as s:
        s.crm.set_rights(1, admin=False, statistics="department")
        assert await check(s.settings) == 0
    lines = verdicts(capsys.readouterr().out)
    assert [line.split()[:2] for line in lines][-1] == ["warn", "stats"]
    assert "not a portal admin" in lines[-1] and "app user 1" in lines[-1]
