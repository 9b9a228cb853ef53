"""Keep the Bitrix24 simulator's statistics lookup from growing with its history (test equipment only).

The simulator answers ``voximplant.statistic.get`` by formatting and filtering every finished call, so each
lookup costs O(calls) and a 10,000-call replay spends most of its time inside the simulator rather than in the
bridge. The delivery asks with ``FILTER[EXTERNAL_CALL_ID]=<leg>``; for exactly that shape (a plain string that is
neither a number nor a date, which the simulator's filter compares case-insensitively) this answers from an index
of the same records, then applies the simulator's own filter, sort and paging, so the reply is identical. Any
other query goes to the simulator's handler unchanged.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from bridge.sim.bitrix24 import Bitrix24Simulator, filters
from bridge.sim.bitrix24.context import Caller, Reply
from bridge.sim.bitrix24.params import to_str
from bridge.sim.bitrix24.statistic import STAT_FIELDS, statistic_row

STATISTIC_GET = "voximplant.statistic.get"

Handler = Callable[[Caller, Any], Awaitable[Reply]]


def indexed_key(criteria: Any) -> str | None:
    """The casefolded leg when ``criteria`` is ``{"EXTERNAL_CALL_ID": <plain string>}``; None otherwise."""
    if not isinstance(criteria, dict) or len(criteria) != 1:
        return None
    ((key, value),) = criteria.items()
    if str(key).upper() != "EXTERNAL_CALL_ID" or not isinstance(value, str) or not value:
        return None
    if filters._number(value) is not None or filters._date(value) is not None:
        return None
    return value.casefold()


class StatisticIndex:
    def __init__(self, sim: Bitrix24Simulator, fallback: Handler) -> None:
        self.calls = sim.core.calls.calls
        self.fallback = fallback
        self._by_leg: dict[str, list[Any]] = {}
        self._indexed = 0

    def _refresh(self) -> None:
        """Index the calls registered since the last look (the registry only grows, in insertion order)."""
        if len(self.calls) < self._indexed:  # the simulator was reset
            self._by_leg, self._indexed = {}, 0
        for call in itertools.islice(self.calls.values(), self._indexed, None):
            if call.external_call_id:
                self._by_leg.setdefault(str(call.external_call_id).casefold(), []).append(call)
        self._indexed = len(self.calls)

    async def handle(self, caller: Caller, params: Any) -> Reply:
        criteria = params.get("FILTER")
        leg = indexed_key(criteria)
        if leg is None:
            return await self.fallback(caller, params)
        self._refresh()
        found = [c.statistic for c in self._by_leg.get(leg, []) if c.statistic is not None]
        rows = [row for row in map(statistic_row, found) if filters.matches(row, criteria, STAT_FIELDS)]
        sort_field = to_str(params.get("SORT")).upper()
        if sort_field in STAT_FIELDS:
            rows = filters.sort_rows(rows, sort_field, to_str(params.get("ORDER")).upper() == "DESC")
        chunk, total, following = filters.page(rows, params.get("START"))
        return Reply(chunk, total, following)


def index_statistics(sim: Bitrix24Simulator) -> None:
    """Install the index on ``sim`` (idempotent per simulator)."""
    methods = sim.core.methods
    spec = methods[STATISTIC_GET]
    if isinstance(getattr(spec.handler, "__self__", None), StatisticIndex):
        return
    methods[STATISTIC_GET] = dataclasses.replace(spec, handler=StatisticIndex(sim, spec.handler).handle)
