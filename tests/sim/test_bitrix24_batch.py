"""batch: references, halt, limits, encodings; and voximplant.statistic.get filters and paging."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

import aiohttp

from bridge.sim.bitrix24 import Bitrix24Simulator
from tests.sim.b24_support import Rest, rest_fixture, sim_fixture  # noqa: F401


def _register(ext: str, user: int = 12, phone: str = "79161234567", start: str | None = None) -> str:
    fields = {"USER_ID": user, "PHONE_NUMBER": phone, "TYPE": 2, "EXTERNAL_CALL_ID": ext}
    if start:
        fields["CALL_START_DATE"] = start
    return "telephony.externalCall.register?" + urlencode(fields)


async def test_register_and_finish_in_one_batch_with_reference(rest: Rest) -> None:
    batch = await rest.result(
        "batch",
        {
            "halt": 0,
            "cmd": {
                "reg": _register("b-1"),
                "fin": "telephony.externalCall.finish?CALL_ID=$result[reg][CALL_ID]&USER_ID=12&DURATION=7",
                "who": "crm.contact.get?id=$result[reg][CRM_ENTITY_ID]",
            },
        },
    )
    call_id = batch["result"]["reg"]["CALL_ID"]
    assert batch["result"]["fin"]["CALL_ID"] == call_id and batch["result"]["fin"]["CALL_FAILED_CODE"] == "200"
    assert batch["result"]["who"]["NAME"] == "Ivan"
    assert batch["result_error"] == [] and batch["result_total"] == [] and batch["result_next"] == []
    assert set(batch["result_time"]) == {"reg", "fin", "who"}
    assert rest.sim.state()["counters"]["commands"] == 3


async def test_nested_reference_into_a_list_result(rest: Rest) -> None:
    batch = await rest.result(
        "batch",
        {
            "cmd": {
                "users": "user.get?FILTER[UF_PHONE_INNER]=1005",
                "dept": "department.get?UF_HEAD=$result[users][0][ID]",
            }
        },
    )
    assert batch["result_total"] == {"users": 1, "dept": 1}
    assert [d["NAME"] for d in batch["result"]["dept"]] == ["Sales"]


async def test_errors_go_to_result_error_and_halt_stops(rest: Rest) -> None:
    cmd = {"a": _register("h-1"), "bad": "telephony.externalCall.finish?CALL_ID=nope&USER_ID=12", "c": _register("h-2")}
    status, body = await rest.call("batch", {"halt": 0, "cmd": cmd})
    assert status == 200
    inner = body["result"]
    assert set(inner["result"]) == {"a", "c"}
    assert inner["result_error"]["bad"]["error_description"].startswith("Call is not found")
    cmd = {"a": _register("h-3"), "bad": "telephony.externalCall.finish?CALL_ID=nope&USER_ID=12", "c": _register("h-4")}
    status, body = await rest.call("batch", {"halt": 1, "cmd": cmd})
    assert status == 200 and set(body["result"]["result"]) == {"a"} and set(body["result"]["result_error"]) == {"bad"}
    assert {c["EXTERNAL_CALL_ID"] for c in rest.sim.state()["calls"]} == {"h-1", "h-2", "h-3"}


async def test_more_than_50_commands_and_nested_batch_are_refused(rest: Rest) -> None:
    status, body = await rest.call("batch", {"cmd": {f"k{i}": "user.current" for i in range(51)}})
    assert (status, body["error"]) == (400, "ERROR_BATCH_LENGTH_EXCEEDED")
    assert rest.sim.state()["counters"]["commands"] == 0
    batch = await rest.result("batch", {"cmd": {"inner": "batch?cmd[x]=user.current", "ok": "user.current"}})
    assert batch["result_error"]["inner"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"
    assert batch["result"]["ok"]["ID"] == "1"


async def test_form_encoded_cmd_list_and_unknown_method(rest: Rest) -> None:
    form = {"cmd[0]": "user.current", "cmd[1]": "no.such.method", "cmd[2]": "user.get?ID=13"}
    batch = await rest.result("batch", form, form=True)
    assert batch["result"]["0"]["ID"] == "1" and batch["result"]["2"][0]["ID"] == "13"
    assert batch["result_error"]["1"]["error"] == "ERROR_METHOD_NOT_FOUND"
    batch = await rest.result("batch", {"cmd": ["user.current", "user.get?ID=11"]})
    assert isinstance(batch["result"], list) and batch["result"][1][0]["NAME"] == "Anna"


async def test_statistic_filters_by_external_id_dates_and_users(rest: Rest) -> None:
    batch = await rest.result(
        "batch",
        {
            "cmd": {
                "r1": _register("s-1", start="2026-01-10T10:00:00+03:00"),
                "f1": "telephony.externalCall.finish?CALL_ID=$result[r1][CALL_ID]&USER_ID=12&DURATION=30",
                "r2": _register("s-2", user=13, phone="79035550001", start="2026-01-11T10:00:00+03:00"),
                "f2": "telephony.externalCall.finish?CALL_ID=$result[r2][CALL_ID]&USER_ID=13",
                "r3": _register("s-3", start="2026-01-12T10:00:00+03:00"),
            }
        },
    )
    assert batch["result_error"] == []
    stat = "voximplant.statistic.get"

    async def ids(criteria: dict[str, object]) -> list[str]:
        return [row["EXTERNAL_CALL_ID"] for row in await rest.result(stat, {"FILTER": criteria})]

    assert await ids({"EXTERNAL_CALL_ID": "s-2"}) == ["s-2"]
    assert await ids({"=EXTERNAL_CALL_ID": "s-3"}) == []  # not finished: not in statistics
    assert await ids({">=CALL_START_DATE": "2026-01-11T00:00:00+03:00"}) == ["s-2"]
    assert await ids({"<CALL_START_DATE": "2026-01-11T00:00:00+03:00"}) == ["s-1"]
    assert await ids({"!PORTAL_USER_ID": 12}) == ["s-2"]
    assert await ids({">CALL_DURATION": 0}) == ["s-1"]
    assert await ids({"<=CALL_DURATION": 0, "PHONE_NUMBER": "79035550001"}) == ["s-2"]
    assert await ids({"CALL_ID": batch["result"]["r1"]["CALL_ID"]}) == ["s-1"]
    row = (await rest.result(stat, {"FILTER": {"EXTERNAL_CALL_ID": "s-1"}}))[0]
    assert row["CALL_DURATION"] == "30" and row["PORTAL_USER_ID"] == "12" and row["COST"] == "0.0000"
    assert row["CALL_FAILED_CODE"] == "200" and row["CALL_TYPE"] == "2"
    assert datetime.fromisoformat(row["CALL_START_DATE"]) == datetime.fromisoformat("2026-01-10T10:00:00+03:00")
    form = {"FILTER[>=CALL_START_DATE]": "2026-01-01", "SORT": "ID", "ORDER": "DESC"}
    assert [r["EXTERNAL_CALL_ID"] for r in await rest.result(stat, form, form=True)] == ["s-2", "s-1"]


async def test_statistic_pages_by_50() -> None:
    async with Bitrix24Simulator(burst=500) as sim, aiohttp.ClientSession() as session:
        rest = Rest(session, sim)
        for chunk in range(3):
            cmd = {}
            for n in range(chunk * 20, chunk * 20 + 20):
                cmd[f"r{n}"] = _register(f"p-{n}")
                cmd[f"f{n}"] = f"telephony.externalCall.finish?CALL_ID=$result[r{n}][CALL_ID]&USER_ID=12"
            assert (await rest.result("batch", {"cmd": cmd}))["result_error"] == []
        status, first = await rest.call("voximplant.statistic.get")
        assert status == 200
        assert (len(first["result"]), first["total"], first["next"]) == (50, 60, 50)
        _, second = await rest.call("voximplant.statistic.get", {"start": 50})
        assert (len(second["result"]), second["total"], "next" in second) == (10, 60, False)
        seen = [r["EXTERNAL_CALL_ID"] for r in first["result"] + second["result"]]
        assert sorted(seen) == sorted(f"p-{n}" for n in range(60))


async def test_statistic_shows_only_what_the_callers_permission_covers(rest: Rest) -> None:
    """Users 11 and 12 are in Sales (head 15), 16 heads Support: each finishes one call."""
    cmd = {}
    for user in (11, 12, 15, 16):
        cmd[f"r{user}"] = _register(f"v-{user}", user=user)
        cmd[f"f{user}"] = f"telephony.externalCall.finish?CALL_ID=$result[r{user}][CALL_ID]&USER_ID={user}"
    assert (await rest.result("batch", {"cmd": cmd}))["result_error"] == []
    stat = "voximplant.statistic.get"

    async def seen() -> list[str]:
        return sorted(row["EXTERNAL_CALL_ID"] for row in await rest.result(stat))

    assert await seen() == ["v-11", "v-12", "v-15", "v-16"]  # the webhook's user 1 is an admin
    rest.sim.set_rights(1, statistics="none")
    assert await seen() == ["v-11", "v-12", "v-15", "v-16"]  # admins see every call whatever their role
    rest.sim.set_rights(1, admin=False)
    status, body = await rest.call(stat)
    assert (status, body["error"], body["error_description"]) == (403, "ACCESS_DENIED", "Access denied!")
    batch = await rest.result("batch", {"cmd": {"st": stat, "me": "profile"}})
    assert batch["result_error"]["st"]["error"] == "ACCESS_DENIED" and batch["result"]["me"]["ADMIN"] is False
    status, _ = await rest.control("rights", {"user_id": 1, "statistics": "own"})
    assert status == 200 and await seen() == []  # user 1 finished no call
    assert (await rest.control("rights", {"user_id": 1, "statistics": "all"}))[0] == 200
    assert await seen() == ["v-11", "v-12", "v-15", "v-16"]
    async with Bitrix24Simulator(webhook="15/headofsales") as sim:
        head = Rest(rest.session, sim)
        assert await head.result(stat) == []  # a fresh portal's default for employees: their own calls
        sim.set_rights(15, statistics="department")
        cmd = {
            "r": _register("d-16", user=16),
            "f": "telephony.externalCall.finish?CALL_ID=$result[r][CALL_ID]&USER_ID=16",
        }
        cmd |= {
            "r2": _register("d-11", user=11),
            "f2": "telephony.externalCall.finish?CALL_ID=$result[r2][CALL_ID]&USER_ID=11",
        }
        assert (await head.result("batch", {"cmd": cmd}))["result_error"] == []
        assert [row["EXTERNAL_CALL_ID"] for row in await head.result(stat)] == ["d-11"]  # Support is not theirs
        assert await head.result(stat, {"FILTER": {"PORTAL_USER_ID": 16}}) == []  # hidden, as if absent
    assert (await rest.control("rights", {"user_id": 1, "statistics": "everything"}))[0] == 400


async def test_a_dismissed_user_cannot_finish_a_call(rest: Rest) -> None:
    call_id = await rest.register()
    status, body = await rest.finish(call_id, USER_ID=17)  # Fyodor, ACTIVE false
    assert (status, body["error"], body["error_description"]) == (
        400,
        "ERROR_CORE",
        "User is not found or is not active",
    )
    status, body = await rest.finish(call_id)
    assert status == 200 and body["result"]["PORTAL_USER_ID"] == 12
