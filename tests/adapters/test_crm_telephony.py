"""Typed telephony methods, the batchable request builders and the caller lookup, against the simulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from bridge.config import Bitrix24Settings, OAuthSettings, Secret
from bridge.crm.client import Bitrix24Client
from bridge.crm.errors import CallNotFoundError
from bridge.crm.lookup import CrmLookup, pick_entity
from bridge.crm.query import result_ref
from bridge.crm.telephony import CrmEntity, Telephony, TranscriptLine, request_for
from bridge.domain.commands import (
    CallType,
    CrmAdopt,
    CrmAttachRecord,
    CrmFinish,
    CrmHide,
    CrmMissedTask,
    CrmNotify,
    CrmRegister,
    CrmShow,
)
from bridge.sim.bitrix24 import Bitrix24Simulator

MSK = timezone(timedelta(hours=3))
STARTED = datetime(2026, 3, 7, 10, 20, 30, tzinfo=MSK)
LINE = "74951234567"


def a_register(leg: str = "leg-1", **changes: Any) -> CrmRegister:
    fields: dict[str, Any] = {
        "crm_leg": leg, "user_id": 11, "phone": "79001112233", "call_type": CallType.INCOMING, "line": LINE,
        "started_at": datetime.now(UTC), "show": True,
    }  # fmt: skip
    return CrmRegister(**(fields | changes))


@pytest.fixture
async def sim() -> AsyncIterator[Bitrix24Simulator]:
    async with Bitrix24Simulator() as simulator:
        yield simulator


@pytest.fixture
async def telephony(sim: Bitrix24Simulator) -> AsyncIterator[Telephony]:
    async with Bitrix24Client(Bitrix24Settings(webhook_url=Secret(sim.webhook_url), record_inline_limit=64)) as c:
        yield Telephony(c)


def the_call(sim: Bitrix24Simulator, call_id: str) -> dict[str, Any]:
    [call] = [c for c in sim.state()["calls"] if c["CALL_ID"] == call_id]
    return call


def methods_sent(sim: Bitrix24Simulator) -> list[str]:
    return [r["method"] for r in sim.state()["requests"]]


# --- pure request builders ------------------------------------------------------------------------------


def test_register_request_carries_every_field_the_core_gave() -> None:
    command = a_register(
        "call7-leg2", user_id=13, phone="+7 903 555-00-01", started_at=STARTED, show=False, crm_create=False,
        crm_source="CALL", crm_entity_type="CONTACT", crm_entity_id=2,
    )  # fmt: skip
    assert request_for(command) == (
        "telephony.externalCall.register",
        {
            "USER_ID": 13, "PHONE_NUMBER": "+7 903 555-00-01", "TYPE": 2, "EXTERNAL_CALL_ID": "call7-leg2",
            "CALL_START_DATE": "2026-03-07T10:20:30+03:00", "LINE_NUMBER": LINE, "SHOW": 0, "CRM_CREATE": 0,
            "CRM_SOURCE": "CALL", "CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": 2,
        },
    )  # fmt: skip


def test_register_request_leaves_out_what_is_not_known() -> None:
    _, params = request_for(a_register(line="", crm_source="", crm_entity_type="CONTACT", crm_entity_id=0))
    assert params["SHOW"] == 1 and params["CRM_CREATE"] == 1
    assert not {"LINE_NUMBER", "CRM_SOURCE", "CRM_ENTITY_TYPE", "CRM_ENTITY_ID"} & set(params)


def test_a_naive_start_time_gets_the_local_offset() -> None:
    _, params = request_for(a_register(started_at=datetime(2026, 3, 7, 10, 20, 30)))
    parsed = datetime.fromisoformat(params["CALL_START_DATE"])
    assert parsed.utcoffset() is not None
    assert parsed.replace(tzinfo=None) == datetime(2026, 3, 7, 10, 20, 30)


def test_card_finish_task_and_notify_requests() -> None:
    ref = result_ref("reg", "CALL_ID")
    assert request_for(CrmShow("l", (11, 12)), ref) == (
        "telephony.externalCall.show", {"CALL_ID": ref, "USER_ID": [11, 12]}
    )  # fmt: skip
    assert request_for(CrmHide("l", (12,)), "externalCall.x.1") == (
        "telephony.externalCall.hide", {"CALL_ID": "externalCall.x.1", "USER_ID": [12]}
    )  # fmt: skip
    assert request_for(CrmFinish("l", 11, 42, "200"), "c") == (
        "telephony.externalCall.finish",
        {"CALL_ID": "c", "USER_ID": 11, "DURATION": 42, "STATUS_CODE": "200", "ADD_TO_CHAT": 1},
    )  # fmt: skip
    assert request_for(CrmFinish("l", 11, 0, "304", add_to_chat=False), "c")[1]["ADD_TO_CHAT"] == 0
    _, missed = request_for(CrmFinish("l", 15, 0, "", failed_reason="nobody answered"), "c")
    assert (missed["STATUS_CODE"], missed["FAILED_REASON"]) == ("304", "nobody answered")
    assert request_for(CrmMissedTask(15, "Call back", "79001112233 called"), "") == (
        "tasks.task.add", {"fields": {"TITLE": "Call back", "RESPONSIBLE_ID": 15, "DESCRIPTION": "79001112233 called"}}
    )  # fmt: skip
    assert request_for(CrmNotify(15, "Missed call")) == (
        "im.notify.personal.add",
        {"USER_ID": 15, "MESSAGE": "Missed call"},
    )


@pytest.mark.parametrize(
    ("command", "call_id"),
    [(CrmAdopt("l", "externalCall.x.1"), "externalCall.x.1"), (CrmAttachRecord("l", "r.wav"), "c"),
     (CrmFinish("l", 11, 1, "200"), ""), (CrmShow("l", (11,)), "")],
)  # fmt: skip
def test_commands_without_a_request_of_their_own_are_refused(command: Any, call_id: str) -> None:
    with pytest.raises(ValueError):
        request_for(command, call_id)


def test_pick_entity_prefers_contact_then_company_then_lead() -> None:
    lead, company, contact = (CrmEntity(kind, n, 10 + n) for n, kind in enumerate(("LEAD", "COMPANY", "CONTACT")))
    assert pick_entity([lead, company, contact]) is contact
    assert pick_entity([lead, company]) is company
    assert pick_entity([lead]) is lead
    assert pick_entity([]) is None


# --- against the simulator --------------------------------------------------------------------------------


async def test_register_show_hide_finish_with_typed_methods(sim: Bitrix24Simulator, telephony: Telephony) -> None:
    registered = await telephony.register(
        user_id=11, phone="79035550001", call_type=CallType.INCOMING, external_call_id="leg-t1",
        started_at=STARTED, line=LINE, show=False,
    )  # fmt: skip
    assert registered.call_id.startswith("externalCall.")
    assert (registered.crm_entity_type, registered.crm_entity_id) == ("CONTACT", 2)
    call = the_call(sim, registered.call_id)
    assert (call["EXTERNAL_CALL_ID"], call["LINE_NUMBER"], call["SHOW"]) == ("leg-t1", LINE, False)
    assert call["CALL_START_DATE"] == "2026-03-07T10:20:30+03:00"
    assert await telephony.show(registered.call_id, [11, 12]) is True
    assert await telephony.hide(registered.call_id, [12]) is True
    record = await telephony.finish(registered.call_id, 11, 37, "200")
    assert (record["CALL_DURATION"], record["CALL_FAILED_CODE"]) == (37, "200")
    assert await telephony.show(registered.call_id, [11]) is False  # no longer active
    with pytest.raises(CallNotFoundError):
        await telephony.finish(registered.call_id, 11, 37, "200")
    [row] = await telephony.statistic_get({"EXTERNAL_CALL_ID": "leg-t1"})
    assert row["CALL_ID"] == registered.call_id
    assert await telephony.statistic_get({"EXTERNAL_CALL_ID": "never-sent"}) == []


async def test_domain_commands_in_one_batch_register_show_and_finish(
    sim: Bitrix24Simulator, telephony: Telephony
) -> None:
    ref = result_ref("reg", "CALL_ID")
    answer = await telephony.client.batch(
        {
            "reg": request_for(a_register("leg-b", show=False, crm_create=True)),
            "show": request_for(CrmShow("leg-b", (12, 13)), ref),
            "fin": request_for(CrmFinish("leg-b", 12, 0, "304", "nobody answered"), ref),
        }
    )
    assert answer.errors == {}
    call = the_call(sim, answer.results["reg"]["CALL_ID"])
    assert call["finish"] == {
        "USER_ID": 12, "DURATION": 0, "STATUS_CODE": "304", "CALL_STATUS": 0, "FAILED_REASON": "nobody answered"
    }  # fmt: skip
    assert answer.results["show"] is True
    assert answer.results["reg"]["CRM_CREATED_LEAD"]  # unknown number + CRM_CREATE=1 -> a lead


async def test_attach_record_inline_below_the_limit(sim: Bitrix24Simulator, telephony: Telephony) -> None:
    registered = await telephony.register(user_id=11, phone="79001112233", call_type=2, external_call_id="leg-r1")
    await telephony.finish(registered.call_id, 11, 5)
    content = bytes(range(64))
    file_id = await telephony.attach_record(registered.call_id, "call.WAV", content)
    assert file_id is not None
    assert sim.record_content(registered.call_id) == content
    assert methods_sent(sim)[-1] == "telephony.externalCall.attachRecord"
    assert "upload" not in methods_sent(sim)


async def test_attach_record_above_the_limit_goes_through_the_upload_url(
    sim: Bitrix24Simulator, telephony: Telephony
) -> None:
    registered = await telephony.register(user_id=11, phone="79001112233", call_type=2, external_call_id="leg-r2")
    await telephony.finish(registered.call_id, 11, 5)
    content = b"ID3" + bytes(range(256)) * 4
    with capture_logs() as logs:
        file_id = await telephony.attach_record(registered.call_id, "call.mp3", content)
    assert file_id is not None
    assert sim.record_content(registered.call_id) == content
    assert methods_sent(sim)[-2:] == ["telephony.externalCall.attachRecord", "upload"]
    assert "token=" not in repr(logs)


async def test_attach_record_refuses_other_formats_without_asking(sim: Bitrix24Simulator, telephony: Telephony) -> None:
    before = len(sim.state()["requests"])
    with pytest.raises(ValueError, match="wav and mp3"):
        await telephony.attach_record("externalCall.x.1", "call.ogg", b"OggS")
    assert len(sim.state()["requests"]) == before


async def test_attach_transcription_after_finish(sim: Bitrix24Simulator, telephony: Telephony) -> None:
    registered = await telephony.register(user_id=11, phone="79001112233", call_type=2, external_call_id="leg-tr")
    await telephony.finish(registered.call_id, 11, 9)
    lines = [TranscriptLine("Client", 0, 3, "Hello"), TranscriptLine("User", 3, 6, "Good afternoon")]
    transcript_id = await telephony.attach_transcription(registered.call_id, lines)
    assert transcript_id is not None and the_call(sim, registered.call_id)["transcript_id"] == transcript_id


async def test_lookup_finds_the_contact_its_manager_and_the_open_deal(telephony: Telephony) -> None:
    client = await CrmLookup(telephony).lookup_caller("+7 903 555-00-01")
    assert client is not None
    assert (client.entity_type, client.entity_id, client.responsible_user_id) == ("CONTACT", 2, 13)
    assert float(client.fields["OPPORTUNITY"]) == 500000
    assert client.fields["TIMEMAN_STATUS"] == "OPENED"


async def test_lookup_of_a_company_and_of_an_unknown_number(telephony: Telephony) -> None:
    company = await CrmLookup(telephony).lookup_caller("74957770000")
    assert company is not None
    assert (company.entity_type, company.responsible_user_id) == ("COMPANY", 14)
    assert "OPPORTUNITY" not in company.fields
    assert await CrmLookup(telephony).lookup_caller("79990000000") is None


async def test_crm_reads_tasks_notifications_and_lines(sim: Bitrix24Simulator, telephony: Telephony) -> None:
    contact = await telephony.crm_entity_get("CONTACT", 1)
    assert contact["ASSIGNED_BY_ID"] == "12"
    deal = await telephony.deal_for("CONTACT", 2)
    assert deal is not None and deal["TITLE"] == "Fleet contract"
    assert await telephony.deal_for("LEAD", 1) is None
    task_id = await telephony.task_add(15, "Call back 79001112233", "Missed at 10:20")
    assert task_id is not None
    [task] = sim.state()["tasks"]
    assert (task["id"], task["title"], task["responsibleId"]) == (str(task_id), "Call back 79001112233", "15")
    assert await telephony.notify(15, "Missed call from 79001112233") is not None
    assert len(sim.state()["notifications"]) == 1
    assert await telephony.external_line_add(LINE, "Main line", crm_auto_create=False) is not None
    lines = await telephony.external_line_get()
    assert [(line.number, line.crm_auto_create) for line in lines] == [(LINE, False)]


async def test_offline_events_through_an_oauth_app(sim: Bitrix24Simulator, tmp_path: Path) -> None:
    token_file = tmp_path / "tokens.json"
    token_file.write_text(json.dumps(sim.issue_tokens()))
    settings = Bitrix24Settings(
        oauth=OAuthSettings(sim.url, "local.sim", Secret("simsecret"), token_file, sim.oauth_url.rstrip("/"))
    )
    async with Bitrix24Client(settings) as client:
        telephony = Telephony(client)
        assert await telephony.event_bind("ONEXTERNALCALLSTART", "", offline=True) is True
        call_id = await sim.click_to_call(12, "79161234567", line=LINE)
        events = await telephony.event_offline_get()
        assert [(e["EVENT_NAME"], e["EVENT_DATA"]["CALL_ID"]) for e in events] == [("ONEXTERNALCALLSTART", call_id)]
        assert await telephony.event_offline_get() == []
