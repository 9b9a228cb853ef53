"""Request parameters as PHP sees them: bracket-nested keys, upper-cased top level, loose scalars.

``FILTER[EXTERNAL_CALL_ID]=x&USER_ID[]=1&USER_ID[]=2`` becomes
``{"FILTER": {"EXTERNAL_CALL_ID": "x"}, "USER_ID": ["1", "2"]}``; a PHP array whose keys are exactly
``0..n-1`` becomes a list, as ``json_encode`` would print it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

Params = dict[str, Any]

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT_RE = re.compile(r"\[([^\[\]]*)\]")


def _split_key(key: str) -> list[str]:
    match = _KEY_RE.match(key)
    if match is None:
        return [key]
    base, rest = match.groups()
    return [base, *_SEGMENT_RE.findall(rest)]


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {key: _listify(item) for key, item in value.items()}
    if converted and list(converted) == [str(index) for index in range(len(converted))]:
        return list(converted.values())
    return converted


def nest_pairs(pairs: Iterable[tuple[str, str]]) -> Params:
    """Nest ``a[b][]=v`` style pairs the way PHP fills ``$_REQUEST``; later pairs win."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        path = _split_key(key)
        node = root
        for depth, segment in enumerate(path):
            last = depth == len(path) - 1
            if segment == "":
                segment = str(sum(1 for existing in node if existing.isdigit()))
            if last:
                node[segment] = value
            else:
                child = node.get(segment)
                if not isinstance(child, dict):
                    child = {}
                    node[segment] = child
                node = child
    return {key: _listify(value) for key, value in root.items()}


def parse_query(query: str) -> Params:
    return nest_pairs(parse_qsl(query, keep_blank_values=True))


def upper_keys(params: Mapping[str, Any]) -> Params:
    """Bitrix24 method code upper-cases top-level keys (``array_change_key_case``)."""
    return {str(key).upper(): value for key, value in params.items()}


def as_list(value: Any) -> list[Any]:
    """A PHP array (list or map) or a scalar as a list of its values."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return [value]


def to_int(value: Any, default: int = 0) -> int:
    """PHP ``(int)`` for the values a client may send: ``"12"``, ``12``, ``12.0``, ``True``; junk -> default."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        match = re.match(r"^\s*([+-]?\d+)", value)
        if match:
            return int(match.group(1))
    return default


def to_str(value: Any) -> str:
    """Scalars as PHP prints them (``true`` -> ``"1"``, ``None`` -> ``""``); containers -> ``""``."""
    if value is None or isinstance(value, dict | list):
        return ""
    if isinstance(value, bool):
        return "1" if value else ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def is_set(params: Mapping[str, Any], key: str) -> bool:
    """PHP ``!empty($params[key])``: present and not ``""``, ``"0"``, ``0``, ``None`` or empty."""
    value = params.get(key)
    return value not in (None, "", "0", 0, False, [], {})


def flag(params: Mapping[str, Any], key: str, default: bool) -> bool:
    """A 0/1 (or Y/N, true/false) parameter with a default."""
    if key not in params or params[key] is None or params[key] == "":
        return default
    value = params[key]
    if isinstance(value, str):
        return value.strip().upper() not in ("0", "N", "FALSE", "NO")
    return bool(value)
