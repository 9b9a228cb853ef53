"""The employee directory: extension <-> Bitrix24 user, mobiles, supervisors, and CRM-side availability.

The map is the configured ``[employees.map]`` plus (with ``auto_map``) every active user's ``UF_PHONE_INNER``
(spaces dropped, a number taken as its digits; one that is not a plain extension is logged and skipped; of two
users sharing one, the first by ID keeps it); configured entries win, and their blanks (mobile, supervisor) are
filled from Bitrix24; a configured employee whose user is not among the portal's active users (dismissed,
ACTIVE = N, or no such user) is marked ``dismissed``, which the core skips and never names in a finish
(``directory.dismissed``). A supervisor is the head (``UF_HEAD``) of the user's first department, or of its parent
when the user heads it. A refresh that fails or looks partial keeps the last good map (``directory.stale``).
Extensions the routing plan names that neither the configuration nor an active user has are logged as
``directory.unresolved`` whenever that set changes. Availability facts (clocked in? absent today? online?) come
from ``timeman.status``, ``calendar.accessibility.get`` and (with ``require_online``) ``user.get``, in one
``batch`` per 49 users, and are cached for ``availability_ttl`` seconds (online: :mod:`bridge.crm.online`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import structlog

from bridge.config.grammar import EXT_RE
from bridge.crm.envelope import as_int
from bridge.crm.errors import CrmError
from bridge.crm.online import OnlineStatus
from bridge.crm.telephony import Telephony
from bridge.domain.scheme import Availability, Employee
from bridge.phone import BadPhoneNumber, reduce_number

log = structlog.get_logger(__name__)

SHRINK_LIMIT = 0.5
"""A refresh with fewer than this share of the last good count of users looks partial..."""
SHRINK_CONFIRMATIONS = 3
"""...until it has come back the same this many times in a row (people do leave)."""
CLOCKED_IN = frozenset({"OPENED"})
_NO_TIMEMAN = frozenset({"ERROR_METHOD_NOT_FOUND", "insufficient_scope", "ACCESS_DENIED"})
T = TypeVar("T")
BUILD_SLICE = 200
"""Employees a refresh builds before it lets the event loop run (1,240 configured employees took about 16 ms of
CPU in one go: a stall of every call's events every refresh)."""
USERS_PER_BATCH = 49
"""``timeman.status`` per user plus one ``calendar.accessibility.get`` for all of them, within 50 commands (and
``user.get``'s page of 50 for the online check)."""
USERS_PER_ABSENCE_CHECK = 250
"""Users in one ``calendar.accessibility.get`` when nothing is asked per user: a 300-agent centre without time
tracking spent 7 requests every 30 s on one-command batches, a tenth of the portal's 2 requests a second."""


def dialable(phone: Any) -> str:
    """``+7 916 000-10-01 доб. 5`` -> ``+79160001001``; empty for junk (the dial rules apply when it is dialled)."""
    try:
        return reduce_number(str(phone or ""))
    except BadPhoneNumber:
        return ""


def _department_ids(user: Mapping[str, Any]) -> list[int]:
    raw = user.get("UF_DEPARTMENT")
    values = raw if isinstance(raw, list) else [raw]
    return [n for n in (as_int(v) for v in values) if n is not None]


def _inner(user: Mapping[str, Any]) -> str:
    """The user's extension as the PBX dials it: ``" 10 07"`` and ``1007`` are ``1007``; empty when unset."""
    raw = user.get("UF_PHONE_INNER")
    if raw is None or isinstance(raw, bool):
        return ""
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    return re.sub(r"\s+", "", str(raw))


def _name(user: Mapping[str, Any]) -> str:
    return " ".join(str(user.get(k) or "") for k in ("NAME", "LAST_NAME")).strip()


def _mobile(user: Mapping[str, Any]) -> str:
    return dialable(user.get("PERSONAL_MOBILE")) or dialable(user.get("WORK_PHONE"))


async def _sliced(items: Iterable[T]) -> AsyncIterator[T]:
    """``items``, letting the event loop run after every :data:`BUILD_SLICE` of them."""
    for done, item in enumerate(items, 1):
        if done % BUILD_SLICE == 0:
            await asyncio.sleep(0)
        yield item


class Directory:
    """Who is who on the phone; read the map with :meth:`employees`, keep it fresh with :meth:`run`."""

    def __init__(
        self,
        telephony: Telephony,
        configured: dict[str, Employee],
        auto_map: bool = True,
        refresh: float = 300.0,
        availability_ttl: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], date] = date.today,
        time_tracking: bool = True,
        wanted: Mapping[str, list[str]] | None = None,
        require_online: bool = False,
        online_minutes: float = 24,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.telephony = telephony
        self.configured = dict(configured)
        self.auto_map = auto_map
        self.refresh_interval = refresh
        self.availability_ttl = availability_ttl
        self._clock = clock
        self._today = today
        self._map: dict[str, Employee] = dict(configured)
        self._good_user_count = 0
        self._shrunk_seen = 0
        self._dismissed: dict[str, int] = {}
        self._availability: dict[int, tuple[float, Availability | None]] = {}
        self._time_tracking = time_tracking
        """Ask ``timeman.status`` (NOT_CLOCKED_IN) at all; turned off when the portal has no time tracking."""
        self._wanted = dict(wanted or {})
        """Extension -> the config keys naming it, for those only Bitrix24 can resolve (``auto_map``)."""
        self._unresolved: list[str] | None = None
        self._online = OnlineStatus(require_online, online_minutes, wall)
        """Ask ``user.get`` (OFFLINE) too (``require_online``)."""
        self.refreshed_at: float | None = None
        """``clock()`` of the last refresh that was accepted (None: running on the configuration alone)."""

    # --- the map -----------------------------------------------------------------------------------

    def employees(self) -> dict[str, Employee]:
        return dict(self._map)

    def employee_map(self) -> Mapping[str, Employee]:
        """The map itself, read-only: a refresh replaces it, never changes it, so the same object means the same
        employees."""
        return self._map

    def user_for(self, ext: str) -> int | None:
        employee = self._map.get(ext)
        return employee.user_id if employee is not None else None

    def ext_for(self, user_id: int) -> str | None:
        for employee in self._map.values():
            if employee.user_id == user_id:
                return employee.ext
        return None

    async def refresh(self) -> bool:
        """Reload from Bitrix24; True when the new map was taken, False when the last good one is kept."""
        try:
            users = [u for u in await self.telephony.user_get_all({"ACTIVE": True}) if u.get("ACTIVE") is not False]
            departments = await self.telephony.department_get()
        except CrmError as exc:
            log.warning("directory.stale", reason="refresh failed", method=exc.method, code=exc.code)
            return False
        if self._looks_partial(len(users)):
            log.warning("directory.stale", reason="fewer users than before", users=len(users),
                        before=self._good_user_count)  # fmt: skip
            return False
        self._map = await self._build(users, departments)
        gone = {ext: e.user_id for ext, e in sorted(self._map.items()) if e.dismissed}
        if gone != self._dismissed:
            if gone:
                log.warning("directory.dismissed", employees=gone,
                            note="not active users in Bitrix24: skipped, never named in a finish")  # fmt: skip
            self._dismissed = gone
        self._report_unresolved()
        self._good_user_count = len(users)
        self._shrunk_seen = 0
        self.refreshed_at = self._clock()
        log.info("directory.refreshed", users=len(users), employees=len(self._map))
        return True

    def _report_unresolved(self) -> None:
        missing = sorted(ext for ext in self._wanted if ext not in self._map)
        if missing == self._unresolved or (self._unresolved is None and not missing):
            self._unresolved = missing
            return
        self._unresolved = missing
        if missing:
            named_by = {ext: self._wanted[ext] for ext in missing}
            note = "no active Bitrix24 user has these as UF_PHONE_INNER: calls skip them as unavailable"
            log.warning("directory.unresolved", extensions=missing, named_by=named_by, note=note)
        else:
            log.info("directory.unresolved", extensions=[], note="every extension the routing names is resolved")

    def _looks_partial(self, count: int) -> bool:
        if self._good_user_count == 0 or count >= self._good_user_count * SHRINK_LIMIT:
            return False
        self._shrunk_seen += 1
        return self._shrunk_seen < SHRINK_CONFIRMATIONS

    async def _build(self, users: list[dict[str, Any]], departments: list[dict[str, Any]]) -> dict[str, Employee]:
        """The new map, built :data:`BUILD_SLICE` employees at a time (the old one serves meanwhile)."""
        by_id = {uid: u for u in users if (uid := as_int(u.get("ID"))) is not None}
        result: dict[str, Employee] = {}
        if self.auto_map:
            configured_users = {e.user_id for e in self.configured.values()}
            async for uid, user in _sliced(sorted(by_id.items())):
                ext = _inner(user)
                if not ext or uid in configured_users or ext in self.configured:
                    continue
                if not EXT_RE.fullmatch(ext):
                    log.warning("directory.bad_extension", user_id=uid, reason="UF_PHONE_INNER is not 1-20 letters, "
                                "digits, - or _ (the PBX could not dial it): not mapped")  # fmt: skip
                    continue
                if ext in result:
                    log.warning("directory.duplicate_extension", ext=ext, user_id=uid, kept=result[ext].user_id)
                    continue
                result[ext] = Employee(ext=ext, user_id=uid, name=_name(user), mobile=_mobile(user))
        async for ext, employee in _sliced(self.configured.items()):
            user = by_id.get(employee.user_id, {})
            result[ext] = replace(
                employee,
                name=employee.name or _name(user),
                mobile=employee.mobile or _mobile(user),
                dismissed=employee.user_id not in by_id,
            )
        # Supervisors last, so that they point at extensions of the final map only.
        ext_of_user = {e.user_id: e.ext for e in result.values()}
        heads = {did: as_int(d.get("UF_HEAD")) for d in departments if (did := as_int(d.get("ID"))) is not None}
        parents = {as_int(d.get("ID")): as_int(d.get("PARENT")) for d in departments}

        def supervisor_of(user_id: int) -> str:
            """Head of the user's first department; for the head itself, the head of the parent, and so on."""
            departments_of = _department_ids(by_id.get(user_id, {}))
            department = departments_of[0] if departments_of else None
            seen: set[int] = set()
            while department is not None and department not in seen:
                seen.add(department)
                head = heads.get(department)
                if head is not None and head != user_id:
                    return ext_of_user.get(head, "")
                department = parents.get(department)
            return ""

        built: dict[str, Employee] = {}
        async for ext, e in _sliced(result.items()):
            built[ext] = e if e.supervisor_ext else replace(e, supervisor_ext=supervisor_of(e.user_id))
        return built

    async def run(self) -> None:
        """Refresh now and then every ``refresh`` seconds until cancelled; not now when a refresh was taken less
        than ``refresh`` seconds ago (the daemon's start-up makes one: a second one at once cost the portal's
        bucket another page of ``user.get`` per 50 users)."""
        if self.refreshed_at is not None:
            await asyncio.sleep(max(0.0, self.refreshed_at + self.refresh_interval - self._clock()))
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # a bug must not stop the loop that keeps the map fresh
                log.error("directory.stale", reason="unexpected error", error=repr(exc))
            await asyncio.sleep(self.refresh_interval)

    # --- availability ------------------------------------------------------------------------------

    async def crm_availability(self, ext: str) -> Availability | None:
        """What Bitrix24 holds against the agent right now (ABSENT, NOT_CLOCKED_IN), or None."""
        return (await self.availability([ext])).get(ext)

    async def availability(self, exts: Iterable[str]) -> dict[str, Availability]:
        """CRM-side availability of several extensions (only those with something against them)."""
        users = {ext: uid for ext in exts if (uid := self.user_for(ext)) is not None}
        now = self._clock()
        stale = sorted({uid for uid in users.values() if self._availability.get(uid, (0.0, None))[0] <= now})
        size = USERS_PER_BATCH if self._time_tracking or self._online.enabled else USERS_PER_ABSENCE_CHECK
        for start in range(0, len(stale), size):
            await self._fetch(stale[start : start + size])
        facts = {ext: self._availability.get(uid, (0.0, None))[1] for ext, uid in users.items()}
        return {ext: fact for ext, fact in facts.items() if fact is not None}

    async def _fetch(self, user_ids: list[int]) -> None:
        day = self._today().isoformat()
        commands: dict[str, tuple[str, Mapping[str, Any]]] = {
            "absence": ("calendar.accessibility.get", {"users": user_ids, "from": day, "to": day})
        }
        if self._time_tracking:
            commands.update({f"timeman_{uid}": ("timeman.status", {"USER_ID": uid}) for uid in user_ids})
        commands.update(self._online.command(user_ids))
        try:
            answer = await self.telephony.client.batch(commands)
        except CrmError as exc:
            log.warning("directory.availability_failed", code=exc.code, users=len(user_ids))
            self._forget_offline(user_ids, f"Bitrix24 did not answer ({exc.code})")
            return  # keep what we had (even if expired): routing must not wait on Bitrix24
        absences = answer.results.get("absence")
        absences = absences if isinstance(absences, dict) else {}
        timeman_errors = [e for k, e in answer.errors.items() if k.startswith("timeman_")]
        offline = self._online.offline(user_ids, answer.results.get("online"), answer.errors.get("online"))
        expires = self._clock() + self.availability_ttl
        for uid in user_ids:
            fact: Availability | None = None
            events = absences.get(str(uid))
            status = answer.results.get(f"timeman_{uid}")
            if isinstance(events, list) and any(
                isinstance(e, dict) and str(e.get("ACCESSIBILITY") or "").lower() == "absent" for e in events
            ):
                fact = Availability.ABSENT
            elif isinstance(status, dict) and str(status.get("STATUS") or "") not in CLOCKED_IN:
                fact = Availability.NOT_CLOCKED_IN
            elif uid in offline:
                fact = Availability.OFFLINE
            self._availability[uid] = (expires, fact)
        if self._time_tracking and timeman_errors and all(e.code in _NO_TIMEMAN for e in timeman_errors):
            self._time_tracking = False
            log.info(
                "directory.time_tracking_off", reason="timeman.status is not available", code=timeman_errors[0].code
            )

    def _forget_offline(self, user_ids: list[int], why: str) -> None:
        """Bitrix24 did not answer: an agent it showed offline before is no longer skipped for that."""
        if not self._online.enabled:
            return
        for uid in user_ids:
            expires, fact = self._availability.get(uid, (0.0, None))
            if fact is Availability.OFFLINE:
                self._availability[uid] = (expires, None)
        self._online.unknown(f"{why}: nobody is skipped as offline until it answers", "UNREACHABLE")
