"""Checked reads out of wire data (ARI JSON dicts, AMI header dicts) that raise one exception type.

A translator catches :class:`Malformed` and turns it into ``BadInput(reason)``; nothing else escapes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

INTEGER_TEXT = re.compile(r"-?[0-9]{1,19}")
"""Decimal text as Asterisk writes numbers: ASCII digits only (``str.isdigit`` also takes ``²`` and ``٣``)."""

AmiMessage = Mapping[str, "str | list[str]"]
"""An AMI message as panoramisk parses it: header -> value, a list when the header repeats."""


class Malformed(Exception):
    """The message lacks a field we need or has it with the wrong type."""


def text(data: Mapping[str, Any], key: str) -> str:
    """A required non-empty string field."""
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise Malformed(f"{key} missing or not a string")
    return value


def optional_text(data: Mapping[str, Any], key: str) -> str:
    """A string field that may be absent (""), but is a string when present."""
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Malformed(f"{key} is not a string")
    return value


def mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise Malformed(f"{key} missing or not an object")
    return value


def optional_mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise Malformed(f"{key} is not an object")
    return value


def optional_int(data: Mapping[str, Any], key: str) -> int | None:
    """An integer field given as a JSON number or as decimal text (AMI); None when absent or empty."""
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Malformed(f"{key} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and INTEGER_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    raise Malformed(f"{key} is not an integer")


def optional_number(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key)
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(f"{key} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise Malformed(f"{key} is out of range") from None
    if not math.isfinite(number):
        raise Malformed(f"{key} is not a finite number")
    return number


def string_list(data: Mapping[str, Any], key: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise Malformed(f"{key} is not a list of strings")
    for item in value:  # a loop, not all() over a generator: a Python call for each item
        if not isinstance(item, str):
            raise Malformed(f"{key} is not a list of strings")
    return list(value)


def header(message: AmiMessage, key: str) -> str:
    """A required AMI header; a repeated header is malformed where one value is expected."""
    value = message.get(key)
    if isinstance(value, list):
        raise Malformed(f"{key} repeated")
    if not value:
        raise Malformed(f"{key} missing")
    return value


def optional_header(message: AmiMessage, key: str) -> str:
    value = message.get(key, "")
    if isinstance(value, list):
        raise Malformed(f"{key} repeated")
    return value or ""
