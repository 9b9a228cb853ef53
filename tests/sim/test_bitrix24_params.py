"""PHP-style parameter nesting and Bitrix24 filter operators (pure functions)."""

from __future__ import annotations

from typing import Any

from bridge.sim.bitrix24.filters import matches, split_operator
from bridge.sim.bitrix24.params import nest_pairs, parse_query


def test_php_bracket_nesting() -> None:
    pairs = [
        ("FILTER[EXTERNAL_CALL_ID]", "x"),
        ("USER_ID[]", "1"),
        ("USER_ID[]", "2"),
        ("cmd[a]", "user.get?ID=1"),
        ("MESSAGES[0][SIDE]", "User"),
        ("MESSAGES[1][SIDE]", "Client"),
        ("plain", "v"),
        ("weird[", "w"),
    ]
    assert nest_pairs(pairs) == {
        "FILTER": {"EXTERNAL_CALL_ID": "x"},
        "USER_ID": ["1", "2"],
        "cmd": {"a": "user.get?ID=1"},
        "MESSAGES": [{"SIDE": "User"}, {"SIDE": "Client"}],
        "plain": "v",
        "weird[": "w",
    }


def test_later_values_win_and_query_strings_decode() -> None:
    assert nest_pairs([("a", "1"), ("a", "2")]) == {"a": "2"}
    assert nest_pairs([("a", "1"), ("a[b]", "2")]) == {"a": {"b": "2"}}
    assert parse_query("CALL_ID=%24result%5Breg%5D%5BCALL_ID%5D&X=a+b") == {
        "CALL_ID": "$result[reg][CALL_ID]",
        "X": "a b",
    }


def test_filter_operators() -> None:
    row = {
        "ID": "7",
        "CALL_DURATION": "30",
        "CALL_START_DATE": "2026-01-10T10:00:00+03:00",
        "NAME": "Anna",
        "ACTIVE": True,
        "UF_DEPARTMENT": [2, 5],
        "EXTERNAL_CALL_ID": None,
    }
    assert split_operator(">=CALL_DURATION") == (">=", "CALL_DURATION")
    assert split_operator("!><ID") == ("!><", "ID")
    true_cases: list[dict[str, Any]] = [
        {"ID": 7},
        {"=ID": "7"},
        {"ID": [1, 7]},
        {"!ID": 8},
        {"!ID": [1, 2]},
        {">CALL_DURATION": 29},
        {"<=CALL_DURATION": "30"},
        {"><ID": [5, 9]},
        {"!><ID": [8, 9]},
        {"%NAME": "nn"},
        {">=CALL_START_DATE": "2026-01-10T06:00:00+00:00"},
        {"<CALL_START_DATE": "2026-01-11"},
        {"ACTIVE": "Y"},
        {"ACTIVE": "true"},
        {"UF_DEPARTMENT": 5},
        {"EXTERNAL_CALL_ID": ""},
        {"UNKNOWN_FIELD": "x"},
    ]
    false_cases: list[dict[str, Any]] = [
        {"ID": 8},
        {"!ID": 7},
        {">CALL_DURATION": 30},
        {"><ID": [8, 9]},
        {"%NAME": "zz"},
        {">CALL_START_DATE": "2026-01-10T07:00:00+00:00"},
        {"ACTIVE": "N"},
        {"UF_DEPARTMENT": 3},
        {"EXTERNAL_CALL_ID": "x"},
    ]
    fields = ("ID", "CALL_DURATION", "CALL_START_DATE", "NAME", "ACTIVE", "UF_DEPARTMENT", "EXTERNAL_CALL_ID")
    for case in true_cases:
        assert matches(row, case, fields), case
    for case in false_cases:
        assert not matches(row, case, fields), case
