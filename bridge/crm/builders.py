"""Pure request builders: domain ``Crm*`` commands and typed arguments -> ``(method, params)``.

The delivery process batches these; :class:`bridge.crm.telephony.Telephony` sends them one by one. ``call_id``
is either a real CALL_ID or a batch reference ``$result[<key>][CALL_ID]`` to a ``register`` in the same batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bridge.domain.commands import (
    CallType,
    CrmAdopt,
    CrmAssignLead,
    CrmAttachRecord,
    CrmCommand,
    CrmFinish,
    CrmHide,
    CrmMissedTask,
    CrmNotify,
    CrmRegister,
    CrmShow,
)

REGISTER = "telephony.externalCall.register"
FINISH = "telephony.externalCall.finish"
SHOW = "telephony.externalCall.show"
HIDE = "telephony.externalCall.hide"
ATTACH_RECORD = "telephony.externalCall.attachRecord"
TASK_ADD = "tasks.task.add"
NOTIFY = "im.notify.personal.add"
LEAD_GET = "crm.lead.get"
LEAD_UPDATE = "crm.lead.update"
OPEN_LIST = {"leads": "crm.lead.list", "deals": "crm.deal.list"}
OPEN_FILTER = {"leads": {"STATUS_SEMANTIC_ID": "P"}, "deals": {"CLOSED": "N"}}
"""What counts as open: a lead in an in-progress status (not converted, not junk), a deal not closed."""

Request = tuple[str, dict[str, Any]]


def iso_with_offset(moment: datetime) -> str:
    """ISO-8601 with an explicit offset, as ``CALL_START_DATE`` wants; a naive time is taken as local time."""
    return (
        moment.astimezone().isoformat(timespec="seconds")
        if moment.tzinfo is None
        else moment.isoformat(timespec="seconds")
    )


def default_status(duration: int) -> str:
    """Bitrix24's own default, sent explicitly: 200 when there was talk, else 304 (missed)."""
    return "200" if duration > 0 else "304"


def register_request(
    *,
    user_id: int,
    phone: str,
    call_type: CallType | int,
    external_call_id: str,
    started_at: datetime | None = None,
    line: str = "",
    show: bool = True,
    crm_create: bool = False,
    crm_source: str = "",
    crm_entity_type: str = "",
    crm_entity_id: int = 0,
) -> Request:
    params: dict[str, Any] = {
        "USER_ID": int(user_id),
        "PHONE_NUMBER": phone,
        "TYPE": int(call_type),
        "EXTERNAL_CALL_ID": external_call_id,
        "SHOW": 1 if show else 0,
        "CRM_CREATE": 1 if crm_create else 0,
    }
    if started_at is not None:
        params["CALL_START_DATE"] = iso_with_offset(started_at)
    if line:
        params["LINE_NUMBER"] = line
    if crm_source:
        params["CRM_SOURCE"] = crm_source
    if crm_entity_type and crm_entity_id:
        params["CRM_ENTITY_TYPE"] = crm_entity_type
        params["CRM_ENTITY_ID"] = int(crm_entity_id)
    return REGISTER, params


def card_request(method: str, call_id: str, user_ids: Sequence[int]) -> Request:
    """``show`` or ``hide`` for these users (always as a list, which both methods accept)."""
    return method, {"CALL_ID": call_id, "USER_ID": list(map(int, user_ids))}


def finish_request(
    call_id: str,
    user_id: int,
    duration: int,
    status_code: str = "",
    failed_reason: str = "",
    *,
    add_to_chat: bool = True,
) -> Request:
    """``ADD_TO_CHAT`` is sent either way (Bitrix24's default is 1: CORE-VOX ``finishExternalCall``)."""
    params: dict[str, Any] = {
        "CALL_ID": call_id,
        "USER_ID": int(user_id),
        "DURATION": max(0, int(duration)),
        "STATUS_CODE": status_code or default_status(int(duration)),
        "ADD_TO_CHAT": 1 if add_to_chat else 0,
    }
    if failed_reason:
        params["FAILED_REASON"] = failed_reason
    return FINISH, params


