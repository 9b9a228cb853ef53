"""Handing a lead a call created to the manager the distribution chose (``assign_lead`` operations).

It goes after the leg's ``finish`` (which makes the finishing user responsible for what the call created) and
only touches what the call made and nobody else has taken since:

* the lead is ``CRM_CREATED_LEAD`` (or the LEAD of ``CRM_CREATED_ENTITIES``) of the leg's ``register`` answer,
  stored in the journal. No lead there (the caller was found after all, duplicate control attached the call to an
  existing lead, lead creation failed, a portal in simple CRM mode made a contact and a deal, or the register's
  answer was never seen): nothing is reassigned;
* ``crm.lead.get`` first: a lead that is gone (merged into another, deleted), converted or junk
  (``STATUS_SEMANTIC_ID`` S / F), or no longer the finishing user's (someone reassigned it) is left alone;
* the manager: the first rule on a field of the lead (``field_rules``) the lead matches, else the one chosen at
  the call's end (``user_id``; 0: nobody, the lead stays);
* then one ``batch``: ``crm.lead.update`` ASSIGNED_BY_ID and ``im.notify.personal.add`` to the manager (and the
  missed-call task that travelled with the hand-over, ``tasks.task.add`` for them). A failed notification (a
  dismissed user, no ``im`` scope) is logged; the lead stays assigned. No hand-over: the task still goes, to the
  call's missed-call owner.

Both requests go through the client's bucket like every other operation.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import structlog

from bridge.crm.builders import (
    NOTIFY,
    TASK_ADD,
    lead_get_request,
    lead_update_request,
    notify_request,
    task_request,
)
from bridge.crm.client import Bitrix24Client
from bridge.crm.envelope import as_dict, as_int
from bridge.crm.errors import CrmError, PermanentCrmError
from bridge.delivery.settle import Settler
from bridge.domain.commands import CrmAssignLead
from bridge.domain.leads import describe_fields, fields_from_text, lead_matches
from bridge.journal import AsyncJournal, PendingOp
from bridge.logs import call_keys

log = structlog.get_logger(__name__)


async def created_lead(journal: AsyncJournal, crm_leg: str) -> tuple[int | None, int | None]:
    """The lead the leg's register created (None: none, or its answer is not known) and the user it finished for."""
    lead = None
    for op in await journal.operations(crm_leg):
        if op.kind == "register" and op.state == "done":
            answer = as_dict(op.result)
            created = [as_dict(e) for e in answer.get("CRM_CREATED_ENTITIES") or [] if isinstance(e, dict)]
            listed = [as_int(e.get("ENTITY_ID")) for e in created if e.get("ENTITY_TYPE") == "LEAD"]
            lead = as_int(answer.get("CRM_CREATED_LEAD")) or next((i for i in listed if i), None)
    calls = await journal.calls(crm_leg=crm_leg)
    return (lead if lead and lead > 0 else None), (calls[0].user_id if calls else None)


async def assign_lead(journal: AsyncJournal, client: Bitrix24Client, settler: Settler, op: PendingOp) -> None:
    cmd = op.command
    assert isinstance(cmd, CrmAssignLead)
    lead_id, finisher = await created_lead(journal, cmd.crm_leg)
    if lead_id is None:
        why = "skipped: the call created no lead (the caller was known, or it joined an existing lead)"
        await _task_alone(client, settler, op, cmd, why)
        return
    try:
        lead = as_dict(await client.call(*lead_get_request(lead_id)))
    except PermanentCrmError as exc:
        if "not found" in exc.description.lower():
            await _task_alone(
                client, settler, op, cmd, f"skipped: lead {lead_id} is gone (merged into another or deleted)"
            )
        else:
            await settler.error(op, exc)
        return
    except CrmError as exc:
        await settler.error(op, exc)
        return
    semantic = str(lead.get("STATUS_SEMANTIC_ID") or "P")
    if semantic != "P":
        what = "converted" if semantic == "S" else "junk"
        await _task_alone(client, settler, op, cmd, f"skipped: lead {lead_id} is already {what}")
        return
    try:
        user_id, why = chosen(cmd, lead)
    except ValueError as exc:
        await settler.fail(op, str(exc))
        return
    holder = as_int(lead.get("ASSIGNED_BY_ID"))
    if finisher and holder not in (finisher, user_id):
        await _task_alone(client, settler, op, cmd, f"skipped: lead {lead_id} was given to user {holder} meanwhile")
        return
    if not user_id:
        await _task_alone(client, settler, op, cmd, f"skipped: {why}")
        return
    await _hand_over(client, settler, op, replace(cmd, user_id=user_id, why=why), lead_id)


