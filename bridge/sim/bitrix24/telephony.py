"""``telephony.externalCall.register/finish/show/hide/searchCrmEntities``: parameters in, validation with
Bitrix24's own texts, state changes in ``calls.py``."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from bridge.sim.bitrix24 import chat
from bridge.sim.bitrix24.calls import Call, CallRegistry, new_call_id
from bridge.sim.bitrix24.context import Caller, MethodSpec, Reply
from bridge.sim.bitrix24.crm import ENTITY_TYPES, Crm
from bridge.sim.bitrix24.directory import Directory
from bridge.sim.bitrix24.errors import CALL_NOT_FOUND_FOR_FINISH, USER_NOT_FOUND, USER_NOT_SET, RestError
from bridge.sim.bitrix24.events import EventHub
from bridge.sim.bitrix24.params import Params, as_list, flag, to_int, to_str
from bridge.sim.bitrix24.phone import normalize_phone
from bridge.sim.bitrix24.seed import User
from bridge.sim.bitrix24.timefmt import parse_iso, to_unix

_FINISH_FIELDS = (
    "CALL_ID",
    "EXTERNAL_CALL_ID",
    "PORTAL_USER_ID",
    "PHONE_NUMBER",
    "PORTAL_NUMBER",
    "INCOMING",
    "CALL_DURATION",
    "CALL_START_DATE",
    "CALL_STATUS",
    "CALL_VOTE",
    "COST",
    "COST_CURRENCY",
    "CALL_FAILED_CODE",
    "CALL_FAILED_REASON",
    "REST_APP_ID",
    "REST_APP_NAME",
    "CRM_ACTIVITY_ID",
    "COMMENT",
    "CRM_ENTITY_TYPE",
    "CRM_ENTITY_ID",
    "ID",
)


class Telephony:
    def __init__(
        self,
        directory: Directory,
        crm: Crm,
        calls: CallRegistry,
        events: EventHub,
        wall_clock: Callable[[], float],
        rng: random.Random,
        empty_error_code_fraction: float,
    ) -> None:
        self._directory = directory
        self._crm = crm
        self._calls = calls
        self._events = events
        self._wall = wall_clock
        self._rng = rng
        self.empty_error_code_fraction = empty_error_code_fraction

    def methods(self) -> list[MethodSpec]:
        return [
            MethodSpec("telephony.externalCall.register", self._register, app_only=True),
            MethodSpec("telephony.externalCall.finish", self._finish, app_only=True),
            MethodSpec("telephony.externalCall.show", self._card("show")),
            MethodSpec("telephony.externalCall.hide", self._card("hide")),
            MethodSpec("telephony.externalCall.searchCrmEntities", self._search),
        ]

    def _resolve_user(self, params: Params) -> User:
        user_id = to_int(params.get("USER_ID"), 0)
        inner = to_str(params.get("USER_PHONE_INNER")).strip()
        if user_id <= 0 and not inner:
            raise RestError(USER_NOT_SET)
        user = self._directory.active_user(user_id) if user_id > 0 else self._directory.user_by_inner(inner)
        if user is None:
            raise RestError(USER_NOT_FOUND)
        return user

    def register_call(
        self,
        app_id: int | None,
        user: User,
        phone_raw: str,
        call_type: int,
        *,
        start: float | None = None,
        show: bool = True,
        line: str = "",
        external_id: str | None = None,
        crm_create: bool = False,
        explicit: tuple[str, int] | None = None,
        call_list_id: int | None = None,
        crm_source: str = "",
    ) -> dict[str, Any]:
        """Register (or re-find) a call, as the REST method and Bitrix24's own click-to-call do."""
        phone = normalize_phone(phone_raw)
        if not phone:
            raise RestError("Unsupported phone number format")
        start = self._wall() if start is None else start
        duplicate = self._calls.find_duplicate(app_id, user.id, phone, call_type, line, external_id)
        if duplicate is not None:
            if show:
                self._calls.push_card(user.id, "show", duplicate.call_id)
            return self._calls.register_result(duplicate)
        call = Call(
            new_call_id(self._wall()),
            external_id,
            user.id,
            phone,
            call_type,
            line,
            start,
            show,
            app_id,
            call_list_id=call_list_id,
            crm_source=crm_source,
        )
        internal = self._directory.is_internal_number(phone)
        self._calls.register(call, crm_create, internal, explicit)
        return self._calls.register_result(call)

    async def _register(self, caller: Caller, params: Params) -> Reply:
        user = self._resolve_user(params)
        call_type = to_int(params.get("TYPE"), 0)
        if call_type not in (1, 2, 3, 4, 5):
            raise RestError("Unknown TYPE")
        start = None
        if to_str(params.get("CALL_START_DATE")).strip():
            parsed = parse_iso(params["CALL_START_DATE"])
            if parsed is None:
                raise RestError("CALL_START_DATE should be in the ISO-8601 format")
            start = to_unix(parsed)
        entity_type = to_str(params.get("CRM_ENTITY_TYPE")).strip().upper()
        entity_id = to_int(params.get("CRM_ENTITY_ID"), 0)
        explicit = (entity_type, entity_id) if entity_type in ENTITY_TYPES and entity_id > 0 else None
        result = self.register_call(
            caller.app_id,
            user,
            to_str(params.get("PHONE_NUMBER")),
            call_type,
            start=start,
            show=flag(params, "SHOW", True),
            line=to_str(params.get("LINE_NUMBER")).strip(),
            external_id=to_str(params.get("EXTERNAL_CALL_ID")).strip() or None,
            crm_create=flag(params, "CRM_CREATE", False),
            explicit=explicit,
            call_list_id=to_int(params.get("CALL_LIST_ID"), 0) or None,
            crm_source=to_str(params.get("CRM_SOURCE")).strip(),
        )
        return Reply(result)

    def _not_found_for_finish(self) -> RestError:
        empty = self.empty_error_code_fraction > 0 and self._rng.random() < self.empty_error_code_fraction
        return RestError(CALL_NOT_FOUND_FOR_FINISH, "" if empty else "ERROR_CORE", 400)

    async def _finish(self, caller: Caller, params: Params) -> Reply:
        call_id = params.get("CALL_ID")
        if not isinstance(call_id, str):
            raise RestError("CALL_ID must be a string", "INVALID_ARGUMENT", 400)
        if to_int(params.get("USER_ID"), 0) <= 0 and not to_str(params.get("USER_PHONE_INNER")).strip():
            raise RestError(USER_NOT_SET)
        known = self._calls.calls.get(call_id)
        if known is not None:
            known.finish_attempts += 1
        call = self._calls.active(call_id)
        if call is None:
            raise self._not_found_for_finish()
        user = self._resolve_user(params)
        duration = max(0, to_int(params.get("DURATION"), 0))
        status_code = to_str(params.get("STATUS_CODE")).strip() or ("200" if duration > 0 else "304")
        vote = to_int(params.get("VOTE"), 0)
        try:
            cost = float(to_str(params.get("COST")) or 0)
        except ValueError:
            cost = 0.0
        extra = {
            "VOTE": vote if 1 <= vote <= 5 else None,
            "COST": cost,
            "COST_CURRENCY": to_str(params.get("COST_CURRENCY")),
            "FAILED_REASON": to_str(params.get("FAILED_REASON")),
        }
        stat = self._calls.finish(call, user.id, duration, status_code, extra)
        text = chat.message_for(stat) if chat.wanted(params.get("ADD_TO_CHAT")) else ""
        if text:
            self._calls.chats.append(
                {"USER_ID": user.id, "PHONE_NUMBER": stat["PHONE_NUMBER"], "CALL_ID": call.call_id, "MESSAGE": text}
            )
        self._events.fire_later("ONVOXIMPLANTCALLEND", self._call_end_data(stat), user.id, call.call_id)
        result = {name: stat.get(name) for name in _FINISH_FIELDS}
        result["CALL_START_DATE"] = {}  # a PHP DateTime object, json-encoded, as in the docs' example
        if result["REST_APP_ID"] is not None:
            result["REST_APP_ID"] = str(result["REST_APP_ID"])
        return Reply(result)

    @staticmethod
    def _call_end_data(stat: dict[str, Any]) -> dict[str, str]:
        names = (
            "CALL_ID",
            "CALL_TYPE",
            "PHONE_NUMBER",
            "PORTAL_NUMBER",
            "PORTAL_USER_ID",
            "CALL_DURATION",
            "CALL_START_DATE",
            "COST",
            "COST_CURRENCY",
            "CALL_FAILED_CODE",
            "CALL_FAILED_REASON",
            "CRM_ACTIVITY_ID",
        )
        return {name: to_str(stat.get(name)) for name in names}

    def _card(self, action: str) -> Any:
        async def handler(caller: Caller, params: Params) -> Reply:
            call_id = params.get("CALL_ID")
            call = self._calls.active(call_id) if isinstance(call_id, str) else None
            if call is None:
                return Reply(False)
            users = [to_int(v) for v in as_list(params.get("USER_ID"))] if "USER_ID" in params else [call.user_id]
            for user_id in users:
                if user_id > 0:
                    self._calls.push_card(user_id, action, call.call_id)
            return Reply(True)

        return handler

    async def _search(self, caller: Caller, params: Params) -> Reply:
        phone = to_str(params.get("PHONE_NUMBER")).strip()
        if not phone:
            raise RestError("PHONE_NUMBER is empty")
        return Reply(
            [
                {
                    "CRM_ENTITY_TYPE": entity.kind,
                    "CRM_ENTITY_ID": entity.id,
                    "ASSIGNED_BY_ID": entity.assigned_by,
                    "NAME": entity.display_name,
                    "ASSIGNED_BY": self._directory.assigned_by_block(entity.assigned_by),
                }
                for entity in self._crm.search(phone)
            ]
        )
