"""Click-to-call with the numbers a CRM really holds, end to end: a seeded contact's phone is clicked in the Bitrix24
simulator, which sends it raw (PHONE_NUMBER as stored, E.164 only when valid); the daemon reduces it, applies
``[asterisk] dial_rules`` and rings the trunk with the trunk's digits, or finishes Bitrix24's CALL_ID as 404."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from bridge.sim.asterisk import Answer, NeverAnswer
from bridge.sim.stage import Stage, stage
from bridge.sim.verdict import cards_of
from tests.eventually import eventually
from tests.integration.test_clicktocall import originated

RUSSIAN_TRUNK = ("+7XXXXXXXXXX -> 8XXXXXXXXXX", "7XXXXXXXXXX -> 8XXXXXXXXXX", "9XXXXXXXXX -> 89XXXXXXXXX")
OUTSIDE_LINE_9 = ("+7XXXXXXXXXX -> 98XXXXXXXXXX", "8XXXXXXXXXX -> 98XXXXXXXXXX", "9XXXXXXXXX -> 989XXXXXXXXX")


def dial_rules(*rules: str) -> Callable[[dict[str, Any]], None]:
    def tweak(data: dict[str, Any]) -> None:
        data["asterisk"]["dial_rules"] = list(rules)

    return tweak


def finished(s: Stage, call_id: str) -> Callable[[], dict[str, Any]]:
    """Bitrix24's record of ``call_id`` once it is finished."""

    def check() -> dict[str, Any]:
        [call] = [c for c in s.crm.state()["calls"] if c["CALL_ID"] == call_id]
        assert call["status"] == "finished", call["status"]
        return call

    return check


@pytest.mark.parametrize(
    ("rules", "contact", "stored", "dialled"),
    [
        (RUSSIAN_TRUNK, 3, "8 (926) 000-00-03", "89260000003"),
        (RUSSIAN_TRUNK, 4, "+7 926 000-00-04", "89260000004"),
        (RUSSIAN_TRUNK, 5, "926-000-00-05 доб. 12", "89260000005"),  # no E.164 from Bitrix24: reduced, 8 added
        (RUSSIAN_TRUNK, 6, "8 926 000-00-06#34", "89260000006"),
        (OUTSIDE_LINE_9, 3, "8 (926) 000-00-03", "989260000003"),
        (OUTSIDE_LINE_9, 5, "926-000-00-05 доб. 12", "989260000005"),
        ((), 4, "+7 926 000-00-04", "79260000004"),  # no rules: the + is dropped, as before
    ],
)
async def test_each_raw_form_rings_the_employee_then_the_trunks_digits(
    tmp_path: Path, rules: tuple[str, ...], contact: int, stored: str, dialled: str
) -> None:
    async with stage(tmp_path, tweak=dial_rules(*rules)) as s:
        s.pbx.set_party("1001", Answer(after=0.1))
        s.pbx.set_party(dialled, Answer(after=0.1, talk=0.6))
        call_id = await s.crm.click_to_call_entity(11, "CONTACT", contact)
        assert s.crm.state()["events"]["deliveries"][0]["ok"]
        call = await eventually(finished(s, call_id), timeout=15)
        assert (call["finish"]["STATUS_CODE"], call["finish"]["USER_ID"]) == ("200", 11)
        assert call["finish"]["DURATION"] >= 1
        assert originated(s) == ["PJSIP/1001", f"PJSIP/{dialled}@trunk"], stored


@pytest.mark.parametrize(
    ("rules", "contact", "why"),
    [
        (RUSSIAN_TRUNK, 7, "',' is not a digit"),  # two numbers in one field
        (RUSSIAN_TRUNK, 8, "'м' is not a digit"),  # a note in brackets
        (RUSSIAN_TRUNK, 9, "too short"),  # the form's +7, the rest never typed
        (("+7XXXXXXXXXX -> 8XXXXXXXXXX 0000000000",), 3, "too long"),  # a rule that leaves too many digits
    ],
)
async def test_an_undialable_number_finishes_bitrix24s_call_as_404_and_rings_nobody(
    tmp_path: Path, rules: tuple[str, ...], contact: int, why: str
) -> None:
    async with stage(tmp_path, tweak=dial_rules(*rules)) as s:
        with capture_logs() as logs:
            call_id = await s.crm.click_to_call_entity(11, "CONTACT", contact)
            call = await eventually(finished(s, call_id), timeout=15)
        finish = call["finish"]
        assert (finish["STATUS_CODE"], finish["USER_ID"], finish["DURATION"]) == ("404", 11, 0)
        assert why in finish["FAILED_REASON"] and finish["FAILED_REASON"].startswith("b24-bridge: not dialled")
        assert cards_of(s.crm.state(), call_id) == {11: ("show", "hide")}, "the card Bitrix24 opened is closed"
        [line] = [entry for entry in logs if entry["event"] == "clicktocall.undialable"]
        assert line["crm_call"] == call_id and why in line["reason"]
        assert originated(s) == [] and s.daemon.desk.sessions == {}


async def test_a_callback_to_an_undialable_number_dials_nothing_and_says_why(tmp_path: Path) -> None:
    async with stage(tmp_path, tweak=dial_rules(*RUSSIAN_TRUNK)) as s:
        with capture_logs() as logs:
            await s.crm.callback_request("8 926 000-00-07, 8 926 000-00-08", "Call me back")
            await eventually(lambda: [e for e in logs if e["event"] in ("callback.rejected", "clicktocall.rejected")])
        [line] = [e for e in logs if e["event"] in ("callback.rejected", "clicktocall.rejected")]
        assert "',' is not a digit" in line["reason"]
        assert originated(s) == []


async def test_a_callback_rings_the_trunks_digits(tmp_path: Path) -> None:
    async with stage(tmp_path, tweak=dial_rules(*RUSSIAN_TRUNK)) as s:
        await s.crm.callback_request("926-000-00-05 доб. 12", "Call me back")
        await eventually(lambda: originated(s) == ["PJSIP/89260000005@trunk"])


def forwards(data: dict[str, Any]) -> None:
    """Dial rules of a Russian trunk; 1003 forwards to their mobile (written +7...) when they do not answer; a second
    line forwards every call to a number written in the same +7 form."""
    dial_rules(*RUSSIAN_TRUNK)(data)
    data["employees"]["map"]["1003"].update(mobile="+79160001003", no_answer_to_mobile=True)
    data["lines"]["74951112233"]["rules"] = [{"when": "always", "then": "employee:1003"}]
    data["lines"]["74951112244"]["rules"] = [{"when": "always", "then": "number:+74957770000"}]


async def test_forwards_to_a_mobile_and_to_a_number_dial_the_trunks_digits(tmp_path: Path) -> None:
    async with stage(tmp_path, tweak=forwards) as s:
        s.pbx.set_party("1003", NeverAnswer())
        s.pbx.set_party("89160001003", Answer(after=0.1))
        s.pbx.set_party("84957770000", Answer(after=0.1))
        first = await s.pbx.place_inbound_call("74951112233", "79990000301", hangup_after_answer=0.5)
        await asyncio.wait_for(first.ended(), 20)
        second = await s.pbx.place_inbound_call("74951112244", "79990000302", hangup_after_answer=0.5)
        await asyncio.wait_for(second.ended(), 20)
        external = [endpoint for endpoint in originated(s) if endpoint.endswith("@trunk")]
        assert external == ["PJSIP/89160001003@trunk", "PJSIP/84957770000@trunk"]
