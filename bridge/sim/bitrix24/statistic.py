"""``voximplant.statistic.get``: the statistics table with Bitrix24 filters, sorting and paging, as the caller's
"Call statistics — View" permission lets them see it (CORE-VOX ``vi_rest.php statisticGet``): no permission is
403 ``ACCESS_DENIED`` "Access denied!"; ``own`` / ``department`` show only the rows whose PORTAL_USER_ID is the
caller / a colleague (added to the caller's filter, so a filter on an unseen user finds nothing); ``all`` shows
every row."""

from __future__ import annotations

from typing import Any

from bridge.sim.bitrix24 import filters
from bridge.sim.bitrix24.calls import CallRegistry
from bridge.sim.bitrix24.context import Caller, MethodSpec, Reply
from bridge.sim.bitrix24.directory import Directory
from bridge.sim.bitrix24.errors import access_denied
from bridge.sim.bitrix24.params import Params, to_str

STAT_FIELDS = (
    "ID",
    "CALL_ID",
    "EXTERNAL_CALL_ID",
    "CALL_CATEGORY",
    "PORTAL_USER_ID",
    "PORTAL_NUMBER",
    "PHONE_NUMBER",
    "CALL_TYPE",
    "CALL_DURATION",
    "CALL_START_DATE",
    "CALL_LOG",
    "CALL_RECORD_URL",
    "CALL_VOTE",
    "COST",
    "COST_CURRENCY",
    "CALL_FAILED_CODE",
    "CALL_FAILED_REASON",
    "CRM_ENTITY_TYPE",
    "CRM_ENTITY_ID",
    "CRM_ACTIVITY_ID",
    "REST_APP_ID",
    "REST_APP_NAME",
    "TRANSCRIPT_ID",
    "TRANSCRIPT_PENDING",
    "SESSION_ID",
    "REDIAL_ATTEMPT",
    "COMMENT",
    "RECORD_DURATION",
    "RECORD_FILE_ID",
)
_AS_STRINGS = (
    "ID",
    "PORTAL_USER_ID",
    "CALL_DURATION",
    "CALL_VOTE",
    "CRM_ENTITY_ID",
    "CRM_ACTIVITY_ID",
    "REST_APP_ID",
    "TRANSCRIPT_ID",
    "CALL_TYPE",
)


def statistic_row(stat: dict[str, Any]) -> dict[str, Any]:
    """A statistics row as ``voximplant.statistic.get`` prints it: numbers as strings, COST with 4 places."""
    row = {name: stat.get(name) for name in STAT_FIELDS}
    for name in _AS_STRINGS:
        if row[name] is not None:
            row[name] = str(row[name])
    row["COST"] = f"{float(stat.get('COST') or 0):.4f}"
    return row


class Statistic:
    def __init__(self, calls: CallRegistry, directory: Directory) -> None:
        self._calls = calls
        self._directory = directory

    def methods(self) -> list[MethodSpec]:
        return [MethodSpec("voximplant.statistic.get", self._get)]

    async def _get(self, caller: Caller, params: Params) -> Reply:
        view = self._directory.statistics_view(caller.user_id)
        if view == "none":
            raise access_denied()
        allowed = {caller.user_id} if view == "own" else self._directory.colleagues(caller.user_id)
        stats = self._calls.statistics()
        if view != "all":
            stats = [stat for stat in stats if stat.get("PORTAL_USER_ID") in allowed]
        rows = [statistic_row(stat) for stat in stats]
        criteria = params.get("FILTER")
        if isinstance(criteria, dict):
            rows = [row for row in rows if filters.matches(row, criteria, STAT_FIELDS)]
        sort_field = to_str(params.get("SORT")).upper()
        if sort_field in STAT_FIELDS:
            rows = filters.sort_rows(rows, sort_field, to_str(params.get("ORDER")).upper() == "DESC")
        chunk, total, following = filters.page(rows, params.get("START"))
        return Reply(chunk, total, following)
