"""PHP ``http_build_query`` for the commands of a Bitrix24 ``batch``.

A batch command is ``"method?query"``; Bitrix24 splits it with ``parse_str``, so nested values are written the
PHP way: ``USER_ID[0]=11&USER_ID[1]=12``, ``fields[TITLE]=x``. Keys and values are URL-encoded like PHP's
``urlencode`` (space as ``+``), so a reference ``$result[reg][CALL_ID]`` travels as
``%24result%5Breg%5D%5BCALL_ID%5D``, exactly as the official batch example shows; the portal decodes it before
it substitutes the earlier command's result.

Every batch of the delivery goes through here, so the common shapes take short cuts that give the same text as
:func:`urllib.parse.quote_plus` (a Hypothesis test holds the two side by side): an ``int`` is never quoted, an
ASCII string is quoted with one :meth:`str.translate`, and only other text goes through ``quote_plus``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote_plus

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
"""What ``quote_plus`` leaves as it is."""
_ASCII = str.maketrans({c: "+" if c == 0x20 else f"%{c:02X}" for c in range(128) if c not in _SAFE})
"""``quote_plus`` of an ASCII character, as a translation table."""


def result_ref(key: str, field: str) -> str:
    """A reference to ``field`` of the result of batch command ``key``."""
    return f"$result[{key}][{field}]"


@lru_cache(maxsize=1024)
def _quoted_key(key: str) -> str:
    """A parameter's name, URL-encoded (the same few names come back in every batch)."""
    return quote_plus(key)


def php_query(params: Mapping[str, Any]) -> str:
    """``http_build_query(params)``.

    One function for the whole query: nested parameters are walked depth first on a stack of their own, and each
    value is quoted where it is met, instead of a call per parameter and per value (~6 Python calls a batch
    command, 2 with these: every batch the delivery sends)."""
    out: list[str] = []
    stack: list[tuple[str, Any]] = []
    for name, item in params.items():
        stack.append((str(name), item))
    stack.reverse()
    while stack:
        name, value = stack.pop()
        kind = type(value)
        if kind is str:
            out.append(f"{_quoted_key(name)}={value.translate(_ASCII) if value.isascii() else quote_plus(value)}")
        elif kind is int:  # digits and a sign: nothing to quote
            out.append(f"{_quoted_key(name)}={value}")
        elif value is None:  # http_build_query drops NULL
            continue
        elif kind is dict or isinstance(value, Mapping):
            nested = list(value.items())
            for index in range(len(nested) - 1, -1, -1):  # pushed last first: popped in their order
                key, item = nested[index]
                stack.append((f"{name}[{key}]", item))
        elif isinstance(value, list | tuple):
            for index in range(len(value) - 1, -1, -1):
                stack.append((f"{name}[{index}]", value[index]))
        elif value is True:
            out.append(f"{_quoted_key(name)}=1")
        elif value is False:
            out.append(f"{_quoted_key(name)}=0")
        else:
            text = str(value)
            out.append(f"{_quoted_key(name)}={text.translate(_ASCII) if text.isascii() else quote_plus(text)}")
    return "&".join(out)


def batch_command(method: str, params: Mapping[str, Any]) -> str:
    """One ``cmd`` entry of a batch: ``method?query`` (``method?`` when there are no parameters)."""
    return f"{method}?{php_query(params)}"
