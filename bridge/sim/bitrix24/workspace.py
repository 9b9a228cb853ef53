"""What the bridge leaves for people: tasks (``tasks.task.add``) and notifications
(``im.notify.personal.add``); kept so tests and the demo can see them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.sim.bitrix24.context import Caller, MethodSpec, Reply
from bridge.sim.bitrix24.directory import Directory
from bridge.sim.bitrix24.errors import RestError
from bridge.sim.bitrix24.params import Params, as_list, to_int, to_str, upper_keys
from bridge.sim.bitrix24.timefmt import iso


class Workspace:
    def __init__(self, directory: Directory, wall_clock: Callable[[], float]) -> None:
        self._directory = directory
        self._wall = wall_clock
        self.tasks: list[dict[str, Any]] = []
        self.notifications: list[dict[str, Any]] = []
        self._notification_ids = 0

    def reset(self) -> None:
        self.tasks.clear()
        self.notifications.clear()
        self._notification_ids = 0

    def methods(self) -> list[MethodSpec]:
        return [
            MethodSpec("tasks.task.add", self._task_add),
            MethodSpec("im.notify.personal.add", self._notify),
            MethodSpec("im.notify", self._notify),
        ]

    async def _task_add(self, caller: Caller, params: Params) -> Reply:
        raw = params.get("FIELDS")
        fields = upper_keys(raw) if isinstance(raw, dict) else {}
        title = to_str(fields.get("TITLE")).strip()
        responsible = to_int(fields.get("RESPONSIBLE_ID"), 0)
        if not title:
            raise RestError("Wrong task data: TITLE is empty", "ERROR_CORE", 400)
        if responsible <= 0 or self._directory.active_user(responsible) is None:
            raise RestError("Wrong task data: RESPONSIBLE_ID is not an active user", "ERROR_CORE", 400)
        task_id = len(self.tasks) + 1
        task = {
            "id": str(task_id),
            "title": title,
            "description": to_str(fields.get("DESCRIPTION")),
            "responsibleId": str(responsible),
            "createdBy": str(to_int(fields.get("CREATED_BY"), caller.user_id) or caller.user_id),
            "deadline": to_str(fields.get("DEADLINE")) or None,
            "ufCrmTask": [to_str(v) for v in as_list(fields.get("UF_CRM_TASK"))],
            "status": "2",
            "createdDate": iso(self._wall()),
        }
        self.tasks.append(task)
        return Reply({"task": task})

    async def _notify(self, caller: Caller, params: Params) -> Reply:
        user_id = to_int(params.get("USER_ID") or params.get("TO"), 0)
        message = to_str(params.get("MESSAGE")).strip()
        if user_id <= 0:
            raise RestError("Recipient ID can't be empty", "USER_ID_EMPTY", 400)
        if not message:
            raise RestError("Message can't be empty", "MESSAGE_EMPTY", 400)
        if self._directory.active_user(user_id) is None:  # unknown or dismissed (the exact code is not documented)
            raise RestError("User not found", "USER_NOT_FOUND", 400)
        tag = to_str(params.get("TAG"))
        if tag:  # a new notification with the same tag removes the older ones
            self.notifications = [n for n in self.notifications if n["TAG"] != tag or n["USER_ID"] != user_id]
        self._notification_ids += 1
        notification_id = self._notification_ids
        notification = {
            "ID": notification_id,
            "USER_ID": user_id,
            "FROM_USER_ID": caller.user_id,
            "MESSAGE": message,
            "TAG": tag,
            "at": self._wall(),
        }
        self.notifications.append(notification)
        return Reply(notification_id)
