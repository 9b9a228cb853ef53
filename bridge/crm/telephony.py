"""Typed Bitrix24 methods over :class:`bridge.crm.client.Bitrix24Client` (telephony, directory, CRM, tasks).

The pure builders the delivery process batches live in :mod:`bridge.crm.builders` and are re-exported here.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import structlog

from bridge.crm.builders import (
    ATTACH_RECORD,
    FINISH,
    HIDE,
    SHOW,
    card_request,
    finish_request,
    notify_request,
    register_request,
    request_for,
    task_request,
)
from bridge.crm.client import Bitrix24Client
from bridge.crm.envelope import as_int, rows_of
from bridge.crm.errors import PermanentCrmError
from bridge.domain.commands import CallType

__all__ = ["CrmEntity", "ExternalLine", "Registered", "Telephony", "TranscriptLine", "request_for"]

log = structlog.get_logger(__name__)

RECORD_EXTENSIONS = (".wav", ".mp3")
ENTITY_METHODS = {"LEAD": "crm.lead.get", "CONTACT": "crm.contact.get", "COMPANY": "crm.company.get",
                  "DEAL": "crm.deal.get"}  # fmt: skip


@dataclass(frozen=True)
class Registered:
    """What ``register`` returned."""

    call_id: str
    crm_entity_type: str = ""
    crm_entity_id: int | None = None
    crm_created_lead: int | None = None
    lead_creation_error: str = ""


@dataclass(frozen=True)
class ExternalLine:
    number: str
    name: str
    crm_auto_create: bool


@dataclass(frozen=True)
class CrmEntity:
    """One row of ``searchCrmEntities``."""

    entity_type: str
    entity_id: int
    assigned_by_id: int | None
    name: str = ""
    timeman_status: str = ""
    """Time tracking status of the responsible person (``OPENED``, ``CLOSED``, ``UNAVAILABLE``, ...)."""


@dataclass(frozen=True)
class TranscriptLine:
    side: str
    """``User`` or ``Client``."""
    start: int
    stop: int
    message: str


class Telephony:
    """The Bitrix24 methods the bridge uses, with typed arguments and results."""

    def __init__(self, client: Bitrix24Client) -> None:
        self.client = client

    # --- external lines and calls ----------------------------------------------------------------

    async def external_line_add(self, number: str, name: str = "", crm_auto_create: bool = True) -> int | None:
        result = await self.client.call(
            "telephony.externalLine.add",
            {"NUMBER": number, "NAME": name or number, "CRM_AUTO_CREATE": "Y" if crm_auto_create else "N"},
        )
        return as_int(result.get("ID")) if isinstance(result, dict) else None

    async def external_line_get(self) -> list[ExternalLine]:
        result = await self.client.call("telephony.externalLine.get")
        rows = result if isinstance(result, list) else []
        return [
            ExternalLine(str(r.get("NUMBER", "")), str(r.get("NAME") or ""), r.get("CRM_AUTO_CREATE") != "N")
            for r in rows
            if isinstance(r, dict)
        ]

    async def register(
        self,
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
    ) -> Registered:
        method, params = register_request(
            user_id=user_id, phone=phone, call_type=call_type, external_call_id=external_call_id,
            started_at=started_at, line=line, show=show, crm_create=crm_create, crm_source=crm_source,
            crm_entity_type=crm_entity_type, crm_entity_id=crm_entity_id,
        )  # fmt: skip
        return registered_from(method, await self.client.call(method, params))

    async def show(self, call_id: str, user_ids: Sequence[int]) -> bool:
        """True when the card was pushed; False when Bitrix24 no longer has the call active."""
        return bool(await self.client.call(*card_request(SHOW, call_id, user_ids)))

    async def hide(self, call_id: str, user_ids: Sequence[int]) -> bool:
        return bool(await self.client.call(*card_request(HIDE, call_id, user_ids)))

    async def finish(
        self, call_id: str, user_id: int, duration: int, status_code: str = "", failed_reason: str = ""
    ) -> dict[str, Any]:
        """The statistics record Bitrix24 wrote (raises ``CallNotFoundError`` on a second finish)."""
        result = await self.client.call(*finish_request(call_id, user_id, duration, status_code, failed_reason))
        if result is not None and not isinstance(result, dict):
            raise PermanentCrmError(FINISH, "ERROR_UNEXPECTED_ANSWER", "finish returned no statistics record")
        return result or {}

    async def attach_record(self, call_id: str, filename: str, content: bytes) -> int | None:
        """Attach a wav/mp3 recording to a finished call; the FILE_ID when Bitrix24 returns one.

        Up to ``record_inline_limit`` bytes go base64 in ``FILE_CONTENT``; larger files go through the
        ``uploadUrl`` that ``attachRecord`` with ``FILENAME`` alone returns (multipart field ``fieldName``).
        """
        if not filename.lower().endswith(RECORD_EXTENSIONS):
            raise ValueError(f"Bitrix24 accepts only wav and mp3 recordings, not {filename!r}")
        if not content:
            raise ValueError("the recording is empty")
        if len(content) <= self.client.settings.record_inline_limit:
            encoded = base64.b64encode(content).decode("ascii")
            result = await self.client.call(
                ATTACH_RECORD, {"CALL_ID": call_id, "FILENAME": filename, "FILE_CONTENT": encoded}
            )
            return as_int(result.get("FILE_ID")) if isinstance(result, dict) else None
        result = await self.client.call(ATTACH_RECORD, {"CALL_ID": call_id, "FILENAME": filename})
        if not isinstance(result, dict) or not isinstance(result.get("uploadUrl"), str):
            raise PermanentCrmError(ATTACH_RECORD, "ERROR_UNEXPECTED_ANSWER", "attachRecord gave no uploadUrl")
        uploaded = await self.client.upload(
            ATTACH_RECORD, result["uploadUrl"], str(result.get("fieldName") or "file"), filename, content
        )
        return as_int(uploaded.get("FILE_ID")) if isinstance(uploaded, dict) else None

    async def attach_transcription(self, call_id: str, messages: Sequence[TranscriptLine]) -> int | None:
        rows = [{"SIDE": m.side, "START_TIME": m.start, "STOP_TIME": m.stop, "MESSAGE": m.message} for m in messages]
        result = await self.client.call("telephony.call.attachTranscription", {"CALL_ID": call_id, "MESSAGES": rows})
        return as_int(result.get("TRANSCRIPT_ID")) if isinstance(result, dict) else None

    async def search_crm_entities(self, phone: str) -> list[CrmEntity]:
        result = await self.client.call("telephony.externalCall.searchCrmEntities", {"PHONE_NUMBER": phone})
        entities = []
        for row in result if isinstance(result, list) else []:
            entity_id = as_int(row.get("CRM_ENTITY_ID")) if isinstance(row, dict) else None
            if entity_id is None or not isinstance(row, dict):
                continue
            assigned = row.get("ASSIGNED_BY")
            entities.append(
                CrmEntity(
                    entity_type=str(row.get("CRM_ENTITY_TYPE") or "").upper(),
                    entity_id=entity_id,
                    assigned_by_id=as_int(row.get("ASSIGNED_BY_ID")),
                    name=str(row.get("NAME") or ""),
                    timeman_status=str(assigned.get("TIMEMAN_STATUS") or "") if isinstance(assigned, dict) else "",
                )
            )
        return entities

    async def statistic_get(self, filter: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Call statistics rows matching ``filter`` (e.g. ``{"EXTERNAL_CALL_ID": leg}``), every page."""
        return rows_of(await self.client.list_all("voximplant.statistic.get", {"FILTER": dict(filter)}))

    # --- directory ----------------------------------------------------------------------------------

    async def user_get_all(self, filter: Mapping[str, Any]) -> list[dict[str, Any]]:
        return rows_of(await self.client.list_all("user.get", {"FILTER": dict(filter)}))

    async def department_get(self) -> list[dict[str, Any]]:
        return rows_of(await self.client.list_all("department.get"))

    async def timeman_status(self, user_id: int) -> str:
        """``OPENED``, ``CLOSED``, ``PAUSED`` or ``EXPIRED`` (``""`` when Bitrix24 says nothing)."""
        result = await self.client.call("timeman.status", {"USER_ID": int(user_id)})
        return str(result.get("STATUS") or "") if isinstance(result, dict) else ""

    async def absent_on(self, user_ids: Sequence[int], day: date) -> set[int]:
        """Users with an absence (vacation, sick leave, ...) in the absence chart on ``day``."""
        if not user_ids:
            return set()
        text = day.isoformat()
        result = await self.client.call(
            "calendar.accessibility.get", {"users": [int(u) for u in user_ids], "from": text, "to": text}
        )
        absent = set()
        for key, events in result.items() if isinstance(result, dict) else []:
            user_id = as_int(key)
            if user_id is not None and isinstance(events, list) and any(_is_absence(e) for e in events):
                absent.add(user_id)
        return absent

    # --- CRM, tasks, notifications, events --------------------------------------------------------

    async def crm_entity_get(self, entity_type: str, entity_id: int) -> dict[str, Any]:
        method = ENTITY_METHODS.get(entity_type.upper())
        if method is None:
            raise ValueError(f"unknown CRM entity type {entity_type!r}")
        result = await self.client.call(method, {"id": int(entity_id)})
        return result if isinstance(result, dict) else {}

    async def deal_for(self, entity_type: str, entity_id: int) -> dict[str, Any] | None:
        """The newest open deal of a contact or company (None for leads or when there is none)."""
        key = {"CONTACT": "CONTACT_ID", "COMPANY": "COMPANY_ID"}.get(entity_type.upper())
        if key is None:
            return None
        envelope = await self.client.call_envelope(
            "crm.deal.list",
            {"filter": {key: int(entity_id), "CLOSED": "N"}, "order": {"ID": "DESC"},
             "select": ["ID", "TITLE", "OPPORTUNITY", "CURRENCY_ID", "ASSIGNED_BY_ID", "STAGE_ID"]},
        )  # fmt: skip
        rows = rows_of(envelope.get("result"))
        return rows[0] if rows else None

    async def task_add(self, responsible_id: int, title: str, description: str) -> int | None:
        result = await self.client.call(*task_request(responsible_id, title, description))
        task = result.get("task") if isinstance(result, dict) else None
        return as_int(task.get("id")) if isinstance(task, dict) else None

    async def notify(self, user_id: int, message: str) -> int | None:
        return as_int(await self.client.call(*notify_request(user_id, message)))

    async def event_bind(self, event: str, handler: str, offline: bool = False) -> bool:
        params: dict[str, Any] = {"event": event, "event_type": "offline" if offline else "online"}
        if handler:
            params["handler"] = handler
        return bool(await self.client.call("event.bind", params))

    async def event_offline_get(self, limit: int = 50) -> list[dict[str, Any]]:
        """Take (and clear) up to ``limit`` queued offline events."""
        result = await self.client.call("event.offline.get", {"limit": int(limit), "clear": 1})
        events = result.get("events") if isinstance(result, dict) else result
        return rows_of(events)


def registered_from(method: str, result: Any) -> Registered:
    """Parse ``register``'s result (also used for a register inside a batch)."""
    if not isinstance(result, dict) or not isinstance(result.get("CALL_ID"), str) or not result["CALL_ID"]:
        raise PermanentCrmError(method, "ERROR_UNEXPECTED_ANSWER", "register returned no CALL_ID")
    return Registered(
        call_id=result["CALL_ID"],
        crm_entity_type=str(result.get("CRM_ENTITY_TYPE") or ""),
        crm_entity_id=as_int(result.get("CRM_ENTITY_ID")),
        crm_created_lead=as_int(result.get("CRM_CREATED_LEAD")),
        lead_creation_error=str(result.get("LEAD_CREATION_ERROR") or ""),
    )


def _is_absence(event: Any) -> bool:
    return isinstance(event, dict) and str(event.get("ACCESSIBILITY") or "").lower() == "absent"