def task_request(responsible_id: int, title: str, description: str) -> Request:
    return TASK_ADD, {"fields": {"TITLE": title, "RESPONSIBLE_ID": int(responsible_id), "DESCRIPTION": description}}


def voicemail_line(record_url: str) -> str:
    """Bitrix24's own words for a voicemail (``VI_CALL_VOICEMAIL``, "Caller left #LINK_START#a voice
    message#LINK_END#.", voximplant ``lang/en/classes/general/vi_history.php``), linked with the ``[URL]`` BB code
    tasks render; without a link (the portal gave none) it says where the recording is."""
    if not record_url:
        return "Caller left a voice message (see the call in Bitrix24's call statistics)."
    return f"Caller left [URL={record_url}]a voice message[/URL]."


def voicemail_task_request(cmd: CrmMissedTask, record_url: str) -> Request:
    """The task of a voicemail ``cmd``, once its recording is attached: its description ends with the link."""
    return task_request(cmd.user_id, cmd.title, f"{cmd.description}\n{voicemail_line(record_url)}")


def notify_request(user_id: int, message: str) -> Request:
    return NOTIFY, {"USER_ID": int(user_id), "MESSAGE": message}


def open_count_request(kind: str, user_id: int) -> Request:
    """One page of ``kind`` (leads or deals) open and assigned to ``user_id``: its ``total`` is the count."""
    params = {"filter": {**OPEN_FILTER[kind], "ASSIGNED_BY_ID": int(user_id)}, "select": ["ID"], "start": 0}
    return OPEN_LIST[kind], params


def lead_get_request(lead_id: int) -> Request:
    return LEAD_GET, {"id": int(lead_id)}


def lead_update_request(lead_id: int, user_id: int) -> Request:
    return LEAD_UPDATE, {"id": int(lead_id), "fields": {"ASSIGNED_BY_ID": int(user_id)}}


def request_for(cmd: CrmCommand, call_id: str = "") -> Request:
    """The REST request that carries ``cmd``; ``call_id`` names the call for show/hide/finish.

    ``CrmAdopt`` needs no request and ``CrmAttachRecord`` needs the recording's bytes
    (:meth:`bridge.crm.telephony.Telephony.attach_record`); both raise ``ValueError``.
    """
    match cmd:
        case CrmRegister():
            return register_request(
                user_id=cmd.user_id,
                phone=cmd.phone,
                call_type=cmd.call_type,
                external_call_id=cmd.crm_leg,
                started_at=cmd.started_at,
                line=cmd.line,
                show=cmd.show,
                crm_create=cmd.crm_create,
                crm_source=cmd.crm_source,
                crm_entity_type=cmd.crm_entity_type,
                crm_entity_id=cmd.crm_entity_id,
            )
        case CrmShow():
            return card_request(SHOW, call_id or _no_call_id(cmd), cmd.user_ids)
        case CrmHide():
            return card_request(HIDE, call_id or _no_call_id(cmd), cmd.user_ids)
        case CrmFinish():
            return finish_request(
                call_id or _no_call_id(cmd),
                cmd.user_id,
                cmd.duration,
                cmd.status_code,
                cmd.failed_reason,
                add_to_chat=cmd.add_to_chat,
            )
        case CrmMissedTask():
            return task_request(cmd.user_id, cmd.title, cmd.description)
        case CrmNotify():
            return notify_request(cmd.user_id, cmd.message)
        case CrmAdopt():
            raise ValueError("CrmAdopt maps a leg to a CALL_ID Bitrix24 already has; nothing to send")
        case CrmAttachRecord():
            raise ValueError("CrmAttachRecord needs the recording's content: use Telephony.attach_record")
        case CrmAssignLead():
            raise ValueError("CrmAssignLead needs the lead register created: bridge.delivery.leads sends it")
    raise ValueError(f"not a CRM command: {type(cmd).__name__}")


def _no_call_id(cmd: CrmCommand) -> str:
    raise ValueError(f"{type(cmd).__name__} needs the CALL_ID (or a $result[...] reference)")
