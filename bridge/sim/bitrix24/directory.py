"""Users, departments, time tracking and absences, and their REST methods."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from typing import Any

from bridge.sim.bitrix24 import filters
from bridge.sim.bitrix24.context import Caller, MethodSpec, Reply
from bridge.sim.bitrix24.errors import RestError
from bridge.sim.bitrix24.params import Params, as_list, to_int, to_str
from bridge.sim.bitrix24.phone import normalize_phone
from bridge.sim.bitrix24.seed import STATISTICS_VIEWS, Department, Seed, User
from bridge.sim.bitrix24.timefmt import iso

ONLINE_SECONDS = 1440
"""``IS_ONLINE`` is a last activity within this many seconds: ``UserTable::getSecondsForLimitOnline`` (PHP's
``session.gc_maxlifetime``, 1440 by default, at least 120)."""
USER_SCOPES = ("user", "user_brief", "user_basic")
"""Any of them opens ``user.get`` (DOCS ``user-get.md``)."""

_USER_FIELDS = (
    "ID",
    "ACTIVE",
    "NAME",
    "LAST_NAME",
    "EMAIL",
    "UF_PHONE_INNER",
    "PERSONAL_MOBILE",
    "PERSONAL_PHONE",
    "WORK_PHONE",
    "WORK_POSITION",
    "UF_DEPARTMENT",
    "IS_ONLINE",
    "LAST_ACTIVITY_DATE",
    "USER_TYPE",
)


class Directory:
    """The portal's people; seeded, read-only through REST."""

    def __init__(self, seed: Seed, wall_clock: Callable[[], float] | None = None) -> None:
        self.users: dict[int, User] = {user.id: user for user in seed.users}
        self.wall = wall_clock or time.time
        self.departments: dict[int, Department] = {dep.id: dep for dep in seed.departments}

    def active_user(self, user_id: int) -> User | None:
        user = self.users.get(user_id)
        return user if user is not None and user.active else None

    def statistics_view(self, user_id: int) -> str:
        """What ``voximplant.statistic.get`` shows ``user_id``: portal admins see every call whatever their role
        (CORE-VOX ``RoleManager::getUserPermissions``); others get their role's level, by default ``own`` (the
        "manager" role every employee gets on install: ``Security\\Helper::getDefaultRoleAccess``)."""
        user = self.users.get(user_id)
        if user is None:
            return "none"
        if user.admin:
            return "all"
        return user.statistics_view or "own"

    def set_rights(self, user_id: int, *, admin: bool | None = None, statistics: str | None = None) -> None:
        """Change a user's admin flag and statistics level (tests, the demo)."""
        user = self.users[user_id]
        if statistics is not None and statistics not in STATISTICS_VIEWS:
            raise ValueError(f"statistics must be one of {STATISTICS_VIEWS}")
        if admin is not None:
            user.admin = admin
        if statistics is not None:
            user.statistics_view = statistics

    def set_presence(self, user_id: int, idle_minutes: float) -> None:
        """The user was last active in Bitrix24 ``idle_minutes`` ago (0: online now)."""
        self.users[user_id].idle_minutes = max(0.0, float(idle_minutes))

    def _idle_seconds(self, user: User) -> float:
        if user.idle_minutes is not None:
            return user.idle_minutes * 60
        return 0.0 if user.is_online else 7200.0

    def colleagues(self, user_id: int) -> set[int]:
        """Whose calls a ``department`` level shows: the user, everyone in the user's departments, and everyone in
        the departments the user heads and their sub-departments (CORE-VOX ``Helper::getUserColleagues``)."""
        user = self.users.get(user_id)
        if user is None:
            return set()
        headed = {dep.id for dep in self.departments.values() if dep.head == user_id}
        grown = True
        while grown:
            below = {dep.id for dep in self.departments.values() if dep.parent in headed} - headed
            headed |= below
            grown = bool(below)
        wanted = set(user.departments) | headed
        return {user_id} | {u.id for u in self.users.values() if wanted & set(u.departments)}

    def user_by_inner(self, phone_inner: str) -> User | None:
        """An active user whose UF_PHONE_INNER is ``phone_inner`` (CORE-VOX ``getUserByPhone``)."""
        wanted = phone_inner.strip()
        for user in self.users.values():
            if user.active and wanted and user.phone_inner == wanted:
                return user
        return None

    def is_internal_number(self, phone: str) -> bool:
        digits = normalize_phone(phone)
        return bool(digits) and any(
            u.active and u.phone_inner and normalize_phone(u.phone_inner) == digits for u in self.users.values()
        )

    def user_row(self, user: User) -> dict[str, Any]:
        return {
            "ID": str(user.id),
            "XML_ID": f"sim-{user.id}",
            "ACTIVE": user.active,
            "NAME": user.name,
            "LAST_NAME": user.last_name,
            "SECOND_NAME": "",
            "EMAIL": user.email,
            "LAST_LOGIN": None,
            "TIME_ZONE": "",
            "PERSONAL_MOBILE": user.personal_mobile,
            "PERSONAL_PHONE": user.personal_phone,
            "WORK_PHONE": user.work_phone,
            "WORK_POSITION": user.work_position,
            "UF_DEPARTMENT": list(user.departments),
            "UF_PHONE_INNER": user.phone_inner or None,
            "IS_ONLINE": "Y" if self._idle_seconds(user) <= ONLINE_SECONDS else "N",
            "LAST_ACTIVITY_DATE": iso(self.wall() - self._idle_seconds(user)),
            "USER_TYPE": "employee",
        }

    def assigned_by_block(self, user_id: int) -> dict[str, Any]:
        """``ASSIGNED_BY`` of ``searchCrmEntities``: contacts of the responsible person."""
        user = self.users.get(user_id)
        if user is None:
            return {
                "ID": str(user_id),
                "TIMEMAN_STATUS": "UNAVAILABLE",
                "USER_PHONE_INNER": None,
                "WORK_PHONE": None,
                "PERSONAL_PHONE": None,
                "PERSONAL_MOBILE": None,
            }
        return {
            "ID": str(user.id),
            "TIMEMAN_STATUS": user.timeman_status,
            "USER_PHONE_INNER": user.phone_inner or None,
            "WORK_PHONE": user.work_phone or None,
            "PERSONAL_PHONE": user.personal_phone or None,
            "PERSONAL_MOBILE": user.personal_mobile or None,
        }

    def methods(self) -> list[MethodSpec]:
        return [
            MethodSpec("user.get", self._user_get, scopes=USER_SCOPES),
            MethodSpec("user.current", self._user_current, scopes=USER_SCOPES),
            MethodSpec("profile", self._profile),
            MethodSpec("department.get", self._department_get),
            MethodSpec("timeman.status", self._timeman_status),
            MethodSpec("calendar.accessibility.get", self._accessibility),
        ]

    async def _user_get(self, caller: Caller, params: Params) -> Reply:
        explicit = params.get("FILTER")
        # Legacy form: filter fields at the top level (``user.get?ID=5``).
        criteria = {k: v for k, v in params.items() if filters.split_operator(k)[1] in _USER_FIELDS}
        criteria.update(explicit if isinstance(explicit, dict) else {})
        rows = [self.user_row(user) for user in sorted(self.users.values(), key=lambda u: u.id)]
        rows = [row for row in rows if filters.matches(row, criteria, _USER_FIELDS)]
        sort_field = to_str(params.get("SORT")).upper() or "ID"
        rows = filters.sort_rows(rows, sort_field, to_str(params.get("ORDER")).upper() == "DESC")
        chunk, total, following = filters.page(rows, params.get("START"))
        return Reply(chunk, total, following)

    async def _user_current(self, caller: Caller, params: Params) -> Reply:
        user = self.users.get(caller.user_id)
        if user is None:
            raise RestError("User not found", "", 400)
        return Reply(self.user_row(user))

    async def _profile(self, caller: Caller, params: Params) -> Reply:
        user = self.users.get(caller.user_id)
        if user is None:
            raise RestError("User not found", "", 400)
        return Reply(
            {
                "ID": str(user.id),
                "ADMIN": user.admin,
                "NAME": user.name,
                "LAST_NAME": user.last_name,
                "PERSONAL_GENDER": "",
                "TIME_ZONE": "",
            }
        )

    async def _department_get(self, caller: Caller, params: Params) -> Reply:
        fields = ("ID", "NAME", "SORT", "PARENT", "UF_HEAD")
        rows = []
        for dep in sorted(self.departments.values(), key=lambda d: (d.sort, d.id)):
            row: dict[str, Any] = {"ID": str(dep.id), "NAME": dep.name, "SORT": dep.sort}
            if dep.parent is not None:
                row["PARENT"] = str(dep.parent)
            row["UF_HEAD"] = str(dep.head) if dep.head is not None else ""
            rows.append(row)
        criteria = {k: v for k, v in params.items() if filters.split_operator(k)[1] in fields}
        rows = [row for row in rows if filters.matches(row, criteria, fields)]
        chunk, total, following = filters.page(rows, params.get("START"))
        return Reply(chunk, total, following)

    async def _timeman_status(self, caller: Caller, params: Params) -> Reply:
        user_id = to_int(params.get("USER_ID"), caller.user_id) or caller.user_id
        user = self.users.get(user_id)
        if user is None:
            raise RestError("User not found", "", 400)
        opened = user.timeman_status in ("OPENED", "PAUSED", "EXPIRED")
        today = date.today().isoformat()
        return Reply(
            {
                "STATUS": user.timeman_status,
                "TIME_START": f"{today}T09:00:00+03:00" if opened or user.timeman_status == "CLOSED" else None,
                "TIME_FINISH": f"{today}T18:00:00+03:00" if user.timeman_status == "CLOSED" else None,
                "DURATION": "00:00:00",
                "TIME_LEAKS": "00:00:00",
                "ACTIVE": True,
                "IP_OPEN": "",
                "IP_CLOSE": "",
                "LAT_OPEN": 0,
                "LON_OPEN": 0,
                "LAT_CLOSE": 0,
                "LON_CLOSE": 0,
                "TZ_OFFSET": 10800,
            }
        )

    async def _accessibility(self, caller: Caller, params: Params) -> Reply:
        user_ids = [to_int(value) for value in as_list(params.get("USERS"))]
        start, end = to_str(params.get("FROM"))[:10], to_str(params.get("TO"))[:10]
        if not user_ids or not start or not end:
            raise RestError("Required parameters are not set: users, from, to", "", 400)
        result: dict[str, list[dict[str, Any]]] = {}
        for user_id in user_ids:
            user = self.users.get(user_id)
            busy = []
            for index, absence in enumerate(user.absences if user else []):
                if absence.date_from[:10] <= end and absence.date_to[:10] >= start:
                    busy.append(
                        {
                            "ID": str(index + 1),
                            "NAME": absence.name,
                            "DATE_FROM": absence.date_from,
                            "DATE_TO": absence.date_to,
                            "ACCESSIBILITY": "absent",
                            "IMPORTANCE": "normal",
                            "EVENT_TYPE": "#vacation#",
                        }
                    )
            result[str(user_id)] = busy
        return Reply(result)
