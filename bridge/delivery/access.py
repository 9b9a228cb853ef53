"""How much of Bitrix24's call statistics the app user sees, so whether "not in the statistics" means "not there".

``voximplant.statistic.get`` needs the telephony permission "Call statistics — View" and lists only the calls of
the users that permission covers (CORE-VOX ``vi_rest.php statisticGet`` with ``Security\\Helper``): without it the
answer is 403 ``ACCESS_DENIED``; at "own" it lists the app user's calls, at "department" those of the app user's
colleagues and subordinates, at "all" every call. The rest looks exactly like "no such call". Portal admins hold
every permission at its highest level (``RoleManager::getUserPermissions``); a fresh portal gives every other
employee "own" (``Helper::getDefaultRoleAccess``). REST shows neither roles nor levels, so the bridge learns:

* ``profile`` says ``ADMIN``: every call is seen (:data:`ALL`);
* a statistics query answers ``ACCESS_DENIED``: none is (:data:`DENIED`);
* otherwise some are (:data:`LIMITED`): the app user's own calls, and the calls of a user the statistics have
  listed at least one call of (the portal never lists a call of a user it hides): those of the latest 50 calls
  at start, and of a query filtered by ``PORTAL_USER_ID`` (it finds that user's calls only when they are visible).

A check of a call is trusted only when the user its ``finish`` names is seen: ``finish`` writes the statistics
row under that user (``PORTAL_USER_ID``). A doubtful call whose check cannot be trusted is parked, not resent.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from bridge.crm.client import MAX_BATCH, Bitrix24Client
from bridge.crm.envelope import as_int, rows_of
from bridge.crm.errors import CrmError
from bridge.delivery.plan import Chain
from bridge.domain.commands import CrmFinish

log = structlog.get_logger(__name__)

STATISTIC_GET = "voximplant.statistic.get"
UNKNOWN, ALL, LIMITED, DENIED = "unknown", "all", "limited", "denied"
PROBE_LEG = "b24-bridge-access-probe"
"""An EXTERNAL_CALL_ID no call has: the probe only wants to know whether the query is allowed."""
PERMISSION = "Call statistics — View"
DENIED_ERROR = "ACCESS_DENIED"


class StatisticsAccess:
    """What the app user sees in the statistics; :meth:`learn` once (and again after ``ACCESS_DENIED``)."""

    def __init__(self) -> None:
        self.level = UNKNOWN
        self.app_user: int | None = None
        self.seen: set[int] = set()
        """Users (besides the app user) whose calls the statistics have been seen to list."""

    async def learn(self, client: Bitrix24Client) -> str:
        """Ask ``profile`` and try one statistics query (one request); raises CrmError when it could not ask."""
        batch = await client.batch(
            {
                "me": ("profile", {}),
                "probe": (STATISTIC_GET, {"FILTER": {"EXTERNAL_CALL_ID": PROBE_LEG}}),
                "recent": (STATISTIC_GET, {"SORT": "ID", "ORDER": "DESC"}),
            }
        )
        if "me" not in batch.results:
            raise batch.errors.get("me") or CrmError("profile", "", "no answer")
        me = batch.results["me"]
        me = me if isinstance(me, dict) else {}
        self.app_user = as_int(me.get("ID"))
        denied = batch.errors.get("probe")
        if denied is not None and denied.code != DENIED_ERROR:
            raise denied
        before = self.level
        if denied is not None:
            self.level = DENIED
        elif me.get("ADMIN") is True:
            self.level = ALL
        else:
            self.level = LIMITED
        self._saw(batch.results.get("recent"))
        if self.level != before:
            self._log()
        return self.level

    def _saw(self, result: object) -> None:
        """Every user a listed call is under is seen."""
        self.seen |= {user for row in rows_of(result) if (user := as_int(row.get("PORTAL_USER_ID"))) is not None}

    async def ensure(self, client: Bitrix24Client) -> str:
        """The level, learning it first while it is unknown."""
        if self.level == UNKNOWN:
            await self.learn(client)
        return self.level

    def denied(self) -> None:
        """A statistics query was refused with ``ACCESS_DENIED`` (the permission was taken away meanwhile)."""
        if self.level != DENIED:
            self.level = DENIED
            self._log()

    def trusted(self, users: Iterable[int]) -> bool:
        """Whether "absent" from the statistics is the truth for a call whose finish named ``users``."""
        if self.level == ALL:
            return True
        return self.level == LIMITED and not self.unseen(users)

    def unseen(self, users: Iterable[int]) -> set[int]:
        """Of ``users``, those whose calls the statistics may hide (every one at ``denied`` or ``unknown``)."""
        wanted = {u for u in users if u}
        if self.level == ALL:
            return set()
        if self.level == LIMITED:
            return wanted - self.seen - {self.app_user}
        return wanted

    async def look_for(self, client: Bitrix24Client, users: Iterable[int]) -> None:
        """At ``limited``: ask the statistics for a call of each unseen user (one batch per 50), to prove that the
        app user sees their calls. A user with no finished call yet stays unseen."""
        wanted = sorted(self.unseen(users)) if self.level == LIMITED else []
        for start in range(0, len(wanted), MAX_BATCH):
            part = wanted[start : start + MAX_BATCH]
            batch = await client.batch({f"u{u}": (STATISTIC_GET, {"FILTER": {"PORTAL_USER_ID": u}}) for u in part})
            for user in part:
                self._saw(batch.results.get(f"u{user}"))
            if any(error.code == DENIED_ERROR for error in batch.errors.values()):
                self.denied()
                return

    def reason(self, users: Iterable[int]) -> str:
        """Why a doubtful call with these finish users is parked (for the journal and ``crm.failed``)."""
        who = f"the app user (id {self.app_user})" if self.app_user else "the app user"
        hidden = ", ".join(str(u) for u in sorted(self.unseen(users))) or "?"
        if self.level == LIMITED:
            why = f"{who} is not a portal admin and no call of user {hidden} is visible to it in the statistics"
        else:
            why = f"{who} lacks the permission '{PERMISSION}' (voximplant.statistic.get: ACCESS_DENIED)"
        return (
            f"parked: it may already be in Bitrix24 and the statistics cannot tell ({why}); "
            "grant the permission and run `b24-bridge replay`, or check Bitrix24 and run `b24-bridge replay --force`"
        )

    def _log(self) -> None:
        fields = {"level": self.level, "app_user": self.app_user}
        if self.level == ALL:
            log.info("crm.statistics_access", **fields, note="the app user is a portal admin: every call is seen")
        elif self.level == LIMITED:
            log.warning("crm.statistics_access", **fields,
                        note="not a portal admin: voximplant.statistic.get may list only some users' calls; a doubtful "
                             "call of a user not seen there is parked, not resent")  # fmt: skip
        else:
            log.error("crm.statistics_access", **fields, permission=PERMISSION,
                      note="voximplant.statistic.get is denied: doubtful calls are parked, not resent")  # fmt: skip


def finish_users(chain: Chain, *, sent_only: bool = True) -> set[int]:
    """The users a statistics row of ``chain``'s call would be under: those its finish names (``sent_only``: a
    finish that may have been sent)."""
    users: set[int] = set()
    for op in chain.ops:
        if op.kind == "finish" and (op.attempts > 0 or not sent_only):
            try:
                cmd = op.command
            except ValueError:
                continue
            if isinstance(cmd, CrmFinish):
                users.add(cmd.user_id)
    return users
