"""The offline event queue (``event_type=offline`` bindings) and ``event.offline.get/clear/list``."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.sim.bitrix24 import filters
from bridge.sim.bitrix24.context import Caller, MethodSpec, Reply
from bridge.sim.bitrix24.errors import RestError
from bridge.sim.bitrix24.params import Params, as_list, to_int, to_str
from bridge.sim.bitrix24.timefmt import iso

_FIELDS = ("ID", "TIMESTAMP_X", "EVENT_NAME", "MESSAGE_ID")


@dataclass
class OfflineRecord:
    id: int
    app_id: int | None
    event: str
    data: dict[str, Any]
    stamp: float
    key: str  # the object the event is about; the queue keeps its latest state only
    process_id: str | None = None

    def row(self) -> dict[str, Any]:
        return {
            "ID": str(self.id),
            "TIMESTAMP_X": iso(self.stamp),
            "EVENT_NAME": self.event,
            "EVENT_DATA": self.data,
            "EVENT_ADDITIONAL": [],
            "MESSAGE_ID": str(self.id),
        }


class OfflineQueue:
    def __init__(self, wall_clock: Callable[[], float], count: Callable[[str], None]) -> None:
        self._wall = wall_clock
        self._count = count
        self.records: list[OfflineRecord] = []
        self._ids = itertools.count(1)

    def state(self) -> list[dict[str, Any]]:
        return [record.row() | {"process_id": record.process_id} for record in self.records]

    def enqueue(self, app_id: int | None, event: str, data: dict[str, Any], key: str) -> None:
        for record in self.records:
            if record.app_id == app_id and record.key == key and record.event == event and record.process_id is None:
                record.data, record.stamp = dict(data), self._wall()
                return
        self.records.append(OfflineRecord(next(self._ids), app_id, event, dict(data), self._wall(), key))
        self._count("events_queued")

    def methods(self) -> list[MethodSpec]:
        return [
            MethodSpec("event.offline.get", self._get, oauth_only=True),
            MethodSpec("event.offline.clear", self._clear, oauth_only=True),
            MethodSpec("event.offline.list", self._list, oauth_only=True),
        ]

    def _select(self, caller: Caller, params: Params) -> list[OfflineRecord]:
        records = [r for r in self.records if r.app_id == caller.app_id]
        criteria = params.get("FILTER")
        if isinstance(criteria, dict):
            records = [r for r in records if filters.matches(r.row(), criteria, _FIELDS)]
        order = params.get("ORDER")
        by_stamp = True
        descending = False
        if isinstance(order, dict) and order:
            name, direction = next(iter(order.items()))
            by_stamp = str(name).upper() == "TIMESTAMP_X"
            descending = to_str(direction).upper() == "DESC"
        records.sort(key=lambda r: (r.stamp, r.id) if by_stamp else (float(r.id), r.id), reverse=descending)
        return records

    async def _get(self, caller: Caller, params: Params) -> Reply:
        """Parallel pollers get distinct records: ``clear=0`` hides the batch under a ``process_id``."""
        wanted_process = to_str(params.get("PROCESS_ID")) or None
        limit = max(1, to_int(params.get("LIMIT"), 50))
        clear = to_int(params.get("CLEAR"), 1) != 0
        taken = [r for r in self._select(caller, params) if r.process_id == wanted_process][:limit]
        process_id: str | None = None
        if clear:
            self.records = [r for r in self.records if r not in taken]
        else:
            process_id = wanted_process or secrets.token_hex(16)
            for record in taken:
                record.process_id = process_id
        return Reply({"process_id": process_id, "events": [r.row() for r in taken]})

    async def _clear(self, caller: Caller, params: Params) -> Reply:
        process_id = to_str(params.get("PROCESS_ID"))
        if not process_id:
            raise RestError("Argument 'PROCESS_ID' is null or empty", "ERROR_ARGUMENT", 400)
        ids = {to_int(v) for key in ("ID", "MESSAGE_ID") for v in as_list(params.get(key)) if to_str(v)}
        self.records = [
            r
            for r in self.records
            if not (r.app_id == caller.app_id and r.process_id == process_id and (not ids or r.id in ids))
        ]
        return Reply(True)

    async def _list(self, caller: Caller, params: Params) -> Reply:
        rows = [r.row() | {"PROCESS_ID": r.process_id or "", "ERROR": 0} for r in self._select(caller, params)]
        chunk, total, following = filters.page(rows, params.get("START"))
        return Reply(chunk, total, following)
