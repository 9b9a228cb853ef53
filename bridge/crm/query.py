"""PHP ``http_build_query`` for the commands of a Bitrix24 ``batch``.

A batch command is ``"method?query"``; Bitrix24 splits it with ``parse_str``, so nested values are written the
PHP way: ``USER_ID[0]=11&USER_ID[1]=12``, ``fields[TITLE]=x``. Keys and values are URL-encoded like PHP's
``urlencode`` (space as ``+``), so a reference ``$result[reg][CALL_ID]`` travels as
``%24result%5Breg%5D%5BCALL_ID%5D``, exactly as the official batch example shows; the portal decodes it before
it substitutes the earlier command's result.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote_plus

_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch
"""What ``quote_plus`` leaves as it is (nearly every value: numbers, ids, codes)."""


def result_ref(key: str, field: str) -> str:
    """A reference to ``field`` of the result of batch command ``key``."""
    return f"$result[{key}][{field}]"


def _scalar(value: Any) -> str:
    if value is True:
        return "1"
    if value is False:
        return "0"
    return str(value)


def _pairs(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    if value is None:  # http_build_query drops NULL
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _pairs(f"{prefix}[{key}]", item)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _pairs(f"{prefix}[{index}]", item)
    else:
        yield prefix, _scalar(value)


@lru_cache(maxsize=1024)
def _quoted_key(key: str) -> str:
    """A parameter's name, URL-encoded (the same few names come back in every batch)."""
    return quote_plus(key)


def _quoted(value: str) -> str:
    return value if _PLAIN(value) else quote_plus(value)


def php_query(params: Mapping[str, Any]) -> str:
    """``http_build_query(params)``."""
    pairs = (pair for name, item in params.items() for pair in _pairs(str(name), item))
    return "&".join(f"{_quoted_key(key)}={_quoted(value)}" for key, value in pairs)


def batch_command(method: str, params: Mapping[str, Any]) -> str:
    """One ``cmd`` entry of a batch: ``method?query`` (``method?`` when there are no parameters)."""
    return f"{method}?{php_query(params)}"
