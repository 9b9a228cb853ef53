"""Click-to-call (ONEXTERNALCALLSTART) end to end: by push to the daemon's handler and by pull, the posts the
handler must refuse (forged, repeated, malformed) without originating, and numbers carrying dial-string characters,
which never reach the PBX (Bitrix24's call is finished as 404 instead; more forms in test_clicktocall_numbers.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.sim.asterisk import Answer, Busy, NeverAnswer
from bridge.sim.stage import Stage, stage
from bridge.sim.verdict import ANSWERED, OUTGOING, Expect
from tests.eventually import eventually
from tests.integration.daemon_support import mirrored

CALL_ID = "externalCall.0123456789abcdef0123456789abcdef.1795306061"
GENUINE = "<the stage's application token>"
"""Stands for the token genuine events carry (the outbound webhook's); :func:`post` puts it in."""


def originated(s: Stage) -> list[str]:
    """Endpoints the daemon asked the PBX to dial."""
    return [r["params"]["endpoint"] for r in s.pbx.requests if "endpoint" in r["params"]]


def click_form(token: str = GENUINE, **data: str) -> dict[str, str]:
    """A click-to-call post as Bitrix24 sends it (form fields with PHP-style keys)."""
    fields = {"CALL_ID": CALL_ID, "USER_ID": "11", "PHONE_NUMBER": "79260000100", "LINE_NUMBER": "", "IS_MOBILE": "0"}
    fields.update(data)
    form = {"event": "ONEXTERNALCALLSTART", "event_handler_id": "1", "ts": "1795306061"}
    form.update({f"data[{k}]": v for k, v in fields.items()})
    form.update({"auth[domain]": "sim.bitrix24.ru", "auth[application_token]": token})
    return form


async def post(s: Stage, body: Any, **kwargs: Any) -> tuple[int, Any]:
    if isinstance(body, dict):
        body = {key: s.app_token if value == GENUINE else value for key, value in body.items()}
    if "json" in kwargs:
        kwargs["json"] = {**kwargs["json"], "auth": {"application_token": s.app_token}}
    async with aiohttp.ClientSession() as session, session.post(s.events_url, data=body, **kwargs) as response:
        return response.status, await response.json(content_type=None)


async def test_click_to_call_by_push_rings_the_employee_then_the_client_and_finishes_bitrix24s_call(
    tmp_path: Path,
) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", Answer(after=0.2))
        s.pbx.set_party("79260000101", Answer(after=0.3, talk=1.2))
        call_id = await s.crm.click_to_call(11, "79260000101")
        crm = await mirrored(
            s,
            Expect(
                "79260000101", OUTGOING, 11, ANSWERED, talk=1.2, recorded=True, shown_to=frozenset({11}),
                crm_call_id=call_id,
            ),
        )  # fmt: skip
        assert crm.cards == {11: ("show", "hide")}
        assert originated(s) == ["PJSIP/1001", "PJSIP/79260000101@trunk"]
        assert all(c["EXTERNAL_CALL_ID"] is None for c in s.crm.state()["calls"]), "the bridge must not register"


async def test_click_to_call_by_pull(tmp_path: Path) -> None:
    def pull(data: dict[str, Any]) -> None:
        data["bitrix24"].update(events="pull", poll_interval=0.1)

    async with stage(tmp_path, tweak=pull, auth="oauth") as s:  # offline events are an application's only
        s.pbx.set_party("1002", Answer(after=0.2))
        s.pbx.set_party("79260000102", Answer(after=0.2, talk=1.0))
        call_id = await s.crm.click_to_call(12, "79260000102")
        assert s.crm.state()["events"]["deliveries"] == [], "pull mode must not need a public handler"
        await mirrored(
            s,
            Expect(
                "79260000102", OUTGOING, 12, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({12}),
                crm_call_id=call_id,
            ),
        )  # fmt: skip
        assert s.crm.state()["events"]["offline_queue"] == []


async def test_employee_who_does_not_pick_up_ends_bitrix24s_call_unanswered(tmp_path: Path) -> None:
    async with stage(tmp_path, ring_seconds=0.2) as s:
        s.pbx.set_party("1003", NeverAnswer())
        call_id = await s.crm.click_to_call(13, "79260000103")
        await mirrored(s, Expect("79260000103", OUTGOING, 13, "304", shown_to=frozenset({13}), crm_call_id=call_id))
        assert originated(s) == ["PJSIP/1003"], "the client must not be dialled before the employee answers"


async def test_busy_client_is_486(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", Answer(after=0.1))
        s.pbx.set_party("79260000104", Busy())
        call_id = await s.crm.click_to_call(11, "79260000104")
        await mirrored(s, Expect("79260000104", OUTGOING, 11, "486", shown_to=frozenset({11}), crm_call_id=call_id))


async def test_user_without_a_phone_gets_bitrix24s_call_closed_and_nothing_dialled(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        call_id = await s.crm.click_to_call(1, "79260000105")  # the portal admin has no extension
        await mirrored(s, Expect("79260000105", OUTGOING, 1, "480", shown_to=frozenset({1}), crm_call_id=call_id))
        assert originated(s) == []


async def test_forged_token_is_401_and_nothing_is_originated(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        status, body = await post(s, click_form(token="not-the-token"))
        assert status == 401 and s.app_token not in str(body)
        status, _ = await post(s, {k: v for k, v in click_form().items() if not k.startswith("auth")})
        assert status == 401
        # the genuine post with the same CALL_ID is still accepted: a forgery does not burn it
        s.pbx.set_party("1001", NeverAnswer())
        status, _ = await post(s, click_form())
        assert status == 200
        await eventually(lambda: originated(s) == ["PJSIP/1001"])
        assert b'b24bridge_clicktocall_total{result="rejected"} 2.0' in s.daemon.metrics.render()


async def test_repeated_call_id_is_ignored(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", NeverAnswer())
        first = await post(s, click_form())
        again = await post(s, click_form())
        assert first == (200, {"result": True})
        assert again[0] == 200 and "already handled" in again[1]["error"]
        await eventually(lambda: originated(s) == ["PJSIP/1001"])
        assert len(s.daemon.desk.sessions) == 1


@pytest.mark.parametrize(
    ("body", "kwargs"),
    [
        pytest.param(None, {"json": {"event": "ONEXTERNALCALLSTART"}},
                     id="json-not-form"),
        pytest.param(click_form(CALL_ID="123; DROP"), {}, id="bad-call-id"),
        pytest.param(click_form(USER_ID="eleven"), {}, id="user-not-a-number"),
        pytest.param({**click_form(), "event": "ONSOMETHINGELSE"}, {}, id="unknown-event"),
        pytest.param({k: v for k, v in click_form().items() if not k.startswith("data")}, {}, id="no-data"),
        pytest.param(b"\xff\xfe" * 40_000, {"headers": {"Content-Type": "application/x-www-form-urlencoded"}},
                     id="oversized-garbage"),
    ],
)  # fmt: skip
async def test_malformed_posts_are_400_and_originate_nothing(tmp_path: Path, body: Any, kwargs: dict[str, Any]) -> None:
    async with stage(tmp_path) as s:
        status, answer = await post(s, body, **kwargs)
        assert status in (400, 401) if body is None else status == 400, (status, answer)
        assert originated(s) == [] and s.daemon.desk.sessions == {}


# ("7926,0000106" is not here: Bitrix24's parser reads the comma as punctuation, sends +79260000106, dialled so)
@pytest.mark.parametrize("number", ["79260000106&PJSIP/evil", "79260000106\nChannel: x", "${EXTEN}1"])
async def test_dial_string_characters_in_the_number_dial_nothing_and_close_bitrix24s_call(
    tmp_path: Path, number: str
) -> None:
    async with stage(tmp_path) as s:
        call_id = await s.crm.click_to_call(11, number)
        await mirrored(s, Expect(number, OUTGOING, 11, "404", shown_to=frozenset({11}), crm_call_id=call_id))
        assert originated(s) == []


async def test_an_international_form_that_is_not_e164_is_not_trusted(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", Answer(after=0.1))
        s.pbx.set_party("79260000106", Busy())
        status, _ = await post(s, click_form(PHONE_NUMBER="79260000106", PHONE_NUMBER_INTERNATIONAL="+7926&PJSIP/x"))
        assert status == 200
        await eventually(lambda: originated(s) == ["PJSIP/1001", "PJSIP/79260000106@trunk"])
