"""Numbers as a CRM stores them, reduced to their dialable digits; everything else refused with a reason."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.phone import MAX_DIGITS, BadPhoneNumber, is_e164, reduce_number


@pytest.mark.parametrize(
    ("raw", "reduced"),
    [
        ("8 (926) 000-00-03", "89260000003"),
        ("+7 926 000-00-03", "+79260000003"),
        ("926-000-00-03 доб. 12", "9260000003"),
        ("926-000-00-03 Доб 12", "9260000003"),
        ("+7 (926) 000-00-03 добавочный 1234", "+79260000003"),
        ("+7 926 000.00.03 ext. 12", "+79260000003"),
        ("+7 926 000 00 03 Ext: 12", "+79260000003"),
        ("89260000003x12", "89260000003"),
        ("8 926 000 00 03 X 12", "89260000003"),
        ("89260000003#12", "89260000003"),
        ("89260000003;12", "89260000003"),
        ("926 000 00 03 вн. 5", "9260000003"),
        ("926 000 00 03 доб.", "9260000003"),
        ("030/1234567", "0301234567"),
        ("+49 (0)30 1234 567", "+490301234567"),
        ("\u00a0+7\u00a0926\u2009000\u201300\u201303 ", "+79260000003"),
        ("[495] 777-00-00", "4957770000"),
        ("112", "112"),
    ],
)
def test_separators_and_the_extension_are_dropped(raw: str, reduced: str) -> None:
    assert reduce_number(raw) == reduced


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("12", "too short"),
        ("+7", "too short"),
        ("8 926 000 00 03 8 926 000 00 04", "too long"),
        ("нет телефона", "'н' is not a digit"),
        ("+7 926 000-00-03 (моб.)", "'м' is not a digit"),
        ("79260000106&PJSIP/evil", "'&'"),
        ("7926,0000106", "','"),
        ("79260000106\nChannel: x", "'\\n'"),
        ("${EXTEN}", "'$'"),
        ("7+9260000003", "'+'"),
        ("++79260000003", "'+'"),
        ("x12", "'x'"),
        ("१००१२३", "'१'"),
        ("７９２６０００００３", "'７'"),
        ("1" * 101, "over 100 characters"),
    ],
)
def test_what_is_not_a_number_is_refused_saying_why(raw: str, why: str) -> None:
    with pytest.raises(BadPhoneNumber) as refused:
        reduce_number(raw)
    assert why in str(refused.value)


def test_only_text_is_a_number() -> None:
    with pytest.raises(BadPhoneNumber, match="must be text, got int"):
        reduce_number(79260000003)


def test_e164_is_what_bitrix24_sends_for_a_valid_number_only() -> None:
    assert is_e164("+79260000003") and is_e164(" +14155551234 ")
    for other in ("79260000003", "+7 926 000-00-03", "926-000-00-03 доб. 12", "+0123456789", "+1234", "", None):
        assert not is_e164(other)


@given(st.text(max_size=60))
def test_nothing_but_digits_with_an_optional_leading_plus_ever_comes_out(raw: str) -> None:
    try:
        value = reduce_number(raw)
    except BadPhoneNumber:
        return
    number = value.removeprefix("+")
    assert number.isascii() and number.isdigit() and 3 <= len(number) <= MAX_DIGITS


@given(
    plus=st.booleans(),
    groups=st.lists(st.from_regex(r"[0-9]{1,4}", fullmatch=True), min_size=1, max_size=5),
    separators=st.lists(st.sampled_from([" ", "-", ".", "/", "\u00a0", " - "]), min_size=5, max_size=5),
    bracket=st.booleans(),
    extension=st.sampled_from(["", " доб. 12", " ext. 7", "x3", "#45", ";6", " вн 100"]),
)
def test_a_formatted_number_reduces_to_its_digits_whatever_the_formatting(
    plus: bool, groups: list[str], separators: list[str], bracket: bool, extension: str
) -> None:
    digits = "".join(groups)
    parts = [f"({g})" if bracket and i == 1 else g for i, g in enumerate(groups)]
    text = ("+" if plus else "") + "".join(p + s for p, s in zip(parts, separators, strict=False)).rstrip() + extension
    try:
        value = reduce_number(text)
    except BadPhoneNumber as exc:
        assert len(digits) < 3, exc
        return
    assert value == ("+" if plus else "") + digits
