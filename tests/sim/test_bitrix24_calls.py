"""telephony.externalCall.register/finish/show/hide, dedup, CRM binding, lines: the emulator checklist."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bridge.sim.bitrix24 import Bitrix24Simulator
from bridge.sim.bitrix24.seed import default_seed_data
from tests.sim.b24_support import Rest, rest_fixture, sim_fixture  # noqa: F401

NOT_FOUND = "Call is not found (call should be registered prior to finishing"


def _iso(minutes_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(timespec="seconds")


def _call(rest: Rest, call_id: str) -> dict[str, Any]:
    return next(c for c in rest.sim.state()["calls"] if c["CALL_ID"] == call_id)


async def test_call_id_format_and_register_result(rest: Rest) -> None:
    result = await rest.result(
        "telephony.externalCall.register",
        {"USER_ID": 12, "PHONE_NUMBER": "+7 916 123-45-67", "TYPE": 2, "EXTERNAL_CALL_ID": "a"},
    )
    match = re.fullmatch(r"externalCall\.[0-9a-f]{32}\.(\d+)", result["CALL_ID"])
    assert match and abs(int(match.group(1)) - time.time()) < 60
    assert result == {
        "CALL_ID": result["CALL_ID"],
        "CRM_CREATED_LEAD": None,
        "CRM_CREATED_ENTITIES": [],
        "CRM_ENTITY_TYPE": "CONTACT",
        "CRM_ENTITY_ID": 1,
    }
    call = _call(rest, result["CALL_ID"])
    assert (call["USER_ID"], call["PHONE_NUMBER"], call["TYPE"], call["status"]) == (12, "79161234567", 2, "active")


async def test_reregistration_returns_same_call_and_reshows_card(rest: Rest) -> None:
    first = await rest.register(LINE_NUMBER="100")
    second = await rest.register(LINE_NUMBER="100", PHONE_NUMBER="79161234567")  # same number, other spelling
    assert second == first
    assert [card["action"] for card in rest.sim.state()["cards"]["12"]] == ["show", "show"]
    assert await rest.register(LINE_NUMBER="100", SHOW=0) == first
    assert len(rest.sim.state()["cards"]["12"]) == 2  # SHOW=0 does not re-show
    assert len(rest.sim.state()["calls"]) == 1


async def test_dedup_key_parts_make_distinct_calls(rest: Rest) -> None:
    base = await rest.register(EXTERNAL_CALL_ID="x1", LINE_NUMBER="100")
    assert await rest.register(EXTERNAL_CALL_ID="x2", LINE_NUMBER="100") != base
    assert await rest.register(EXTERNAL_CALL_ID="x1", LINE_NUMBER="200") != base
    assert await rest.register(EXTERNAL_CALL_ID="x1", LINE_NUMBER="100", TYPE=3) != base
    assert await rest.register(EXTERNAL_CALL_ID="x1", LINE_NUMBER="100", USER_ID=13) != base
    assert await rest.register(EXTERNAL_CALL_ID="x1", LINE_NUMBER="100", PHONE_NUMBER="79035550001") != base
    assert await rest.register(EXTERNAL_CALL_ID="x1", LINE_NUMBER="100") == base
    # Another app (OAuth) never matches a webhook registration.
    token = rest.sim.issue_tokens()["access_token"]
    status, body = await rest.oauth(
        "telephony.externalCall.register",
        token,
        {"USER_ID": 12, "PHONE_NUMBER": "+7 916 123-45-67", "TYPE": 2, "EXTERNAL_CALL_ID": "x1", "LINE_NUMBER": "100"},
    )
    assert status == 200 and body["result"]["CALL_ID"] != base


async def test_dedup_only_hits_active_calls_within_30_minutes_of_start(rest: Rest) -> None:
    old = await rest.register(CALL_START_DATE=_iso(31))
    assert await rest.register() != old  # DATE_CREATE = CALL_START_DATE is outside the window
    recent = await rest.register(PHONE_NUMBER="79035550001", CALL_START_DATE=_iso(29))
    assert await rest.register(PHONE_NUMBER="79035550001") == recent
    status, _ = await rest.finish(recent, DURATION=5)
    assert status == 200
    assert await rest.register(PHONE_NUMBER="79035550001") != recent


async def test_overlapping_calls_without_external_id_share_call_id_and_second_finish_fails(rest: Rest) -> None:
    """Problem #1 of the reference (b24-rest-docs#175), reproduced."""
    first, second = await rest.register(), await rest.register()
    assert first == second
    assert (await rest.finish(first, DURATION=10))[0] == 200
    status, body = await rest.finish(second, DURATION=3)
    assert status == 400 and body == {"error": "ERROR_CORE", "error_description": NOT_FOUND}