def chosen(cmd: CrmAssignLead, lead: dict[str, Any]) -> tuple[int, str]:
    """The manager for ``lead`` (0: nobody, it stays) and why: the first field rule it matches, else the pick made at
    the call's end. ``ValueError`` for a field rule the journal holds damaged."""
    for text, user_id, why in zip(cmd.field_rules, cmd.field_users, cmd.field_whys, strict=True):
        fields = fields_from_text(text)
        if lead_matches(fields, lead):
            return user_id, f"the lead has {describe_fields(fields)}: {why}"
    if cmd.field_rules:
        return cmd.user_id, f"the lead matches no field rule: {cmd.why.rpartition('; otherwise ')[2]}"
    return cmd.user_id, cmd.why


async def _task_alone(client: Bitrix24Client, settler: Settler, op: PendingOp, cmd: CrmAssignLead, note: str) -> None:
    """No hand-over: the missed-call task that travelled with it still goes, to the call's missed-call owner."""
    if not cmd.task_title:
        await settler.skip(op, note)
        return
    try:
        task = await client.call(*task_request(cmd.task_user_id, cmd.task_title, cmd.task_description))
    except CrmError as exc:
        await settler.error(op, exc)
        return
    await settler.done(op, {"TASK": task, "RESPONSIBLE_ID": cmd.task_user_id}, note=f"{note}; the task created")


async def _hand_over(client: Bitrix24Client, settler: Settler, op: PendingOp, cmd: CrmAssignLead, lead_id: int) -> None:
    requests = {"update": lead_update_request(lead_id, cmd.user_id), "notify": notify_request(cmd.user_id, cmd.message)}
    if cmd.task_title:  # after the update in the same batch: the task is the new manager's
        requests["task"] = task_request(cmd.user_id, cmd.task_title, cmd.task_description)
    try:
        batch = await client.batch(requests)
    except CrmError as exc:
        await settler.error(op, exc)
        return
    if "update" not in batch.results:
        error = batch.errors.get("update") or PermanentCrmError("crm.lead.update", "", "no answer in the batch")
        await settler.error(op, error)
        return
    result: dict[str, Any] = {"LEAD_ID": lead_id, "ASSIGNED_BY_ID": cmd.user_id}
    note = "delivered"
    if "notify" not in batch.results:
        problem = batch.errors.get("notify")
        why = str(problem) if problem else "not carried out"
        log.warning("leads.notify_failed", crm_leg=op.crm_leg, method=NOTIFY, user_id=cmd.user_id, lead=lead_id,
                    error=why, **call_keys(op.pbx_call, op.linkedid, op.line))  # fmt: skip
        note = "assigned; the notification failed"
    if cmd.task_title:
        if "task" not in batch.results:  # the lead is assigned: the next try reads it as this manager's, adds the task
            await settler.error(
                op, batch.errors.get("task") or PermanentCrmError(TASK_ADD, "", "no answer in the batch")
            )
            return
        result["TASK"] = batch.results["task"]
    log.info("leads.assigned", crm_leg=op.crm_leg, lead=lead_id, user_id=cmd.user_id, distribution=cmd.distribution,
             why=cmd.why, **call_keys(op.pbx_call, op.linkedid, op.line))  # fmt: skip
    await settler.done(op, result, note=note)
