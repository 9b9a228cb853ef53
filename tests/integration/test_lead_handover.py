"""Handing a call's lead to a manager (``assign_lead``) against the Bitrix24 simulator: only the lead the call
created, only while it is open and still the finishing user's; the notification's failure does not undo it; a
portal that refuses the CRM parks it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from bridge.delivery.leads import created_lead
from bridge.domain.commands import CrmAssignLead, CrmFinish
from bridge.domain.leads import fields_text
from bridge.domain.scheme import LeadField
from bridge.journal import Journal
from bridge.journal.db import drive
from bridge.sim.bitrix24 import Bitrix24Simulator
from tests.integration.test_delivery import Stack, make_stack, register, sim

__all__ = ["make_stack", "sim"]  # the fixtures this module uses

MESSAGE = "A new lead from a call is yours."


async def missed_call(stack: Stack, leg: str) -> int:
    """A missed call, registered for 15 with CRM_CREATE (an unknown number: Bitrix24 makes a lead) and finished for
    15; returns the lead."""
    call = register(leg, user=15)
    stack.append(call)
    stack.append(CrmFinish(leg, 15, 0, "304"))
    await stack.drained()
    leads = [lead for lead in stack.sim.state()["leads"] if call.phone in str(lead["PHONE"])]
    assert len(leads) == 1 and leads[0]["ASSIGNED_BY_ID"] == "15", leads
    return int(leads[0]["ID"])


async def hand_over(stack: Stack, leg: str, user: int = 12) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Journal the hand-over; returns the assign op as the journal settled it, and the log lines."""
    with capture_logs() as logs:
        stack.append(CrmAssignLead(leg, user, MESSAGE, "rota", "round robin"))
        await stack.drained()
    (op,) = [o for o in stack.journal.operations(leg) if o.kind == "assign_lead"]
    return {"state": op.state, "note": op.note, "error": op.last_error}, logs


def lead(stack: Stack, lead_id: int) -> Any:
    return stack.sim.core.crm.get("LEAD", lead_id)


