"""Directory, CRM, tasks/notifications, seed loading, /_sim/state and reset."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from bridge.sim.bitrix24 import Bitrix24Simulator, SeedError
from tests.eventually import eventually
from tests.sim.b24_support import Rest, rest_fixture, sim_fixture  # noqa: F401


async def test_user_get_fields_filters_and_paging(rest: Rest) -> None:
    users = await rest.result("user.get", {"FILTER": {"UF_PHONE_INNER": "1002"}})
    assert [(u["ID"], u["UF_PHONE_INNER"], u["PERSONAL_MOBILE"], u["UF_DEPARTMENT"], u["ACTIVE"]) for u in users] == [
        ("12", "1002", "+7 916 000-10-02", [2], True)
    ]
    assert "WORK_PHONE" in users[0]
    _, everyone = await rest.call("user.get")
    assert everyone["total"] == 8
    active = await rest.result("user.get", {"FILTER": {"ACTIVE": True}})
    assert "17" not in [u["ID"] for u in active] and len(active) == 7

    seed = {"users": [{"ID": n, "NAME": f"U{n}", "UF_PHONE_INNER": str(2000 + n)} for n in range(1, 61)]}
    async with Bitrix24Simulator(seed=seed) as big, aiohttp.ClientSession() as session:
        paged = Rest(session, big)
        _, first = await paged.call("user.get")
        _, second = await paged.call("user.get", {"start": first["next"]})
        assert (len(first["result"]), first["total"], first["next"]) == (50, 60, 50)
        assert [u["ID"] for u in second["result"]] == [str(n) for n in range(51, 61)] and "next" not in second


async def test_department_get_and_timeman_status(rest: Rest) -> None:
    departments = await rest.result("department.get")
    assert {d["NAME"]: d["UF_HEAD"] for d in departments} == {"Call centre": "1", "Sales": "15", "Support": "16"}
    assert [d["NAME"] for d in await rest.result("department.get", {"PARENT": 1})] == ["Sales", "Support"]
    assert [d["ID"] for d in await rest.result("department.get", {"UF_HEAD": 16})] == ["3"]
    assert (await rest.result("timeman.status", {"USER_ID": 14}))["STATUS"] == "CLOSED"
    assert (await rest.result("timeman.status"))["STATUS"] == "OPENED"
    status, body = await rest.call("timeman.status", {"USER_ID": 999})
    assert (status, body) == (400, {"error": "", "error_description": "User not found"})


async def test_crm_reads(rest: Rest) -> None:
    contact = await rest.result("crm.contact.get", {"id": 1})
    assert contact["ASSIGNED_BY_ID"] == "12" and contact["PHONE"][0]["VALUE"] == "+7 916 123-45-67"
    assert (await rest.result("crm.company.get", {"ID": 1}))["TITLE"] == "Romashka LLC"
    deal = await rest.result("crm.deal.get", {"id": 1})
    assert (deal["OPPORTUNITY"], deal["CONTACT_ID"], deal["ASSIGNED_BY_ID"]) == ("500000.00", "2", "13")
    assert [d["ID"] for d in await rest.result("crm.deal.list", {"filter": {"CONTACT_ID": 2}})] == ["1"]
    assert await rest.result("crm.deal.list", {"filter": {"CONTACT_ID": 1}}) == []
    status, body = await rest.call("crm.lead.get", {"id": 99})
    assert (status, body) == (400, {"error": "", "error_description": "Not found"})
    status, body = await rest.call("crm.contact.get")
    assert body["error_description"] == "ID is not defined or invalid."


async def test_tasks_notifications_and_absences(rest: Rest) -> None:
    added = await rest.result(
        "tasks.task.add", {"fields": {"TITLE": "Call back 79161234567", "RESPONSIBLE_ID": 12, "UF_CRM_TASK": ["C_1"]}}
    )
    assert added["task"]["responsibleId"] == "12" and added["task"]["ufCrmTask"] == ["C_1"]
    status, body = await rest.call("tasks.task.add", {"fields": {"RESPONSIBLE_ID": 12}})
    assert status == 400 and "TITLE" in body["error_description"]
    first = await rest.result("im.notify.personal.add", {"USER_ID": 15, "MESSAGE": "Missed call", "TAG": "m1"})
    second = await rest.result("im.notify.personal.add", {"USER_ID": 15, "MESSAGE": "Missed call x2", "TAG": "m1"})
    assert isinstance(first, int) and second != first
    status, body = await rest.call("im.notify.personal.add", {"USER_ID": 15})
    assert (status, body["error"]) == (400, "MESSAGE_EMPTY")
    state = rest.sim.state()
    assert [t["title"] for t in state["tasks"]] == ["Call back 79161234567"]
    assert [n["MESSAGE"] for n in state["notifications"]] == ["Missed call x2"]  # same TAG replaces
    busy = await rest.result(
        "calendar.accessibility.get", {"users": [14, 12], "from": "2026-03-01", "to": "2026-03-02"}
    )
    assert busy["12"] == [] and busy["14"][0]["ACCESSIBILITY"] == "absent"


async def test_state_shape_and_reset(rest: Rest) -> None:
    await rest.result("telephony.externalLine.add", {"NUMBER": "555"})
    await rest.as_app("event.bind", {"event": "ONVOXIMPLANTCALLEND", "handler": "http://127.0.0.1:9/h"})
    call_id = await rest.register(EXTERNAL_CALL_ID="st-1", CRM_CREATE=1, PHONE_NUMBER="79990009999")
    await rest.finish(call_id, DURATION=3)
    await eventually(lambda: rest.sim.state()["events"]["deliveries"])  # the call-end event (fails: no handler)
    status, state = await rest.get("/_sim/state")
    local = json.loads(json.dumps(rest.sim.state()))
    assert status == 200 and state["bucket"]["capacity"] == 50
    assert {k: v for k, v in state.items() if k != "bucket"} == {k: v for k, v in local.items() if k != "bucket"}
    expected = {"calls", "cards", "requests", "counters", "lines", "tasks", "notifications", "leads", "events"}
    assert expected <= set(state)
    call = state["calls"][0]
    for key in (
        "CALL_ID",
        "EXTERNAL_CALL_ID",
        "USER_ID",
        "PHONE_NUMBER",
        "TYPE",
        "LINE_NUMBER",
        "CALL_START_DATE",
        "SHOW",
        "status",
        "finish",
        "finish_attempts",
    ):
        assert key in call
    assert set(call["finish"]) == {"USER_ID", "DURATION", "STATUS_CODE", "CALL_STATUS", "FAILED_REASON"}
    assert [r["method"] for r in state["requests"]] == [
        "telephony.externalLine.add",
        "event.bind",
        "telephony.externalCall.register",
        "telephony.externalCall.finish",
    ]
    assert set(state["requests"][0]) == {"method", "http_status", "commands", "at"}
    assert state["counters"]["requests"] == 4 and state["counters"]["commands"] == 4
    assert len(state["leads"]) == 1 and state["cards"]["12"][0]["action"] == "show"

    status, _ = await rest.control("reset")
    assert status == 200
    after = rest.sim.state()
    assert (after["calls"], after["cards"], after["requests"], after["leads"]) == ([], {}, [], [])
    assert after["counters"]["requests"] == 0
    assert [line["NUMBER"] for line in after["lines"]] == ["555"]  # lines and bindings survive a reset
    assert len(after["events"]["bindings"]) == 1
    assert (await rest.result("crm.contact.get", {"id": 1}))["NAME"] == "Ivan"


def test_seed_from_file_and_broken_seeds(tmp_path: Path) -> None:
    good = tmp_path / "seed.json"
    good.write_text(json.dumps({"users": [{"ID": 5, "NAME": "Solo", "UF_PHONE_INNER": "500", "ADMIN": True}]}))
    sim = Bitrix24Simulator(seed=good)
    assert sim.core.directory.user_by_inner("500") is not None
    broken = tmp_path / "broken.json"
    broken.write_text("{ users: ")
    with pytest.raises(SeedError, match="not valid JSON"):
        Bitrix24Simulator(seed=broken)
    with pytest.raises(SeedError, match=r"user 'x'.*not an integer"):
        Bitrix24Simulator(seed={"users": [{"ID": "x"}]})
    with pytest.raises(SeedError, match="timeman status"):
        Bitrix24Simulator(seed={"users": [{"ID": 1, "TIMEMAN_STATUS": "AWAY"}]})
    with pytest.raises(SeedError, match="cannot read"):
        Bitrix24Simulator(seed=tmp_path / "missing.json")
    with pytest.raises(ValueError, match="USER_ID/CODE"):
        Bitrix24Simulator(webhook="no-slash")


async def test_leads_are_listed_50_a_page_with_total_updated_and_closed_ones_told_apart(rest: Rest) -> None:
    crm = rest.sim.core.crm
    for n in range(120):
        crm.add_lead(f"7495000{n:04d}", 12 if n % 2 else 13, "JUNK" if n % 10 == 0 else "NEW")
    crm.add_lead("74950009999", 12, "CONVERTED")
    mine = {"filter": {"ASSIGNED_BY_ID": 12, "STATUS_SEMANTIC_ID": "P"}, "select": ["ID"]}
    status, first = await rest.call("crm.lead.list", mine)
    assert status == 200 and (len(first["result"]), first["total"], first["next"]) == (50, 60, 50)
    status, last = await rest.call("crm.lead.list", {**mine, "start": 50})
    assert (len(last["result"]), last["total"]) == (10, 60) and "next" not in last
    closed = await rest.result("crm.lead.list", {"filter": {"!STATUS_SEMANTIC_ID": "P"}})
    assert sorted(lead["STATUS_SEMANTIC_ID"] for lead in closed) == ["F"] * 12 + ["S"]
    assert await rest.result("crm.lead.update", {"id": 1, "fields": {"ASSIGNED_BY_ID": 15}}) is True
    assert (await rest.result("crm.lead.get", {"id": 1}))["ASSIGNED_BY_ID"] == "15"
    status, body = await rest.call("crm.lead.update", {"id": 1, "fields": {"ASSIGNED_BY_ID": 17}})
    assert status == 400 and "17" in body["error_description"], "a dismissed user cannot be made responsible"
    status, body = await rest.call("crm.lead.update", {"id": 999, "fields": {"ASSIGNED_BY_ID": 15}})
    assert (status, body["error_description"]) == (400, "Not found")


async def test_notifications_to_a_dismissed_user_and_methods_outside_the_app_s_scopes_are_refused(rest: Rest) -> None:
    status, body = await rest.call("im.notify.personal.add", {"USER_ID": 17, "MESSAGE": "New lead"})
    assert (status, body["error"]) == (400, "USER_NOT_FOUND")
    assert {"telephony", "crm", "im"} <= set(await rest.result("scope"))
    rest.sim.set_scopes({"telephony", "user", "crm"})
    assert await rest.result("scope") == ["crm", "telephony", "user"]
    assert "im" in await rest.result("scope", {"full": "true"})
    status, body = await rest.call("im.notify.personal.add", {"USER_ID": 15, "MESSAGE": "New lead"})
    assert (status, body["error"]) == (401, "insufficient_scope")
    assert (await rest.result("crm.lead.list", {"select": ["ID"]})) == []
    rest.sim.set_scopes(None)
    assert isinstance(await rest.result("im.notify.personal.add", {"USER_ID": 15, "MESSAGE": "New lead"}), int)