async def test_unknown_line_is_created_for_the_app(rest: Rest) -> None:
    await rest.register(LINE_NUMBER="74951112233")
    lines = await rest.result("telephony.externalLine.get")
    assert {"NUMBER": "74951112233", "NAME": "74951112233", "CRM_AUTO_CREATE": "Y"} in lines
    token = rest.sim.issue_tokens()["access_token"]
    _, body = await rest.oauth("telephony.externalLine.get", token)
    assert body["result"] == []  # lines belong to the app that created them


async def test_user_resolution_and_validation_errors(rest: Rest) -> None:
    call_id = await rest.register(USER_ID=0, USER_PHONE_INNER="1003")
    assert _call(rest, call_id)["USER_ID"] == 13
    cases: list[tuple[dict[str, Any], str]] = [
        ({"USER_ID": 0, "USER_PHONE_INNER": "1007"}, "User is not found or is not active"),  # dismissed user 17
        ({"USER_ID": 17}, "User is not found or is not active"),
        ({"USER_ID": 999}, "User is not found or is not active"),
        ({"USER_ID": 0}, "USER_ID or USER_PHONE_INNER should be set"),
        ({"TYPE": 7}, "Unknown TYPE"),
        ({"TYPE": "outgoing"}, "Unknown TYPE"),
        ({"CALL_START_DATE": "yesterday at noon"}, "CALL_START_DATE should be in the ISO-8601 format"),
        ({"PHONE_NUMBER": "anonymous"}, "Unsupported phone number format"),
    ]
    for fields, text in cases:
        status, body = await rest.call(
            "telephony.externalCall.register", {"USER_ID": 12, "PHONE_NUMBER": "79161234567", "TYPE": 2, **fields}
        )
        assert (status, body) == (400, {"error": "ERROR_CORE", "error_description": text}), fields
    assert len(rest.sim.state()["calls"]) == 1


async def test_phone_letters_are_stripped_and_start_date_kept(rest: Rest) -> None:
    call_id = await rest.register(
        PHONE_NUMBER="tel:+7 (903) 555-00-01 ext", CALL_START_DATE="2026-03-07T10:20:30+03:00"
    )
    call = _call(rest, call_id)
    assert call["PHONE_NUMBER"] == "79035550001"
    assert call["CALL_START_DATE"] == "2026-03-07T10:20:30+03:00"


async def test_crm_create_makes_a_lead_reassigned_to_the_finishing_user(rest: Rest) -> None:
    result = await rest.result(
        "telephony.externalCall.register", {"USER_ID": 12, "PHONE_NUMBER": "79990001122", "TYPE": 2, "CRM_CREATE": 1}
    )
    lead_id = result["CRM_CREATED_LEAD"]
    assert result["CRM_ENTITY_TYPE"] == "LEAD" and result["CRM_ENTITY_ID"] == lead_id
    assert result["CRM_CREATED_ENTITIES"] == [{"ENTITY_TYPE": "LEAD", "ENTITY_ID": lead_id}]
    assert (await rest.result("crm.lead.get", {"id": lead_id}))["ASSIGNED_BY_ID"] == "12"
    status, _ = await rest.call(
        "telephony.externalCall.finish", {"CALL_ID": result["CALL_ID"], "USER_ID": 11, "DURATION": 30}
    )
    assert status == 200
    assert (await rest.result("crm.lead.get", {"id": lead_id}))["ASSIGNED_BY_ID"] == "11"
    assert [lead["ID"] for lead in rest.sim.state()["leads"]] == [str(lead_id)]


