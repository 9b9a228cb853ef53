"""The REST surface: URLs, bodies, envelopes, auth, OAuth refresh."""

from __future__ import annotations

import aiohttp

from bridge.sim.bitrix24 import Bitrix24Simulator
from tests.sim.b24_support import FakeClock, Rest, rest_fixture, sim_fixture  # noqa: F401


async def test_envelope_has_result_and_time_block(rest: Rest) -> None:
    status, body = await rest.call("user.current")
    assert status == 200
    assert body["result"]["ID"] == "1"
    assert set(body["time"]) == {
        "start",
        "finish",
        "duration",
        "processing",
        "date_start",
        "date_finish",
        "operating_reset_at",
        "operating",
    }
    assert body["time"]["date_start"][10] == "T" and body["time"]["date_start"][-6] in "+-"


async def test_method_with_and_without_json_suffix_and_any_case(rest: Rest) -> None:
    async with rest.session.get(f"{rest.sim.webhook_url}USER.CURRENT") as response:
        assert response.status == 200
        assert (await response.json())["result"]["ID"] == "1"
    assert (await rest.result("user.current"))["ID"] == "1"


async def test_list_method_moves_total_and_next_to_top_level(rest: Rest) -> None:
    status, body = await rest.call("user.get", {"FILTER": {"UF_DEPARTMENT": 2}})
    assert status == 200
    assert body["total"] == 5 and "next" not in body
    assert sorted(int(user["ID"]) for user in body["result"]) == [11, 12, 13, 14, 15]


async def test_form_body_with_php_nested_keys(rest: Rest) -> None:
    status, body = await rest.call("user.get", {"FILTER[UF_PHONE_INNER]": "1003"}, form=True)
    assert status == 200
    assert [user["ID"] for user in body["result"]] == ["13"]


async def test_query_string_parameters(rest: Rest) -> None:
    status, body = await rest.get("/rest/1/simwebhookcode/user.get.json", **{"FILTER[UF_PHONE_INNER]": "1006"})
    assert status == 200
    assert body["result"][0]["NAME"] == "Elena"


async def test_unknown_method_is_404_method_not_found(rest: Rest) -> None:
    status, body = await rest.call("telephony.externalCall.nonsense")
    assert status == 404
    assert body == {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}


async def test_wrong_webhook_code_and_missing_token_are_no_auth_found(rest: Rest) -> None:
    async with rest.session.post(f"{rest.sim.url}/rest/1/wrongcode/user.current.json") as response:
        assert response.status == 401
        assert (await response.json())["error"] == "NO_AUTH_FOUND"
    status, body = await rest.oauth("user.current", "not-a-token")
    assert (status, body["error"]) == (401, "NO_AUTH_FOUND")
    async with rest.session.post(f"{rest.sim.url}/rest/user.current") as response:
        assert response.status == 401


async def test_malformed_json_body_is_rejected_and_changes_nothing(rest: Rest) -> None:
    url = f"{rest.sim.webhook_url}telephony.externalCall.register.json"
    headers = {"Content-Type": "application/json"}
    async with rest.session.post(url, data=b"{not json", headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "INVALID_REQUEST"
    assert rest.sim.state()["calls"] == []


async def test_oauth_token_works_then_expires_then_refresh_rotates() -> None:
    clock = FakeClock()
    async with Bitrix24Simulator(clock=clock, token_lifetime=3600) as sim, aiohttp.ClientSession() as session:
        rest = Rest(session, sim)
        tokens = sim.issue_tokens(user_id=1)
        status, _ = await rest.oauth("user.current", tokens["access_token"])
        assert status == 200
        clock.advance(3600)
        status, body = await rest.oauth("user.current", tokens["access_token"])
        assert status == 401
        assert body == {"error": "expired_token", "error_description": "The access token provided has expired."}

        query = {
            "grant_type": "refresh_token",
            "client_id": "local.sim",
            "client_secret": "simsecret",
            "refresh_token": tokens["refresh_token"],
        }
        async with session.get(sim.oauth_url, params=query) as response:
            assert response.status == 200
            fresh = await response.json()
        assert fresh["access_token"] != tokens["access_token"]
        assert fresh["refresh_token"] != tokens["refresh_token"]
        assert fresh["expires_in"] == 3600 and fresh["member_id"] and fresh["client_endpoint"] == f"{sim.url}/rest/"
        status, body = await rest.oauth("user.current", fresh["access_token"])
        assert status == 200 and body["result"]["ID"] == "1"

        async with session.post(sim.oauth_url, data=query) as response:  # the old refresh token is spent
            assert response.status == 400
            assert (await response.json())["error"] == "invalid_grant"


async def test_oauth_rejects_wrong_client_without_echoing_the_secret(rest: Rest) -> None:
    tokens = rest.sim.issue_tokens()
    query = {
        "grant_type": "refresh_token",
        "client_id": "local.sim",
        "client_secret": "guess-123",
        "refresh_token": tokens["refresh_token"],
    }
    async with rest.session.get(rest.sim.oauth_url, params=query) as response:
        text = await response.text()
        assert response.status == 401
    assert "invalid_client" in text and "guess-123" not in text
    query["client_secret"] = "simsecret"  # the refresh token survived the failed attempt
    async with rest.session.get(rest.sim.oauth_url, params=query) as response:
        assert response.status == 200


async def test_authorization_code_grant(rest: Rest) -> None:
    code = rest.sim.issue_auth_code(user_id=13)
    query = {"grant_type": "authorization_code", "client_id": "local.sim", "client_secret": "simsecret", "code": code}
    async with rest.session.get(rest.sim.oauth_url, params=query) as response:
        body = await response.json()
    assert body["user_id"] == 13
    status, me = await rest.oauth("user.current", body["access_token"])
    assert status == 200 and me["result"]["ID"] == "13"


async def test_expire_access_tokens_control(rest: Rest) -> None:
    tokens = rest.sim.issue_tokens()
    status, _ = await rest.control("expire_tokens")
    assert status == 200
    status, body = await rest.oauth("user.current", tokens["access_token"])
    assert (status, body["error"]) == (401, "expired_token")


async def test_webhook_can_be_denied_for_telephony_but_oauth_works() -> None:
    async with Bitrix24Simulator(webhook_allowed_for_telephony=False) as sim, aiohttp.ClientSession() as session:
        rest = Rest(session, sim)
        for method in (
            "telephony.externalCall.register",
            "telephony.externalCall.finish",
            "telephony.externalLine.add",
            "telephony.externalLine.get",
        ):
            status, body = await rest.call(method, {"USER_ID": 12, "PHONE_NUMBER": "1", "TYPE": 2, "NUMBER": "1"})
            assert status == 403, method
            assert body == {
                "error": "WRONG_AUTH_TYPE",
                "error_description": "Current authorization type is denied for this method",
            }
        status, _ = await rest.call("telephony.externalCall.searchCrmEntities", {"PHONE_NUMBER": "79161234567"})
        assert status == 200  # not an app-only method
        token = sim.issue_tokens()["access_token"]
        status, body = await rest.oauth(
            "telephony.externalCall.register", token, {"USER_ID": 12, "PHONE_NUMBER": "79161234567", "TYPE": 2}
        )
        assert status == 200 and body["result"]["CALL_ID"].startswith("externalCall.")
