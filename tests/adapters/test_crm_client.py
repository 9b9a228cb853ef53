"""The Bitrix24 REST client against the Bitrix24 simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import math
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
import structlog
from aiolimiter import AsyncLimiter
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from bridge.config import Bitrix24Settings, OAuthSettings
from bridge.config.reader import Secret
from bridge.crm.client import Bitrix24Client
from bridge.crm.errors import (
    CallNotFoundError,
    CrmError,
    PermanentCrmError,
    TransientCrmError,
    classify,
)
from bridge.crm.pacing import make_limiter
from bridge.crm.query import batch_command, php_query, result_ref
from bridge.sim.bitrix24 import Bitrix24Simulator
from tests.eventually import eventually

WEBHOOK = "1/w3bh00kS3cretCode"
WEBHOOK_CODE = "w3bh00kS3cretCode"
CLIENT_SECRET = "oauthClientS3cret"


def webhook_settings(sim: Bitrix24Simulator, **overrides: Any) -> Bitrix24Settings:
    return Bitrix24Settings(webhook_url=Secret(sim.webhook_url), **overrides)


def oauth_settings(sim: Bitrix24Simulator, token_file: Path) -> Bitrix24Settings:
    oauth = OAuthSettings(
        portal=sim.url,
        client_id="local.sim",
        client_secret=Secret(CLIENT_SECRET),
        token_file=token_file,
        oauth_host=sim.oauth_url.rstrip("/"),
    )
    return Bitrix24Settings(oauth=oauth)


@pytest.fixture
async def sim() -> AsyncIterator[Bitrix24Simulator]:
    async with Bitrix24Simulator(webhook=WEBHOOK, client_secret=CLIENT_SECRET) as simulator:
        yield simulator


def requests_to(sim: Bitrix24Simulator, method: str) -> list[dict[str, Any]]:
    return [r for r in sim.state()["requests"] if r["method"] == method]


def register(leg: str, user_id: int = 11, phone: str = "79001234567") -> tuple[str, dict[str, Any]]:
    params = {"USER_ID": user_id, "PHONE_NUMBER": phone, "TYPE": 2, "EXTERNAL_CALL_ID": leg, "SHOW": 0}
    return "telephony.externalCall.register", params


def finish(call_id: str, duration: int = 12) -> tuple[str, dict[str, Any]]:
    return "telephony.externalCall.finish", {"CALL_ID": call_id, "USER_ID": 11, "DURATION": duration}


# --- pure parts ----------------------------------------------------------------------------------------


def test_php_query_nests_lists_and_maps_like_http_build_query() -> None:
    query = php_query({"USER_ID": [11, 12], "fields": {"TITLE": "a b&c", "ON": True, "OFF": False, "NONE": None}})
    assert query == ("USER_ID%5B0%5D=11&USER_ID%5B1%5D=12&fields%5BTITLE%5D=a+b%26c&fields%5BON%5D=1&fields%5BOFF%5D=0")


_TEXT = st.text(st.characters(codec="ascii"), max_size=12) | st.text(max_size=12)


@given(st.dictionaries(_TEXT, _TEXT | st.integers(), max_size=4))
def test_php_query_encodes_every_name_and_value_as_urlencode_does(params: dict[str, str | int]) -> None:
    expected = "&".join(f"{quote_plus(k)}={quote_plus(str(v))}" for k, v in params.items())
    assert php_query(params) == expected


def test_batch_command_encodes_a_result_reference_as_the_docs_do() -> None:
    command = batch_command("department.get", {"ID": result_ref("get_user", "UF_DEPARTMENT")})
    assert command == "department.get?ID=%24result%5Bget_user%5D%5BUF_DEPARTMENT%5D"


@pytest.mark.parametrize(
    ("code", "description", "status", "kind"),
    [
        ("QUERY_LIMIT_EXCEEDED", "Too many requests", 503, TransientCrmError),
        ("OVERLOAD_LIMIT", "blocked", 503, TransientCrmError),
        ("OPERATION_TIME_LIMIT", "Method is blocked", 429, TransientCrmError),
        ("INTERNAL_SERVER_ERROR", "oops", 500, TransientCrmError),
        ("", "", 502, TransientCrmError),
        ("NO_AUTH_FOUND", "Wrong authorization data", 401, PermanentCrmError),
        ("WRONG_AUTH_TYPE", "Current authorization type is denied", 403, PermanentCrmError),
        ("insufficient_scope", "", 403, PermanentCrmError),
        ("ERROR_METHOD_NOT_FOUND", "Method not found!", 404, PermanentCrmError),
        ("ERROR_CORE", "Unknown TYPE", 400, PermanentCrmError),
        ("PORTAL_DELETED", "Portal was deleted", 500, PermanentCrmError),
        ("", "Call is not found (call should be registered prior to finishing", 400, CallNotFoundError),
        ("ERROR_CORE", "Call is not found (call should be registered prior to finishing", 400, CallNotFoundError),
    ],
)
def test_errors_are_sorted_into_transient_and_permanent(
    code: str, description: str, status: int, kind: type[CrmError]
) -> None:
    error = classify("m", code, description, status)
    assert type(error) is kind


# --- webhook auth, errors, retries ---------------------------------------------------------------------


async def test_webhook_call_returns_the_result_and_the_envelope_keeps_paging_fields(sim: Bitrix24Simulator) -> None:
    async with Bitrix24Client(webhook_settings(sim)) as client:
        users = await client.call("user.get", {"FILTER": {"UF_PHONE_INNER": "1002"}})
        envelope = await client.call_envelope("user.get", {})
    assert [u["ID"] for u in users] == ["12"]
    assert envelope["total"] == len(envelope["result"]) == 8
    assert requests_to(sim, "user.get")[0]["http_status"] == 200
    assert client.stats.requests == 2


async def test_list_all_follows_next_over_several_pages() -> None:
    seed = json.loads((Path(__file__).parents[2] / "bridge/sim/bitrix24/default_seed.json").read_text())
    seed["users"] += [{"ID": 100 + n, "NAME": f"U{n}", "LAST_NAME": "X", "UF_DEPARTMENT": [3]} for n in range(120)]
    async with Bitrix24Simulator(webhook=WEBHOOK, seed=seed) as sim, Bitrix24Client(webhook_settings(sim)) as client:
        users = await client.list_all("user.get", {"FILTER": {"ACTIVE": True}})
    assert len({u["ID"] for u in users}) == len(users) == 127
    assert len(requests_to(sim, "user.get")) == math.ceil(127 / 50)


async def test_transient_errors_are_retried_until_the_portal_recovers(sim: Bitrix24Simulator) -> None:
    for kinds in (("500",), ("503",), ("429",)):
        sim.reset()
        sim.set_fault(error_rate=1.0, error_kinds=kinds)
        client = Bitrix24Client(webhook_settings(sim, rate=50.0), retry_attempts=50, retry_max_wait=0.05)
        async with client:
            call = asyncio.create_task(client.call("department.get"))
            await eventually(lambda: sim.state()["counters"].get("faults_injected", 0) >= 2)
            sim.clear_faults()
            departments = await call
        assert [d["NAME"] for d in departments] == ["Call centre", "Sales", "Support"], kinds
        assert client.stats.retries >= 2
        assert client.stats.errors == client.stats.retries
        if kinds == ("503",):
            assert client.stats.query_limit_exceeded >= 2


async def test_transient_errors_give_up_after_the_attempts_with_a_transient_error(sim: Bitrix24Simulator) -> None:
    sim.set_fault(error_rate=1.0, error_kinds=("500",))
    async with Bitrix24Client(webhook_settings(sim), retry_attempts=3, retry_max_wait=0.01) as client:
        with pytest.raises(TransientCrmError) as caught:
            await client.call("department.get")
    assert caught.value.code == "INTERNAL_SERVER_ERROR"
    assert len(requests_to(sim, "department.get")) == 3
    assert client.stats.retries == 2


async def test_a_dropped_connection_is_a_transient_network_error(sim: Bitrix24Simulator) -> None:
    sim.set_fault(outage_seconds=60.0)
    async with Bitrix24Client(webhook_settings(sim), retry_attempts=2, retry_max_wait=0.01) as client:
        with pytest.raises(TransientCrmError) as caught:
            await client.call("user.get")
    assert caught.value.code == "NETWORK_ERROR"
    assert WEBHOOK_CODE not in str(caught.value) and WEBHOOK_CODE not in repr(caught.value)


@pytest.mark.parametrize(
    ("method", "code"),
    [("no.such.method", "ERROR_METHOD_NOT_FOUND"), ("telephony.externalCall.finish", "ERROR_CORE")],
)
async def test_permanent_errors_are_not_retried(sim: Bitrix24Simulator, method: str, code: str) -> None:
    async with Bitrix24Client(webhook_settings(sim), retry_max_wait=0.01) as client:
        with pytest.raises(PermanentCrmError) as caught:
            await client.call(method, {"CALL_ID": "externalCall.nope.1", "USER_ID": 11})
    assert caught.value.code == code
    assert len(requests_to(sim, method)) == 1
    assert client.stats.retries == 0


async def test_a_wrong_webhook_code_is_permanent_and_never_shown(sim: Bitrix24Simulator) -> None:
    wrong = sim.webhook_url.replace(WEBHOOK_CODE, "wr0ngC0deValue")
    with capture_logs() as logs:
        async with Bitrix24Client(Bitrix24Settings(webhook_url=Secret(wrong)), retry_max_wait=0.01) as client:
            with pytest.raises(PermanentCrmError) as caught:
                await client.call("user.get")
    assert caught.value.code == "NO_AUTH_FOUND"
    assert "wr0ngC0deValue" not in str(caught.value) + repr(caught.value) + repr(logs)


async def test_finish_of_an_unknown_call_with_an_empty_error_code_is_call_not_found() -> None:
    simulator = Bitrix24Simulator(webhook=WEBHOOK, empty_error_code_fraction=1.0)
    async with simulator as sim, Bitrix24Client(webhook_settings(sim)) as client:
        registered = await client.call(*register("leg-empty"))
        await client.call(*finish(registered["CALL_ID"]))
        with pytest.raises(CallNotFoundError) as caught:
            await client.call(*finish(registered["CALL_ID"]))
    assert caught.value.code == ""
    assert caught.value.description.startswith("Call is not found")
    assert len(requests_to(sim, "telephony.externalCall.finish")) == 2


# --- batch ---------------------------------------------------------------------------------------------


async def test_register_and_finish_in_one_batch_through_a_result_reference(sim: Bitrix24Simulator) -> None:
    async with Bitrix24Client(webhook_settings(sim)) as client:
        answer = await client.batch({"reg": register("leg-b1"), "fin": finish(result_ref("reg", "CALL_ID"), 42)})
    assert answer.errors == {}
    call_id = answer.results["reg"]["CALL_ID"]
    assert answer.results["fin"]["CALL_ID"] == call_id
    [call] = sim.state()["calls"]
    assert (call["CALL_ID"], call["status"], call["finish"]["DURATION"]) == (call_id, "finished", 42)
    assert len(sim.state()["requests"]) == 1
    assert (client.stats.requests, client.stats.commands) == (1, 2)


async def test_batch_errors_are_classified_per_command_and_halt_stops_the_rest(sim: Bitrix24Simulator) -> None:
    commands = {
        "ok": ("department.get", {}),
        "gone": finish("externalCall.00000000000000000000000000000000.1"),
        "nomethod": ("no.such.method", {}),
        "after": ("user.get", {"FILTER": {"ID": 11}}),
    }
    async with Bitrix24Client(webhook_settings(sim)) as client:
        answer = await client.batch(commands)
        halted = await client.batch(commands, halt=True)
    assert set(answer.results) == {"ok", "after"}
    assert isinstance(answer.errors["gone"], CallNotFoundError)
    assert answer.errors["gone"].method == "telephony.externalCall.finish"
    assert type(answer.errors["nomethod"]) is PermanentCrmError
    assert answer.errors["nomethod"].code == "ERROR_METHOD_NOT_FOUND"
    assert set(halted.results) == {"ok"} and set(halted.errors) == {"gone"}
    assert halted.skipped(commands) == ["nomethod", "after"]


async def test_a_batch_of_more_than_50_commands_is_refused_before_sending(sim: Bitrix24Simulator) -> None:
    async with Bitrix24Client(webhook_settings(sim)) as client:
        with pytest.raises(ValueError, match="at most 50"):
            await client.batch({str(n): ("user.get", {}) for n in range(51)})
    assert sim.state()["requests"] == []


# --- pacing ----------------------------------------------------------------------------------------------

# The portal's bucket is scaled down (10 requests, draining 10/s instead of 50 and 2/s) in the simulator AND the
# client, so that 20 batches cannot all go at once and the test still takes about a second.
SCALED = {"rate": 10.0, "burst": 10}


async def _burst_of_1000_operations(client: Bitrix24Client) -> None:
    async def one_batch(index: int) -> None:
        commands = {}
        for pair in range(25):  # 25 register+finish pairs = 50 operations
            leg = f"burst-{index}-{pair}"
            commands[f"r{pair}"] = register(leg, phone=f"7900{index:03d}{pair:04d}")
            commands[f"f{pair}"] = finish(result_ref(f"r{pair}", "CALL_ID"))
        answer = await client.batch(commands)
        assert answer.errors == {}

    await asyncio.gather(*(one_batch(i) for i in range(20)))


async def test_a_burst_of_1000_operations_in_batches_never_draws_a_503() -> None:
    async with Bitrix24Simulator(webhook=WEBHOOK, rate=SCALED["rate"], burst=SCALED["burst"]) as sim:
        settings = webhook_settings(sim, rate=SCALED["rate"], burst=SCALED["burst"])
        async with Bitrix24Client(settings, retry_attempts=1) as client:
            await _burst_of_1000_operations(client)
        state = sim.state()
    assert state["counters"]["query_limit_exceeded"] == 0
    assert len(state["requests"]) <= math.ceil(1000 / 50) + 2
    assert sum(1 for call in state["calls"] if call["status"] == "finished") == 500
    assert client.stats.commands == 1000 and client.stats.query_limit_exceeded == 0


async def test_without_our_bucket_the_same_burst_overflows_the_portal() -> None:
    """The control for the test above: it can fail."""
    async with Bitrix24Simulator(webhook=WEBHOOK, rate=SCALED["rate"], burst=SCALED["burst"]) as sim:
        settings = webhook_settings(sim, rate=SCALED["rate"], burst=SCALED["burst"])
        # a 503 holds the portal back one drain interval only, so the unpaced herd needs many tries to get through
        async with Bitrix24Client(settings, limiter=AsyncLimiter(1000, 1), retry_attempts=40) as client:
            await _burst_of_1000_operations(client)
    assert client.stats.query_limit_exceeded > 0
    assert sim.state()["counters"]["query_limit_exceeded"] == client.stats.query_limit_exceeded


async def test_clients_of_one_portal_share_one_bucket(sim: Bitrix24Simulator) -> None:
    first, second = Bitrix24Client(webhook_settings(sim)), Bitrix24Client(webhook_settings(sim))
    async with first, second:
        await asyncio.gather(first.call("user.get"), second.call("user.get"), second.call("department.get"))
        assert first.stats.limiter is second.stats.limiter
        assert 2.5 < first.bucket_level() <= 3.0
    other = make_limiter(2.0, 50)
    assert other.max_rate == 48 and other.time_period == pytest.approx(24.0)


# --- OAuth -------------------------------------------------------------------------------------------------


def files_in(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def write_tokens(path: Path, tokens: dict[str, Any]) -> None:
    path.write_text(json.dumps(tokens))
    path.chmod(0o644)


async def test_an_expired_token_is_refreshed_once_for_concurrent_callers(
    sim: Bitrix24Simulator, tmp_path: Path
) -> None:
    token_file = tmp_path / "tokens.json"
    old = sim.issue_tokens()
    write_tokens(token_file, old)
    with capture_logs() as logs:
        async with Bitrix24Client(oauth_settings(sim, token_file)) as client:
            assert (await client.call("user.get", {"FILTER": {"ID": 11}}))[0]["ID"] == "11"
            sim.expire_access_tokens()
            results = await asyncio.gather(*(client.call("department.get") for _ in range(5)))
    assert all(len(r) == 3 for r in results)
    assert client.stats.token_refreshes == 1
    saved = json.loads(token_file.read_text())
    assert saved["access_token"] != old["access_token"] and saved["refresh_token"] != old["refresh_token"]
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert files_in(tmp_path) == [token_file]  # no temp file left behind
    text = repr(logs)
    for secret in (old["access_token"], old["refresh_token"], saved["access_token"], saved["refresh_token"]):
        assert secret not in text
    assert CLIENT_SECRET not in text


async def test_two_clients_of_one_token_file_survive_each_others_refresh(
    sim: Bitrix24Simulator, tmp_path: Path
) -> None:
    """The daemon runs several clients on one token file: after one refreshes (spending the refresh token they all
    read at start), the other takes the stored pair instead of spending the dead refresh token (invalid_grant)."""
    token_file = tmp_path / "tokens.json"
    write_tokens(token_file, sim.issue_tokens())
    settings = oauth_settings(sim, token_file)
    async with Bitrix24Client(settings) as first, Bitrix24Client(settings) as second:
        assert await first.call("profile") and await second.call("profile")  # both have read the pair
        sim.expire_access_tokens()
        assert await first.call("profile")  # refreshes and stores a new pair
        assert await second.call("profile")  # its token is dead; the stored pair is the live one
    assert (first.stats.token_refreshes, second.stats.token_refreshes) == (1, 0)
    assert len(requests_to(sim, "profile")) == 6  # 2 at first, then each: a dead try and one with a live token


async def test_a_rejected_refresh_token_is_permanent_and_asks_to_reauthorise(
    sim: Bitrix24Simulator, tmp_path: Path
) -> None:
    token_file = tmp_path / "tokens.json"
    tokens = sim.issue_tokens() | {"refresh_token": "r3fr3shTokenThatIsUnknown"}
    write_tokens(token_file, tokens)
    sim.expire_access_tokens()
    with capture_logs() as logs:
        async with Bitrix24Client(oauth_settings(sim, token_file), retry_max_wait=0.01) as client:
            with pytest.raises(PermanentCrmError) as caught:
                await client.call("user.get")
    assert caught.value.code == "invalid_grant"
    assert "re-authorise" in str(caught.value)
    text = str(caught.value) + repr(caught.value) + repr(logs)
    for secret in (tokens["access_token"], "r3fr3shTokenThatIsUnknown", CLIENT_SECRET):
        assert secret not in text
    assert json.loads(token_file.read_text()) == tokens  # nothing overwritten


async def test_a_missing_token_file_is_a_clear_permanent_error(sim: Bitrix24Simulator, tmp_path: Path) -> None:
    async with Bitrix24Client(oauth_settings(sim, tmp_path / "absent.json")) as client:
        with pytest.raises(PermanentCrmError, match="does not exist"):
            await client.call("user.get")
    assert sim.state()["requests"] == []


async def test_no_secret_reaches_debug_logs_of_a_whole_session(sim: Bitrix24Simulator) -> None:
    previous = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(0))  # debug lines too
    try:
        with capture_logs() as logs:
            async with Bitrix24Client(webhook_settings(sim), retry_max_wait=0.01, retry_attempts=2) as client:
                await client.call("user.get")
                sim.set_fault(error_rate=1.0, error_kinds=("500",))
                with pytest.raises(TransientCrmError):
                    await client.call("user.get")
    finally:
        structlog.configure(**previous)
    events = {entry["event"] for entry in logs}
    assert {"crm.request", "crm.retry"} <= events
    assert WEBHOOK_CODE not in repr(logs)


async def test_names_in_any_script_and_huge_numbers_reach_the_portal_as_sent() -> None:
    seed = json.loads((Path(__file__).parents[2] / "bridge/sim/bitrix24/default_seed.json").read_text())
    seed["users"].append({"ID": 300, "NAME": "Иван", "LAST_NAME": "Петров", "UF_DEPARTMENT": [3]})
    async with Bitrix24Simulator(webhook=WEBHOOK, seed=seed) as sim, Bitrix24Client(webhook_settings(sim)) as client:
        found = await client.call("user.get", {"FILTER": {"NAME": "Иван"}})
        huge = await client.call("user.get", {"FILTER": {"ID": 2**70}})  # beyond orjson's 64 bits: still sent
    assert [(u["ID"], u["NAME"], u["LAST_NAME"]) for u in found] == [("300", "Иван", "Петров")]
    assert huge == []