async def test_no_crm_for_internal_numbers_and_no_lead_without_crm_create(rest: Rest) -> None:
    internal = await rest.result(
        "telephony.externalCall.register", {"USER_ID": 12, "PHONE_NUMBER": "1005", "TYPE": 2, "CRM_CREATE": 1}
    )
    assert (internal["CRM_ENTITY_TYPE"], internal["CRM_ENTITY_ID"], internal["CRM_CREATED_LEAD"]) == ("", None, None)
    plain = await rest.result(
        "telephony.externalCall.register", {"USER_ID": 12, "PHONE_NUMBER": "79990001122", "TYPE": 2}
    )
    assert plain["CRM_ENTITY_TYPE"] == "" and plain["CRM_ENTITY_ID"] is None
    assert rest.sim.state()["leads"] == []


async def test_explicit_crm_entity_and_line_without_auto_create(rest: Rest) -> None:
    bound = await rest.result(
        "telephony.externalCall.register",
        {"USER_ID": 14, "PHONE_NUMBER": "79161234567", "TYPE": 2, "CRM_ENTITY_TYPE": "COMPANY", "CRM_ENTITY_ID": 1},
    )
    assert (bound["CRM_ENTITY_TYPE"], bound["CRM_ENTITY_ID"]) == ("COMPANY", 1)
    await rest.result("telephony.externalLine.add", {"NUMBER": "300", "CRM_AUTO_CREATE": "N"})
    outgoing = await rest.result(
        "telephony.externalCall.register",
        {"USER_ID": 12, "PHONE_NUMBER": "79990002233", "TYPE": 1, "CRM_CREATE": 1, "LINE_NUMBER": "300"},
    )
    assert outgoing["CRM_CREATED_LEAD"] is None


async def test_finish_exactly_once_with_status_defaults(rest: Rest) -> None:
    answered, missed, busy = (
        await rest.register(EXTERNAL_CALL_ID="1"),
        await rest.register(EXTERNAL_CALL_ID="2"),
        await rest.register(EXTERNAL_CALL_ID="3"),
    )
    status, body = await rest.finish(answered, DURATION=11)
    assert status == 200
    result = body["result"]
    assert (result["CALL_FAILED_CODE"], result["CALL_STATUS"], result["CALL_DURATION"]) == ("200", 1, 11)
    assert result["EXTERNAL_CALL_ID"] == "1" and result["PORTAL_USER_ID"] == 12 and result["INCOMING"] == "2"
    _, body = await rest.finish(missed)
    assert (body["result"]["CALL_FAILED_CODE"], body["result"]["CALL_STATUS"]) == ("304", 0)
    _, body = await rest.finish(busy, STATUS_CODE="200", DURATION=0)
    assert (body["result"]["CALL_FAILED_CODE"], body["result"]["CALL_STATUS"]) == ("200", 0)  # status from DURATION
    status, body = await rest.finish(answered, DURATION=11)
    assert status == 400 and body == {"error": "ERROR_CORE", "error_description": NOT_FOUND}
    call = _call(rest, answered)
    assert call["status"] == "finished" and call["finish_attempts"] == 2
    assert call["finish"] == {
        "USER_ID": 12,
        "DURATION": 11,
        "STATUS_CODE": "200",
        "CALL_STATUS": 1,
        "FAILED_REASON": "",
    }