async def test_the_created_lead_goes_to_the_manager_who_is_notified(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    stack = await make_stack(sim)
    stack.start()
    lead_id = await missed_call(stack, "h1")
    op, logs = await hand_over(stack, "h1")
    assert op == {"state": "done", "note": "delivered", "error": ""}
    assert lead(stack, lead_id).assigned_by == 12
    assert [(n["USER_ID"], n["MESSAGE"]) for n in sim.state()["notifications"]] == [(12, MESSAGE)]
    assert any(line["event"] == "leads.assigned" and line["lead"] == lead_id for line in logs)


async def test_a_call_that_created_no_lead_reassigns_nothing(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    """Duplicate control attached the call to the caller's existing lead (the lookup missed it): not ours to move."""
    stack = await make_stack(sim)
    stack.start()
    call = register("h2", user=15)
    existing = sim.core.crm.add_lead(call.phone, 13)  # the caller's lead, which the bridge's lookup did not see
    stack.append(call)
    stack.append(CrmFinish("h2", 15, 0, "304"))
    await stack.drained()
    op, _logs = await hand_over(stack, "h2")
    assert op["state"] == "done" and op["note"].startswith("skipped: the call created no lead"), op
    assert existing.assigned_by == 13 and sim.state()["notifications"] == []


async def test_a_converted_merged_or_already_taken_lead_is_left_alone(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    stack = await make_stack(sim)
    stack.start()
    converted = await missed_call(stack, "h3")
    lead(stack, converted).status_id = "CONVERTED"
    op, _ = await hand_over(stack, "h3")
    assert op["note"] == f"skipped: lead {converted} is already converted"
    assert lead(stack, converted).assigned_by == 15

    merged = await missed_call(stack, "h4")
    sim.core.crm.merge_lead(merged)
    op, _ = await hand_over(stack, "h4")
    assert op["note"] == f"skipped: lead {merged} is gone (merged into another or deleted)"

    taken = await missed_call(stack, "h5")
    lead(stack, taken).assigned_by = 11  # a head of sales gave it to someone meanwhile
    op, _ = await hand_over(stack, "h5")
    assert op["note"] == f"skipped: lead {taken} was given to user 11 meanwhile"
    assert lead(stack, taken).assigned_by == 11
    assert sim.state()["notifications"] == []


async def test_a_refused_notification_leaves_the_lead_assigned_and_a_missing_crm_scope_parks_it(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    stack = await make_stack(sim)
    stack.start()
    lead_id = await missed_call(stack, "h6")
    sim.set_scopes({"telephony", "user", "crm", "task"})  # no im
    op, logs = await hand_over(stack, "h6")
    assert op == {"state": "done", "note": "assigned; the notification failed", "error": ""}
    assert lead(stack, lead_id).assigned_by == 12
    warning = next(line for line in logs if line["event"] == "leads.notify_failed")
    assert "insufficient_scope" in warning["error"]

    sim.set_scopes(None)
    other = await missed_call(stack, "h7")
    sim.set_scopes({"telephony", "user", "im", "task"})  # no crm
    op, logs = await hand_over(stack, "h7")
    assert op["state"] == "failed" and "insufficient_scope" in op["error"], op
    assert lead(stack, other).assigned_by == 15
    assert any(line["event"] == "crm.failed" and line["method"] == "crm.lead.update" for line in logs)


def test_the_lead_is_read_from_the_register_s_answer_in_either_of_its_forms(tmp_path: Path) -> None:
    seven, lead, contact, deal = (
        {"ENTITY_TYPE": kind, "ENTITY_ID": n} for kind, n in (("LEAD", 7), ("LEAD", "8"), ("CONTACT", 9), ("DEAL", 4))
    )
    answers: dict[str, dict[str, Any]] = {
        "a": {"CALL_ID": "x1", "CRM_CREATED_LEAD": 7, "CRM_CREATED_ENTITIES": [seven]},
        "b": {"CALL_ID": "x2", "CRM_CREATED_LEAD": None, "CRM_CREATED_ENTITIES": [lead]},
        "c": {"CALL_ID": "x3", "CRM_CREATED_LEAD": None, "CRM_CREATED_ENTITIES": [contact, deal]},  # simple CRM
        "d": {"CALL_ID": "x4", "CRM_CREATED_LEAD": None, "CRM_CREATED_ENTITIES": [], "CRM_ENTITY_TYPE": "LEAD",
              "CRM_ENTITY_ID": 3},  # an existing lead
    }  # fmt: skip
    with Journal.open(tmp_path / "j.db") as journal:
        for leg, answer in answers.items():
            op = journal.append(register(leg, user=15))
            journal.mark_done(op, answer, call_id=answer["CALL_ID"])
            journal.append(CrmFinish(leg, 16, 0, "304"))
        journal.append(register("e", user=15))  # its answer never came
        found = {leg: drive(created_lead(journal.aio, leg)) for leg in "abcde"}
    assert found == {"a": (7, 16), "b": (8, 16), "c": (None, 16), "d": (None, 16), "e": (None, 15)}


def fielded(leg: str, fallback: int) -> CrmAssignLead:
    """A hand-over whose first rule needs UF_CRM_REGION = 45 (North, an enumeration item) -> 13, carrying the
    missed-call task (for 15, the line's owner, when nobody takes the lead)."""
    return CrmAssignLead(
        leg, fallback, MESSAGE, "rota", "if ...; otherwise the managers, round robin: 12 is next",
        field_rules=(fields_text((LeadField("UF_CRM_REGION", ("45",)),)),), field_users=(13,),
        field_whys=("rule north, round robin: 1003 is next",),
        task_title="Skipped incoming call from 79161234567", task_description="A call was not answered.",
        task_user_id=15,
    )  # fmt: skip


async def hand_over_cmd(stack: Stack, cmd: CrmAssignLead) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with capture_logs() as logs:
        stack.append(cmd)
        await stack.drained()
    (op,) = [o for o in stack.journal.operations(cmd.crm_leg) if o.kind == "assign_lead"]
    return {"state": op.state, "note": op.note, "error": op.last_error}, logs


def tasks_for(stack: Stack) -> list[tuple[str, str]]:
    return [(str(t["responsibleId"]), t["title"]) for t in stack.sim.state()["tasks"]]


async def test_a_field_rule_the_lead_matches_picks_its_manager_who_gets_the_lead_the_notice_and_the_one_task(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    stack = await make_stack(sim)
    stack.start()
    north = await missed_call(stack, "f1")
    sim.core.crm.fill_lead(north, UF_CRM_REGION="45")  # as crm.lead.get returns an enumeration: the item's ID
    op, logs = await hand_over_cmd(stack, fielded("f1", 12))
    assert op == {"state": "done", "note": "delivered", "error": ""}
    assert lead(stack, north).assigned_by == 13
    assert [n["USER_ID"] for n in sim.state()["notifications"]] == [13]
    assert tasks_for(stack) == [("13", "Skipped incoming call from 79161234567")]
    assigned = next(line for line in logs if line["event"] == "leads.assigned")
    assert assigned["why"] == "the lead has UF_CRM_REGION = 45: rule north, round robin: 1003 is next"

    south = await missed_call(stack, "f2")
    sim.core.crm.fill_lead(south, UF_CRM_REGION="44")
    op, logs = await hand_over_cmd(stack, fielded("f2", 12))
    assert lead(stack, south).assigned_by == 12, "no match: the pick made at the call's end"
    assert tasks_for(stack)[1:] == [("12", "Skipped incoming call from 79161234567")]
    assigned = next(line for line in logs if line["event"] == "leads.assigned")
    assert assigned["why"] == "the lead matches no field rule: the managers, round robin: 12 is next"


async def test_without_a_hand_over_the_travelling_task_still_goes_to_the_missed_call_owner(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    stack = await make_stack(sim)
    stack.start()
    unmatched = await missed_call(stack, "f3")
    op, _ = await hand_over_cmd(stack, fielded("f3", 0))  # nobody else would take it, the lead has no region
    assert op["state"] == "done" and op["note"].startswith("skipped: the lead matches no field rule"), op
    assert op["note"].endswith("; the task created") and lead(stack, unmatched).assigned_by == 15
    gone = await missed_call(stack, "f4")
    sim.core.crm.merge_lead(gone)
    op, _ = await hand_over_cmd(stack, fielded("f4", 12))
    assert op["note"] == f"skipped: lead {gone} is gone (merged into another or deleted); the task created"
    assert [who for who, _title in tasks_for(stack)] == ["15", "15"]
    assert sim.state()["notifications"] == []

    await missed_call(stack, "f5")
    op, _ = await hand_over_cmd(stack, replace(fielded("f5", 12), field_rules=("{damaged",)))
    assert op["state"] == "failed" and "not a lead field rule" in op["error"], op
