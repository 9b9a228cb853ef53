"""Has a call already reached Bitrix24? ``voximplant.statistic.get`` filtered by ``EXTERNAL_CALL_ID``.

Only finished calls are in the statistics, which is exactly what matters: a ``finish`` must never be sent
twice, and an offline call must not be mirrored twice. (A register whose answer was lost on a call that is
still active is not visible here; resending it is safe, the portal's dedup returns the same CALL_ID.)

A check is one command: the delivery puts it into the same ``batch`` as operations that need none (see
:mod:`bridge.delivery.sending`). Whether a row that is not there can be trusted depends on what the app user may
see (:mod:`bridge.delivery.access`).
"""

from __future__ import annotations

from typing import Any

import aiohttp

from bridge.crm.envelope import rows_of
from bridge.crm.errors import CrmError, TransientCrmError
from bridge.crm.http11 import CannotConnect

STATISTIC_GET = "voximplant.statistic.get"


def statistics_command(leg: str) -> tuple[str, dict[str, Any]]:
    """The batch command that looks ``leg`` up."""
    return STATISTIC_GET, {"FILTER": {"EXTERNAL_CALL_ID": leg}}


def statistics_row(result: Any, leg: str) -> dict[str, Any] | None:
    """``leg``'s row in a ``voximplant.statistic.get`` result, or None when Bitrix24 has no finished call by it."""
    rows = [r for r in rows_of(result) if str(r.get("EXTERNAL_CALL_ID") or "") == leg]
    return rows[0] if rows else None


def never_left(error: CrmError) -> bool:
    """The request provably never reached Bitrix24, so nothing in it can have been carried out: the connection
    could not even be made (refused, no route, DNS, TLS handshake), or the portal's rate limit turned the request
    away before running any of it (503 ``QUERY_LIMIT_EXCEEDED``). A timeout or a dropped connection is not that."""
    if isinstance(error, TransientCrmError) and error.query_limit:
        return True
    return isinstance(error.__cause__, CannotConnect | aiohttp.ClientConnectorError)