async def test_finish_argument_errors_leave_the_call_active(rest: Rest) -> None:
    call_id = await rest.register()
    status, body = await rest.call("telephony.externalCall.finish", {"CALL_ID": 12345, "USER_ID": 12})
    assert (status, body["error"], body["error_description"]) == (400, "INVALID_ARGUMENT", "CALL_ID must be a string")
    status, body = await rest.call("telephony.externalCall.finish", {"CALL_ID": call_id})
    assert body["error_description"] == "USER_ID or USER_PHONE_INNER should be set"
    status, body = await rest.finish(call_id, USER_ID=17)
    assert body["error_description"] == "User is not found or is not active"
    assert _call(rest, call_id)["status"] == "active"
    status, _ = await rest.call(
        "telephony.externalCall.finish", {"CALL_ID": call_id, "USER_PHONE_INNER": "1002", "DURATION": 4}
    )
    assert status == 200


async def test_empty_error_code_case_can_be_forced() -> None:
    import aiohttp

    from bridge.sim.bitrix24 import Bitrix24Simulator

    async with Bitrix24Simulator(empty_error_code_fraction=1.0) as sim, aiohttp.ClientSession() as session:
        status, body = await Rest(session, sim).finish("externalCall.0.0")
    assert status == 400 and body == {"error": "", "error_description": NOT_FOUND}


async def test_finish_hides_the_finishing_users_card(rest: Rest) -> None:
    call_id = await rest.register()
    status, _ = await rest.finish(call_id, USER_ID=13, DURATION=3)
    assert status == 200
    cards = rest.sim.state()["cards"]
    assert [c["action"] for c in cards["12"]] == ["show"]
    assert [(c["action"], c["CALL_ID"]) for c in cards["13"]] == [("hide", call_id)]


async def test_show_hide_true_while_active_false_after(rest: Rest) -> None:
    call_id = await rest.register(SHOW=0)
    assert await rest.result("telephony.externalCall.show", {"CALL_ID": call_id, "USER_ID": [11, 13]}) is True
    assert await rest.result("telephony.externalCall.hide", {"CALL_ID": call_id, "USER_ID": 11}) is True
    form = {"CALL_ID": call_id, "USER_ID[]": "14"}
    assert await rest.result("telephony.externalCall.show", form, form=True) is True
    assert await rest.result("telephony.externalCall.show", {"CALL_ID": call_id}) is True  # default: registering user
    assert await rest.result("telephony.externalCall.show", {"CALL_ID": "externalCall.nope.1"}) is False
    await rest.finish(call_id, DURATION=1)
    assert await rest.result("telephony.externalCall.hide", {"CALL_ID": call_id, "USER_ID": 13}) is False
    cards = rest.sim.state()["cards"]
    assert [c["action"] for c in cards["11"]] == ["show", "hide"]
    assert [c["action"] for c in cards["13"]] == ["show"]
    assert [c["action"] for c in cards["14"]] == ["show"]
    assert [c["action"] for c in cards["12"]] == ["show", "hide"]


async def test_search_crm_entities_by_normalised_phone(rest: Rest) -> None:
    found = await rest.result("telephony.externalCall.searchCrmEntities", {"PHONE_NUMBER": "8 (916) 123-45-67"})
    assert found == [
        {
            "CRM_ENTITY_TYPE": "CONTACT",
            "CRM_ENTITY_ID": 1,
            "ASSIGNED_BY_ID": 12,
            "NAME": "Ivan Kuznetsov",
            "ASSIGNED_BY": {
                "ID": "12",
                "TIMEMAN_STATUS": "OPENED",
                "USER_PHONE_INNER": "1002",
                "WORK_PHONE": None,
                "PERSONAL_PHONE": None,
                "PERSONAL_MOBILE": "+7 916 000-10-02",
            },
        }
    ]
    company = await rest.result("telephony.externalCall.searchCrmEntities", {"PHONE_NUMBER": "+74957770000"})
    assert [(e["CRM_ENTITY_TYPE"], e["ASSIGNED_BY"]["TIMEMAN_STATUS"]) for e in company] == [("COMPANY", "CLOSED")]
    assert await rest.result("telephony.externalCall.searchCrmEntities", {"PHONE_NUMBER": "70000000000"}) == []
    status, body = await rest.call("telephony.externalCall.searchCrmEntities", {"PHONE_NUMBER": ""})
    assert (status, body["error_description"]) == (400, "PHONE_NUMBER is empty")


