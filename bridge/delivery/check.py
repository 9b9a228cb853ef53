"""Has a call already reached Bitrix24? ``voximplant.statistic.get`` filtered by ``EXTERNAL_CALL_ID``.

Only finished calls are in the statistics, which is exactly what matters: a ``finish`` must never be sent
twice, and an offline call must not be mirrored twice. (A register whose answer was lost on a call that is
still active is not visible here; resending it is safe, the portal's dedup returns the same CALL_ID.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.crm.client import MAX_BATCH, Bitrix24Client
from bridge.crm.envelope import rows_of

STATISTIC_GET = "voximplant.statistic.get"


async def find_in_statistics(client: Bitrix24Client, legs: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """For each leg: its statistics row, or None when Bitrix24 has no finished call with that EXTERNAL_CALL_ID.

    One ``batch`` per 50 legs. A leg whose own query failed is left out (unknown); a failed request raises
    :class:`~bridge.crm.errors.CrmError`.
    """
    found: dict[str, dict[str, Any] | None] = {}
    for start in range(0, len(legs), MAX_BATCH):
        part = list(legs[start : start + MAX_BATCH])
        commands = {f"st{i}": (STATISTIC_GET, {"FILTER": {"EXTERNAL_CALL_ID": leg}}) for i, leg in enumerate(part)}
        batch = await client.batch(commands)
        for i, leg in enumerate(part):
            key = f"st{i}"
            if key in batch.results:
                rows = [r for r in rows_of(batch.results[key]) if str(r.get("EXTERNAL_CALL_ID") or "") == leg]
                found[leg] = rows[0] if rows else None
    return found
