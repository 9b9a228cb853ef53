"""Whom Bitrix24 shows offline (``employees.require_online``), from ``user.get``'s ``IS_ONLINE`` and
``LAST_ACTIVITY_DATE``, read in the directory's availability batch.

Offline is ``IS_ONLINE`` = N, or a last activity older than ``online_minutes``. When Bitrix24 cannot say (the portal
is unreachable, or the app user may not read users) nobody is skipped as offline: a caller must still reach
someone, and an agent at a desk phone takes the call either way. That is logged once per episode
(``directory.online_unknown``, then ``directory.online_known``); without the ``user`` scope the check stays off until
a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog

from bridge.crm.envelope import as_int
from bridge.crm.errors import CrmError

log = structlog.get_logger(__name__)

NO_USERS = frozenset({"insufficient_scope", "ACCESS_DENIED", "INVALID_CREDENTIALS"})
"""``user.get`` refused for good: the app user may not read users (no ``user`` scope, or no right to)."""


class OnlineStatus:
    """The online check of one directory: on or off, and whether Bitrix24 could say the last time."""

    def __init__(self, enabled: bool, minutes: float, wall: Callable[[], datetime]) -> None:
        self.enabled = enabled
        """Ask ``user.get`` at all; turned off when the app user may not read users."""
        self._window = timedelta(minutes=minutes)
        self._wall = wall
        self._unknown = False
        """The last try could not learn who is online (logged once until it can again)."""

    def command(self, user_ids: list[int]) -> dict[str, tuple[str, Mapping[str, Any]]]:
        """The batch command that reads them (none when the check is off)."""
        return {"online": ("user.get", {"FILTER": {"@ID": user_ids}})} if self.enabled else {}

    def offline(self, user_ids: list[int], rows: Any, error: CrmError | None) -> set[int]:
        """Who of ``user_ids`` Bitrix24 shows offline, from the command's answer; empty when it cannot say."""
        if not self.enabled:
            return set()
        if error is not None or not isinstance(rows, list):
            code = error.code if error is not None else "ERROR_UNEXPECTED_ANSWER"
            if code in NO_USERS:
                self.enabled = False
                self.unknown(f"the app user may not read users ({code}): nobody is skipped as offline", code)
            else:
                self.unknown(f"user.get failed ({code}): nobody is skipped as offline until it answers", code)
            return set()
        if self._unknown:
            self._unknown = False
            log.info("directory.online_known", users=len(user_ids))
        oldest = self._wall() - self._window
        seen = {uid: row for row in rows if isinstance(row, dict) and (uid := as_int(row.get("ID"))) is not None}
        return {uid for uid in user_ids if uid in seen and not _online(seen[uid], oldest)}

    def unknown(self, reason: str, code: str) -> None:
        """Bitrix24 cannot say who is online now: logged once until it can again."""
        if not self._unknown:
            self._unknown = True
            log.warning("directory.online_unknown", reason=reason, code=code)


def _online(user: Mapping[str, Any], oldest: datetime) -> bool:
    """``IS_ONLINE`` = Y and, when Bitrix24 gives one, a last activity at ``oldest`` or later."""
    if str(user.get("IS_ONLINE") or "").upper() != "Y":
        return False
    last = _when(user.get("LAST_ACTIVITY_DATE"))
    return last is None or last >= oldest


def _when(value: Any) -> datetime | None:
    """Bitrix24's ``2026-12-07T10:15:30+03:00`` (the portal's zone); None for empty or junk, or without a zone."""
    try:
        moment = datetime.fromisoformat(str(value or ""))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