async def test_external_lines_crud(rest: Rest) -> None:
    added = await rest.result("telephony.externalLine.add", {"NUMBER": "74950001122", "NAME": "Main"})
    assert isinstance(added["ID"], int)
    status, body = await rest.call("telephony.externalLine.add", {"NUMBER": "74950001122"})
    assert (status, body["error_description"]) == (400, "Line already exists")
    status, body = await rest.call("telephony.externalLine.add", {"NAME": "x"})
    assert body["error_description"] == "NUMBER should not be empty"
    status, body = await rest.call("telephony.externalLine.update", {"NUMBER": "74950001122"})
    assert body["error_description"] == "There are no fields to update"
    updated = await rest.result("telephony.externalLine.update", {"NUMBER": "74950001122", "CRM_AUTO_CREATE": "yes"})
    assert updated == {"ID": str(added["ID"])}
    assert await rest.result("telephony.externalLine.get") == [
        {"NUMBER": "74950001122", "NAME": "Main", "CRM_AUTO_CREATE": "N"}
    ]
    assert await rest.result("telephony.externalLine.delete", {"NUMBER": "74950001122"}) == []
    status, body = await rest.call("telephony.externalLine.delete", {"NUMBER": "74950001122"})
    assert body["error_description"] == "Could not find line with number 74950001122"


LEAD_USER_FIELDS = [
    {"FIELD_NAME": "UF_CRM_REGION", "USER_TYPE_ID": "enumeration", "MULTIPLE": "N",
     "LIST": [{"ID": 44, "VALUE": "South"}, {"ID": 45, "VALUE": "North", "DEF": "Y"}]},
    {"FIELD_NAME": "UF_CRM_TAGS", "USER_TYPE_ID": "enumeration", "MULTIPLE": "Y",
     "LIST": [{"ID": 50, "VALUE": "Retail", "DEF": "Y"}, {"ID": 51, "VALUE": "Wholesale", "DEF": "Y"}]},
    {"FIELD_NAME": "UF_CRM_NOTE", "USER_TYPE_ID": "string", "MULTIPLE": "N"},
    {"FIELD_NAME": "UF_CRM_PHONES", "USER_TYPE_ID": "string", "MULTIPLE": "Y"},
]  # fmt: skip


async def test_a_lead_a_call_creates_has_its_source_and_the_portal_s_user_fields_as_crm_lead_get_returns_them() -> None:
    """SOURCE_ID is the register's CRM_SOURCE (else CALL); UF_ fields start at their defaults, enumerations as item
    IDs (strings), multiple fields as lists, an empty single field as null; a robot may fill them later."""
    seed = default_seed_data() | {"lead_user_fields": LEAD_USER_FIELDS}
    async with Bitrix24Simulator(seed=seed) as sim, aiohttp.ClientSession() as session:
        rest = Rest(session, sim)
        ids = []
        for phone, source in (("79990003001", "WEB"), ("79990003002", "")):
            params = {"USER_ID": 12, "PHONE_NUMBER": phone, "TYPE": 2, "CRM_CREATE": 1}
            result = await rest.result(
                "telephony.externalCall.register", params | ({"CRM_SOURCE": source} if source else {})
            )
            ids.append(result["CRM_CREATED_LEAD"])
        web, plain = [await rest.result("crm.lead.get", {"id": i}) for i in ids]
        assert (web["SOURCE_ID"], plain["SOURCE_ID"]) == ("WEB", "CALL")
        fields = {k: v for k, v in web.items() if k.startswith("UF_")}
        assert fields == {"UF_CRM_REGION": "45", "UF_CRM_TAGS": ["50", "51"], "UF_CRM_NOTE": None, "UF_CRM_PHONES": []}
        sim.core.crm.fill_lead(ids[1], UF_CRM_REGION="44", UF_CRM_NOTE="from the fair")
        plain = await rest.result("crm.lead.get", {"id": ids[1]})
        assert (plain["UF_CRM_REGION"], plain["UF_CRM_NOTE"]) == ("44", "from the fair")
