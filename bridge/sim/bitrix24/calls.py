"""External calls: the active-calls table, the statistics table, and the call cards users see.

Pure state; ``telephony.py`` turns REST parameters into these calls and validates them first.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.sim.bitrix24.crm import Crm
from bridge.sim.bitrix24.lines import LineRegistry
from bridge.sim.bitrix24.timefmt import iso

DEDUP_WINDOW = 30 * 60.0
APP_NAME = "b24-bridge simulator app"


@dataclass
class Record:
    name: str
    content: bytes
    file_id: int


@dataclass
class Call:
    call_id: str
    external_call_id: str | None
    user_id: int
    phone: str
    type: int
    line: str
    start: float
    show: bool
    app_id: int | None
    crm_entity_type: str = ""
    crm_entity_id: int | None = None
    created_lead: int | None = None
    call_list_id: int | None = None
    crm_source: str = ""
    """CRM_SOURCE of the register: the SOURCE_ID of the lead it creates."""
    status: str = "active"
    finish_attempts: int = 0
    finish: dict[str, Any] | None = None
    statistic: dict[str, Any] | None = None
    record: Record | None = None
    transcript_id: int | None = None

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "CALL_ID": self.call_id,
            "EXTERNAL_CALL_ID": self.external_call_id,
            "USER_ID": self.user_id,
            "PHONE_NUMBER": self.phone,
            "TYPE": self.type,
            "LINE_NUMBER": self.line,
            "CALL_START_DATE": iso(self.start),
            "SHOW": self.show,
            "CRM_ENTITY_TYPE": self.crm_entity_type,
            "CRM_ENTITY_ID": self.crm_entity_id,
            "CRM_CREATED_LEAD": self.created_lead,
            "status": self.status,
            "finish_attempts": self.finish_attempts,
        }
        if self.finish is not None:
            data["finish"] = self.finish
        if self.record is not None:
            data["record"] = {"name": self.record.name, "size": len(self.record.content)}
        if self.transcript_id is not None:
            data["transcript_id"] = self.transcript_id
        return data


def new_call_id(now: float) -> str:
    """``externalCall.<md5 hex>.<unix time>`` as CORE-VOX makes it."""
    return f"externalCall.{hashlib.md5(os.urandom(16)).hexdigest()}.{int(now)}"


class CallRegistry:
    def __init__(self, crm: Crm, lines: LineRegistry, wall_clock: Callable[[], float]) -> None:
        self._crm = crm
        self._lines = lines
        self._wall = wall_clock
        self.calls: dict[str, Call] = {}  # every call ever registered, in order
        self._active: dict[str, Call] = {}  # the active-calls table; finish removes the row
        self.cards: dict[int, list[dict[str, Any]]] = {}
        self.chats: list[dict[str, Any]] = []
        """What ``finish`` posted to employees' chats (:mod:`bridge.sim.bitrix24.chat`), oldest first."""
        self._stat_ids = itertools.count(1)
        self._file_ids = itertools.count(9001)
        self._transcript_ids = itertools.count(1)

    def reset(self) -> None:
        self.calls.clear()
        self._active.clear()
        self.cards.clear()
        self.chats.clear()
        self._stat_ids = itertools.count(1)

    def active(self, call_id: str) -> Call | None:
        return self._active.get(call_id)

    def finished(self, call_id: str) -> Call | None:
        call = self.calls.get(call_id)
        return call if call is not None and call.status == "finished" else None

    def push_card(self, user_id: int, action: str, call_id: str) -> None:
        self.cards.setdefault(user_id, []).append({"action": action, "CALL_ID": call_id, "at": self._wall()})

    def find_duplicate(
        self, app_id: int | None, user_id: int, phone: str, call_type: int, line: str, external_id: str | None
    ) -> Call | None:
        """The re-registration lookup: active calls only, DATE_CREATE within the last 30 minutes."""
        horizon = self._wall() - DEDUP_WINDOW
        for call in reversed(self._active.values()):
            if (
                call.app_id == app_id
                and call.user_id == user_id
                and call.phone == phone
                and call.type == call_type
                and call.start > horizon
                and (not line or call.line == line)
                and (not external_id or call.external_call_id == external_id)
            ):
                return call
        return None

    def register(self, call: Call, crm_create: bool, internal: bool, explicit: tuple[str, int] | None) -> Call:
        """Store a new active call, bind it to CRM (or create a lead), show the card if asked."""
        line = self._lines.ensure(call.app_id, call.line) if call.line else None
        if not internal:
            if explicit is not None:
                call.crm_entity_type, call.crm_entity_id = explicit
            else:
                found = self._crm.search(call.phone)
                if found:
                    call.crm_entity_type, call.crm_entity_id = found[0].kind, found[0].id
                elif crm_create and (call.type != 1 or line is None or line.crm_auto_create == "Y"):
                    lead = self._crm.create_lead(
                        call.phone, call.user_id, call.call_id, call.type != 1, call.crm_source
                    )
                    call.crm_entity_type, call.crm_entity_id, call.created_lead = "LEAD", lead.id, lead.id
        self.calls[call.call_id] = call
        self._active[call.call_id] = call
        if call.show:
            self.push_card(call.user_id, "show", call.call_id)
        return call

    @staticmethod
    def register_result(call: Call) -> dict[str, Any]:
        created = [{"ENTITY_TYPE": "LEAD", "ENTITY_ID": call.created_lead}] if call.created_lead else []
        return {
            "CALL_ID": call.call_id,
            "CRM_CREATED_LEAD": call.created_lead,
            "CRM_CREATED_ENTITIES": created,
            "CRM_ENTITY_TYPE": call.crm_entity_type,
            "CRM_ENTITY_ID": call.crm_entity_id,
        }

    def finish(
        self, call: Call, user_id: int, duration: int, status_code: str, extra: dict[str, Any]
    ) -> dict[str, Any]:
        """Move the call to statistics; returns the statistics row."""
        call.status = "finished"
        self._active.pop(call.call_id, None)
        call_status = 1 if duration > 0 else 0
        call.finish = {
            "USER_ID": user_id,
            "DURATION": duration,
            "STATUS_CODE": status_code,
            "CALL_STATUS": call_status,
            "FAILED_REASON": extra.get("FAILED_REASON", ""),
        }
        self._crm.assign_created(call.call_id, user_id)
        portal_number = call.line or f"REST_APP:{call.app_id if call.app_id is not None else ''}"
        call.statistic = {
            "ID": next(self._stat_ids),
            "CALL_ID": call.call_id,
            "EXTERNAL_CALL_ID": call.external_call_id,
            "PORTAL_USER_ID": user_id,
            "PHONE_NUMBER": call.phone,
            "PORTAL_NUMBER": portal_number,
            "INCOMING": str(call.type),
            "CALL_TYPE": call.type,
            "CALL_CATEGORY": "external",
            "CALL_DURATION": duration,
            "CALL_START_DATE": iso(call.start),
            "CALL_STATUS": call_status,
            "CALL_VOTE": extra.get("VOTE"),
            "COST": extra.get("COST", 0.0),
            "COST_CURRENCY": extra.get("COST_CURRENCY", ""),
            "CALL_FAILED_CODE": status_code,
            "CALL_FAILED_REASON": extra.get("FAILED_REASON", ""),
            "CALL_LOG": None,
            "CALL_RECORD_URL": None,
            "RECORD_FILE_ID": None,
            "RECORD_DURATION": None,
            "REST_APP_ID": call.app_id,
            "REST_APP_NAME": APP_NAME if call.app_id is not None else None,
            "CRM_ACTIVITY_ID": self._crm.new_activity() if call.crm_entity_id else None,
            "COMMENT": None,
            "CRM_ENTITY_TYPE": call.crm_entity_type,
            "CRM_ENTITY_ID": call.crm_entity_id,
            "TRANSCRIPT_ID": None,
            "TRANSCRIPT_PENDING": "N",
            "SESSION_ID": None,
            "REDIAL_ATTEMPT": None,
        }
        self.push_card(user_id, "hide", call.call_id)
        return call.statistic

    def attach_record(self, call: Call, name: str, content: bytes, base_url: str) -> int:
        """Attach or replace the record; returns the new FILE_ID."""
        file_id = next(self._file_ids)
        call.record = Record(name, content, file_id)
        if call.statistic is not None:
            call.statistic["RECORD_FILE_ID"] = file_id
            call.statistic["CALL_RECORD_URL"] = f"{base_url}/_sim/records/{call.call_id}"
        return file_id

    def attach_transcript(self, call: Call) -> int:
        call.transcript_id = next(self._transcript_ids)
        if call.statistic is not None:
            call.statistic["TRANSCRIPT_ID"] = call.transcript_id
            call.statistic["TRANSCRIPT_PENDING"] = "N"
        return call.transcript_id

    def statistics(self) -> list[dict[str, Any]]:
        return [call.statistic for call in self.calls.values() if call.statistic is not None]

    def state(self) -> dict[str, Any]:
        return {
            "calls": [call.state() for call in self.calls.values()],
            "cards": {str(user): list(events) for user, events in self.cards.items()},
        }


@dataclass
class Upload:
    """A pending ``uploadUrl`` from attachRecord: which call and which file name."""

    call_id: str
    filename: str
    used: bool = field(default=False)
