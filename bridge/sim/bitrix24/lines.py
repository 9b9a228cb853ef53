"""External lines (``telephony.externalLine.*``), kept per application as Bitrix24 does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.sim.bitrix24.context import Caller, MethodSpec, Reply
from bridge.sim.bitrix24.errors import RestError
from bridge.sim.bitrix24.params import Params, to_str


@dataclass
class Line:
    id: int
    number: str
    name: str
    crm_auto_create: str  # "Y" | "N"
    app_id: int | None

    def row(self) -> dict[str, Any]:
        return {"NUMBER": self.number, "NAME": self.name, "CRM_AUTO_CREATE": self.crm_auto_create}


def _yes_no(value: Any) -> str:
    """CORE-VOX: anything but ``'Y'`` becomes ``'N'``."""
    return "Y" if to_str(value) == "Y" else "N"


class LineRegistry:
    def __init__(self) -> None:
        self.lines: dict[tuple[int | None, str], Line] = {}
        self._next_id = 1

    def find(self, app_id: int | None, number: str) -> Line | None:
        return self.lines.get((app_id, number))

    def add(self, app_id: int | None, number: str, name: str = "", crm_auto_create: str = "Y") -> Line:
        line = Line(self._next_id, number, name or number, crm_auto_create, app_id)
        self._next_id += 1
        self.lines[(app_id, number)] = line
        return line

    def ensure(self, app_id: int | None, number: str) -> Line:
        """``register`` with an unknown LINE_NUMBER silently creates the line (CORE-VOX)."""
        return self.find(app_id, number) or self.add(app_id, number)

    def for_app(self, app_id: int | None) -> list[Line]:
        return sorted((line for line in self.lines.values() if line.app_id == app_id), key=lambda line: line.id)

    def state(self) -> list[dict[str, Any]]:
        return [line.row() | {"ID": line.id, "APP_ID": line.app_id} for line in self.lines.values()]

    def methods(self) -> list[MethodSpec]:
        return [
            MethodSpec("telephony.externalLine.add", self._add, app_only=True),
            MethodSpec("telephony.externalLine.get", self._get, app_only=True),
            MethodSpec("telephony.externalLine.update", self._update, app_only=True),
            MethodSpec("telephony.externalLine.delete", self._delete, app_only=True),
        ]

    @staticmethod
    def _number(params: Params) -> str:
        number = to_str(params.get("NUMBER")).strip()
        if not number:
            raise RestError("NUMBER should not be empty")
        return number

    async def _add(self, caller: Caller, params: Params) -> Reply:
        number = self._number(params)
        if self.find(caller.app_id, number) is not None:
            raise RestError("Line already exists")
        auto = _yes_no(params["CRM_AUTO_CREATE"]) if "CRM_AUTO_CREATE" in params else "Y"
        line = self.add(caller.app_id, number, to_str(params.get("NAME")), auto)
        return Reply({"ID": line.id})

    async def _get(self, caller: Caller, params: Params) -> Reply:
        return Reply([line.row() for line in self.for_app(caller.app_id)])

    async def _update(self, caller: Caller, params: Params) -> Reply:
        number = self._number(params)
        if "NAME" not in params and "CRM_AUTO_CREATE" not in params:
            raise RestError("There are no fields to update")
        line = self.find(caller.app_id, number)
        if line is None:
            raise RestError(f"Could not find line with number {number}")
        if "NAME" in params:
            line.name = to_str(params["NAME"])
        if "CRM_AUTO_CREATE" in params:
            line.crm_auto_create = _yes_no(params["CRM_AUTO_CREATE"])
        return Reply({"ID": str(line.id)})

    async def _delete(self, caller: Caller, params: Params) -> Reply:
        number = self._number(params)
        if self.lines.pop((caller.app_id, number), None) is None:
            raise RestError(f"Could not find line with number {number}")
        return Reply([])
