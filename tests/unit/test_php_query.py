"""The batch query encoder against the plain one it replaced (generator pairs, ``quote_plus`` on every part).

The delivery's encoder takes short cuts for the common shapes (ints, ASCII text); whatever the parameters, the
text Bitrix24 gets must stay what the plain ``http_build_query`` port gave.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.crm.query import batch_command, php_query


def _scalar(value: Any) -> str:
    if value is True:
        return "1"
    if value is False:
        return "0"
    return str(value)


def _pairs(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    if value is None:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _pairs(f"{prefix}[{key}]", item)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _pairs(f"{prefix}[{index}]", item)
    else:
        yield prefix, _scalar(value)


def plain_php_query(params: Mapping[str, Any]) -> str:
    """The encoder as it was before the short cuts."""
    pairs = (pair for name, item in params.items() for pair in _pairs(str(name), item))
    return "&".join(f"{quote_plus(key)}={quote_plus(value)}" for key, value in pairs)


_TEXT = st.text(st.characters(codec="ascii"), max_size=12) | st.text(
    st.characters(blacklist_categories=("Cs",)), max_size=12
)
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(_TEXT | st.integers(), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(st.dictionaries(_TEXT, _VALUES, max_size=5))
def test_the_encoder_gives_what_the_plain_encoder_gave(params: dict[str, Any]) -> None:
    assert php_query(params) == plain_php_query(params)


def test_a_register_and_its_show_read_as_bitrix24_parses_them() -> None:
    register = {"USER_ID": 11, "PHONE_NUMBER": "+7 916 123-45-67", "CALL_START_DATE": "2026-12-07T15:00:00+03:00",
                "SHOW": True, "CRM_CREATE": False, "CRM_ENTITY_ID": None, "LINE_NUMBER": "Линия 1"}  # fmt: skip
    assert batch_command("telephony.externalCall.register", register) == (
        "telephony.externalCall.register?USER_ID=11&PHONE_NUMBER=%2B7+916+123-45-67"
        "&CALL_START_DATE=2026-12-07T15%3A00%3A00%2B03%3A00&SHOW=1&CRM_CREATE=0"
        "&LINE_NUMBER=%D0%9B%D0%B8%D0%BD%D0%B8%D1%8F+1"
    )
    show = {"CALL_ID": "$result[r1][CALL_ID]", "USER_ID": (11, 12)}
    assert php_query(show) == "CALL_ID=%24result%5Br1%5D%5BCALL_ID%5D&USER_ID%5B0%5D=11&USER_ID%5B1%5D=12"


def test_text_that_utf_8_cannot_carry_is_refused_as_before() -> None:
    with pytest.raises(UnicodeEncodeError):
        php_query({"NAME": "half \ud800 a pair"})
