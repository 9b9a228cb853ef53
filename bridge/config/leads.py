"""``[lead_distribution.<id>]`` tables -> :class:`~bridge.domain.scheme.LeadDistribution` (read by the routing parser,
which checks every extension, queue and schedule named here with the rest)."""

from __future__ import annotations

import re
from typing import Any

from bridge.config.grammar import Grammar, Problem, Ref
from bridge.domain.scheme import (
    OWNER,
    CrmField,
    FromSource,
    KnownClient,
    LeadCalls,
    LeadCondition,
    LeadDistribution,
    LeadField,
    LeadMode,
    LeadRule,
    OnLine,
    QueueGroup,
)

_KEYS = {"managers", "mode", "rules", "hours", "off_hours", "calls"}
FIELD_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
"""A lead field's name as crm.lead.get returns it: SOURCE_ID, UF_CRM_1700000000, UF_CRM_REGION."""


class LeadParser:
    def __init__(self, problem: Problem, grammar: Grammar, refs: list[Ref]) -> None:
        self.problem = problem
        self.grammar = grammar
        self.refs = refs

    def distribution(self, did: str, data: dict[str, Any], queues: dict[str, QueueGroup]) -> LeadDistribution:
        key = f"lead_distribution.{did}"
        for name in data:
            if name not in _KEYS:
                self.problem(f"{key}.{name}", "unknown key")
        managers = self._exts(f"{key}.managers", data.get("managers", []))
        mode = self._enum(f"{key}.mode", LeadMode, data.get("mode", "round_robin"))
        calls = self._enum(f"{key}.calls", LeadCalls, data.get("calls", "missed"))
        hours = str(data.get("hours", ""))
        if hours:
            self.refs.append((f"{key}.hours", "schedule", hours))
        off_hours = str(data.get("off_hours", OWNER))
        if off_hours != OWNER:
            self.refs.append((f"{key}.off_hours", "employee", off_hours))
        raw_rules = data.get("rules", [])
        if not isinstance(raw_rules, list):
            self.problem(f"{key}.rules", "must be a list of {when = ..., then = ...}")
            raw_rules = []
        rules = [r for i, raw in enumerate(raw_rules) if (r := self._rule(f"{key}.rules[{i}]", raw, queues))]
        if not managers and not rules:
            self.problem(f"{key}.managers", "must be a non-empty list of extensions (or give rules)")
        return LeadDistribution(
            id=did, managers=tuple(managers), mode=mode or LeadMode.ROUND_ROBIN, rules=tuple(rules), hours=hours,
            off_hours=off_hours, calls=calls or LeadCalls.MISSED,
        )  # fmt: skip

    def _rule(self, key: str, raw: Any, queues: dict[str, QueueGroup]) -> LeadRule | None:
        if not isinstance(raw, dict) or "then" not in raw:
            self.problem(key, "must be a table with `then` (and optionally `when`, `name`)")
            return None
        for name in raw:
            if name not in ("when", "then", "name"):
                self.problem(f"{key}.{name}", "unknown key")
        when = raw.get("when", [])
        texts = when if isinstance(when, list) else [when]
        conditions = [c for i, text in enumerate(texts) if (c := self._condition(f"{key}.when[{i}]", text))]
        target = str(raw["then"])
        kind, _, arg = target.partition(":")
        if kind == "employee" and arg:
            self.refs.append((f"{key}.then", "employee", arg))
            managers: tuple[str, ...] = (arg,)
        elif kind == "queue" and arg:
            self.refs.append((f"{key}.then", "queue", arg))
            managers = queues[arg].members if arg in queues else ()
        else:
            self.problem(f"{key}.then", f"must be employee:EXT or queue:ID, got {target!r}")
            return None
        return LeadRule(tuple(conditions), managers, str(raw.get("name", "")))

    def _condition(self, key: str, text: Any) -> LeadCondition | None:
        if isinstance(text, str):
            kind, _, arg = text.strip().partition(":")
            values = tuple(v.strip() for v in arg.split(",") if v.strip())
            if kind == "line" and values:
                for number in values:
                    self.refs.append((key, "line", number))
                return OnLine(values)
            if kind == "source" and values:
                return FromSource(values)
            if kind == "field":
                return self._field(key, arg)
        condition = self.grammar.condition(key, text)
        if isinstance(condition, KnownClient | CrmField):
            self.problem(key, "a lead is made only for an unknown caller: known, unknown and crm: cannot apply here")
            return None
        return condition

    def _field(self, key: str, arg: str) -> LeadField | None:
        """``field:NAME`` (filled in) or ``field:NAME=V1,V2`` (any of them; an enumeration's item IDs)."""
        name, eq, rest = (part.strip() for part in arg.partition("="))
        values = tuple(v.strip() for v in rest.split(",") if v.strip())
        if not FIELD_NAME.fullmatch(name):
            self.problem(key, f"field:NAME=VALUE needs the field's name as crm.lead.get spells it "
                              f"(SOURCE_ID, UF_CRM_REGION), got {name!r}")  # fmt: skip
            return None
        if eq and not values:
            self.problem(key, f"field:{name}= needs a value (or write field:{name} for a field filled in at all)")
            return None
        return LeadField(name, values)

    def _exts(self, key: str, values: Any) -> list[str]:
        if not isinstance(values, list):
            self.problem(key, "must be a list of extensions")
            return []
        exts = [str(v) for v in values]
        for ext in exts:
            self.refs.append((key, "employee", ext))
        if len(set(exts)) != len(exts):
            self.problem(key, "lists an extension twice")
        return exts

    def _enum(self, key: str, enum: Any, value: Any) -> Any:
        try:
            return enum(value)
        except ValueError:
            self.problem(key, f"must be one of {', '.join(m.value for m in enum)}, got {value!r}")
            return None
