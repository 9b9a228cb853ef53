"""The local application's install through the daemon's HTTP server: a genuine ONAPPINSTALL leaves the token pair and
the application_token in token_file (so click-to-call works with nothing copied by hand); a forged one stores
nothing; a reinstall replaces the token; webhook mode refuses installs. No token ever reaches a log line."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import aiohttp
from structlog.testing import capture_logs

from bridge.sim.asterisk import NeverAnswer
from bridge.sim.stage import Stage, stage
from tests.eventually import eventually

CALL_ID = "externalCall.00000000000000000000000000000abc.1795306061"


def install_form(access_token: str, application_token: str) -> dict[str, str]:
    return {
        "event": "ONAPPINSTALL", "data[VERSION]": "1", "data[INSTALLED]": "Y", "ts": "1795306061",
        "auth[access_token]": access_token, "auth[refresh_token]": "r" * 32, "auth[expires_in]": "3600",
        "auth[application_token]": application_token, "auth[member_id]": "m" * 32, "auth[domain]": "evil.example",
        "auth[client_endpoint]": "https://evil.example/rest/",
    }  # fmt: skip


def click(token: str) -> dict[str, str]:
    return {
        "event": "ONEXTERNALCALLSTART", "data[CALL_ID]": CALL_ID, "data[USER_ID]": "11",
        "data[PHONE_NUMBER]": "79260000100", "auth[application_token]": token,
    }  # fmt: skip


async def post(s: Stage, form: dict[str, str]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(s.events_url, data=form) as response:
        return response.status, await response.json(content_type=None)


def token_file(s: Stage) -> dict[str, Any]:
    oauth = s.settings.bitrix24.oauth
    assert oauth is not None
    data: dict[str, Any] = json.loads(oauth.token_file.read_text(encoding="utf-8"))
    return data


def originated(s: Stage) -> list[str]:
    return [r["params"]["endpoint"] for r in s.pbx.requests if "endpoint" in r["params"]]


async def test_install_stores_tokens_binds_events_and_click_to_call_works(tmp_path: Path) -> None:
    with capture_logs() as logs:
        async with stage(tmp_path, auth="oauth") as s:  # the stage installs the app at events_url (README)
            app_token = s.crm.core.identity.application_token
            stored = token_file(s)
            assert stored["application_token"] == app_token and stored["access_token"] and stored["refresh_token"]
            oauth = s.settings.bitrix24.oauth
            assert oauth is not None and stat.S_IMODE(oauth.token_file.stat().st_mode) == 0o600
            bound = {(b["event"], b["handler"]) for b in s.crm.state()["events"]["bindings"]}
            assert bound == {("ONEXTERNALCALLSTART", s.events_url), ("ONEXTERNALCALLBACKSTART", s.events_url)}
            s.pbx.set_party("1001", NeverAnswer())
            await s.crm.click_to_call(11, "79260000101")
            await eventually(lambda: originated(s) == ["PJSIP/1001"])
            assert (await post(s, click("a-guessed-token")))[0] == 401
    installed = [entry for entry in logs if entry["event"] == "crm.app_installed"]
    assert len(installed) == 1 and installed[0]["application_token"] == "stored"
    text = repr(logs)
    for secret in (app_token, stored["access_token"], stored["refresh_token"]):
        assert secret not in text


async def test_a_forged_install_stores_nothing_and_its_token_opens_nothing(tmp_path: Path) -> None:
    async with stage(tmp_path, auth="oauth") as s:
        before = token_file(s)
        with capture_logs() as logs:
            status, body = await post(s, install_form("not-a-token-of-this-portal", "attacker-token-0123456789"))
            assert status == 403 and "attacker" not in str(body)
            other_app = s.crm.issue_tokens(1)["access_token"]  # a real token, but app.info must name our client
            s.crm.core.identity.client_id = "local.someone.else"
            status, _ = await post(s, install_form(other_app, "attacker-token-0123456789"))
            assert status == 403
            status, _ = await post(s, {"event": "ONAPPINSTALL", "auth[application_token]": "attacker-token-0123456789"})
            assert status == 400
        assert token_file(s) == before
        assert (await post(s, click("attacker-token-0123456789")))[0] == 401
        assert originated(s) == []
    reasons = [entry["reason"] for entry in logs if entry["event"] == "crm.install_rejected"]
    assert reasons == [
        "its access token does not work at the configured portal (NO_AUTH_FOUND)",
        "its access token belongs to another application",
        "auth[access_token] missing",
    ]


async def test_a_reinstall_replaces_the_token_and_binds_the_events_again(tmp_path: Path) -> None:
    async with stage(tmp_path, auth="oauth") as s:
        old = s.crm.core.identity.application_token
        assert await s.crm.install_app(s.events_url) == 200  # the portal drops the app's bindings, issues a new token
        new = s.crm.core.identity.application_token
        assert new != old and token_file(s)["application_token"] == new
        await eventually(lambda: len(s.crm.state()["events"]["bindings"]) == 2)
        s.pbx.set_party("1001", NeverAnswer())
        assert (await post(s, click(old)))[0] == 401
        assert (await post(s, click(new)))[0] == 200
        await eventually(lambda: originated(s) == ["PJSIP/1001"])


async def test_restart_uses_the_token_the_install_left(tmp_path: Path) -> None:
    async with stage(tmp_path, auth="oauth") as s:
        await s.stop_daemon()
        await s.start_daemon()  # no install this time: the token comes from token_file
        s.pbx.set_party("1001", NeverAnswer())
        assert (await post(s, click(s.crm.core.identity.application_token)))[0] == 200


async def test_webhook_mode_refuses_installs(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        status, body = await post(s, install_form("whatever", "attacker-token-0123456789"))
        assert status == 403 and "webhook mode" in body["error"]
        assert (await post(s, click("attacker-token-0123456789")))[0] == 401
