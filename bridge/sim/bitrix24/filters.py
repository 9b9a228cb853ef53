"""Bitrix24 list filters (``{">=CALL_START_DATE": ..., "!ID": [1, 2]}``), sorting and 50-row paging."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from bridge.sim.bitrix24.params import as_list, to_int
from bridge.sim.bitrix24.timefmt import parse_iso

PAGE_SIZE = 50

# Longest prefixes first so that ">=" is not read as ">".
_OPERATORS = ("!><", "><", ">=", "<=", "!=", "!%", "=%", "%=", "!@", ">", "<", "=", "!", "%", "@", "?")
_TRUE = {"Y", "1", "TRUE", "YES"}
_FALSE = {"N", "0", "FALSE", "NO", ""}


def split_operator(key: str) -> tuple[str, str]:
    for operator in _OPERATORS:
        if key.startswith(operator):
            return operator, key[len(operator) :]
    return "=", key


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().upper()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _date(value: Any) -> datetime | None:
    if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-":
        return parse_iso(value if "T" in value or " " in value else value + "T00:00:00")
    return None


def _compare(left: Any, right: Any) -> int | None:
    """-1/0/1 between a row value and a filter value; None when they cannot be compared."""
    if isinstance(left, bool) or isinstance(right, bool):
        lb, rb = _as_bool(left), _as_bool(right)
        return None if lb is None or rb is None else (lb > rb) - (lb < rb)
    ln, rn = _number(left), _number(right)
    if ln is not None and rn is not None:
        return (ln > rn) - (ln < rn)
    ld, rd = _date(left), _date(right)
    if ld is not None and rd is not None:
        return (ld > rd) - (ld < rd)
    if left is None or right is None:
        return 0 if left == right or (left in (None, "") and right in (None, "")) else None
    ls, rs = str(left).casefold(), str(right).casefold()
    return (ls > rs) - (ls < rs)


def _matches_one(operator: str, actual: Any, expected: Any) -> bool:
    values = as_list(expected) if isinstance(expected, list | dict) else [expected]
    if isinstance(actual, list):  # multi-value fields such as UF_DEPARTMENT
        return any(_matches_one(operator, item, expected) for item in actual) if actual else False
    if operator in ("=", "@", "?"):
        return any(_compare(actual, value) == 0 for value in values)
    if operator in ("!", "!=", "!@"):
        return all(_compare(actual, value) != 0 for value in values)
    if operator in ("%", "=%", "%=", "!%"):
        found = any(str(value).casefold() in str(actual or "").casefold() for value in values)
        return not found if operator == "!%" else found
    if operator in ("><", "!><"):
        if len(values) != 2:
            return operator == "!><"
        low, high = _compare(actual, values[0]), _compare(actual, values[1])
        inside = low is not None and high is not None and low >= 0 and high <= 0
        return inside if operator == "><" else not inside
    result = _compare(actual, values[0]) if values else None
    if result is None:
        return False
    return {">": result > 0, "<": result < 0, ">=": result >= 0, "<=": result <= 0}[operator]


def matches(row: Mapping[str, Any], criteria: Mapping[str, Any], fields: Iterable[str] | None = None) -> bool:
    """True when ``row`` satisfies every criterion; keys outside ``fields`` (if given) are ignored,
    as Bitrix24 ignores unknown filter fields."""
    allowed = None if fields is None else {name.upper() for name in fields}
    for key, expected in criteria.items():
        operator, name = split_operator(str(key))
        name = name.upper()
        if allowed is not None and name not in allowed:
            continue
        if not _matches_one(operator, row.get(name), expected):
            return False
    return True


def sort_rows(rows: list[dict[str, Any]], field: str, descending: bool = False) -> list[dict[str, Any]]:
    def key(row: dict[str, Any]) -> tuple[int, float, str]:
        value = row.get(field)
        number = _number(value)
        return (0, number, "") if number is not None else (1, 0.0, str(value or ""))

    return sorted(rows, key=key, reverse=descending)


def page(rows: list[dict[str, Any]], start: Any) -> tuple[list[dict[str, Any]], int, int | None]:
    """One page of 50 from ``start``: (rows, total, next-or-None)."""
    offset = max(0, to_int(start, 0))
    chunk = rows[offset : offset + PAGE_SIZE]
    following = offset + PAGE_SIZE
    return chunk, len(rows), following if following < len(rows) else None
