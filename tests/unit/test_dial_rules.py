"""``[asterisk] dial_rules``: the CRM's form of a number rewritten to the trunk's, first matching rule wins."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.dialrules import BadDialRule, DialRules, parse_rule
from bridge.phone import BadPhoneNumber

RUSSIAN_OFFICE = DialRules(
    tuple(
        parse_rule(rule)
        for rule in (
            "+7XXXXXXXXXX -> 8XXXXXXXXXX",  # Bitrix24's E.164 to the trunk's national form
            "+. -> 810.",  # other countries through the international prefix
            "XXXXXXXXXX -> 8XXXXXXXXXX",  # 10 digits typed without the 8
        )
    )
)
OUTSIDE_LINE = DialRules((parse_rule("+7 XXX XXX XX XX -> 9 8 XXX XXX XX XX"), parse_rule(". -> 9.")))


@pytest.mark.parametrize(
    ("rules", "raw", "dialled"),
    [
        (RUSSIAN_OFFICE, "8 (926) 000-00-03", "89260000003"),
        (RUSSIAN_OFFICE, "+7 926 000-00-03", "89260000003"),
        (RUSSIAN_OFFICE, "926-000-00-03 доб. 12", "89260000003"),
        (RUSSIAN_OFFICE, "+44 20 7946 0018", "810442079460018"),
        (RUSSIAN_OFFICE, "777-00-00", "7770000"),  # no rule matches: as it is
        (OUTSIDE_LINE, "+7 926 000-00-03", "989260000003"),
        (OUTSIDE_LINE, "8 (926) 000-00-03", "989260000003"),
        (OUTSIDE_LINE, "777-00-00", "97770000"),
        (DialRules(), "+7 926 000-00-03", "79260000003"),  # no rules: the + is dropped, as before
        (DialRules((parse_rule("8 [3489] XX XXXXXXX -> 8 X XX XXXXXXX"),)), "8 (926) 000-00-03", "89260000003"),
        (DialRules((parse_rule("N XX XX XX -> 8 495 X XX XX XX"),)), "277-00-00", "84952770000"),
        (DialRules((parse_rule("Z! -> 0X!"),)), "5", None),  # reduced numbers have 3 digits at least
        (DialRules((parse_rule("Z! -> 0X!"),)), "512", "0512"),
    ],
)
def test_the_first_matching_rule_rewrites_the_whole_number(rules: DialRules, raw: str, dialled: str | None) -> None:
    if dialled is None:
        with pytest.raises(BadPhoneNumber, match="too short"):
            rules.dialled(raw)
    else:
        assert rules.dialled(raw) == dialled


def test_a_rewrite_that_leaves_too_few_or_too_many_digits_is_refused_naming_the_rule() -> None:
    short = DialRules((parse_rule("+79XX -> XX"),))
    with pytest.raises(
        BadPhoneNumber, match=r"\+7912 rewritten by the dial rule \+79XX -> XX to 12 refused: too short"
    ):
        short.dialled("+7 912")
    grow = DialRules((parse_rule(". -> 00000000000000000000."),))
    with pytest.raises(BadPhoneNumber, match=r"rewritten by the dial rule \. -> 0+\. to 0+7770000 refused: too long"):
        grow.dialled("777-00-00")


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ("+7XXXXXXXXXX 8XXXXXXXXXX", "PATTERN -> REPLACEMENT"),
        ("+7X -> 8X -> 9X", "PATTERN -> REPLACEMENT"),
        (" -> 8", "both"),
        ("+7XXX -> ", "both"),
        ("+7XXX -> 8XX", "has 2 X but the pattern catches 3"),
        ("+7XX -> 8XXX", "has 3 X but the pattern catches 2"),
        ("+7XXX -> +7XXX", "international prefix"),
        ("X.X -> X.X", "may only end the pattern"),
        ("+ -> 8", "matches no number"),
        ("7(926) -> 8", "'(' has no meaning in a pattern"),
        ("8[5-] -> 8X", "not a digit set"),
        ("8[] -> 8X", "not a digit set"),
        ("8X -> 8Y", "'Y' has no meaning in a replacement"),
        (". -> 9", "'.' once"),
        (". -> 9..", "'.' once"),
        ("X -> X.", "no . or !"),
        ("+. -> 810!", "'.' once"),
        ("８X -> 8X", "has no meaning in a pattern"),
    ],
)
def test_a_malformed_rule_is_refused_saying_why(rule: str, why: str) -> None:
    with pytest.raises(BadDialRule) as refused:
        parse_rule(rule)
    assert why in str(refused.value)


def test_a_rule_reads_back_as_written_without_its_spaces() -> None:
    rule = parse_rule(" +7 xxx xxx xx xx  ->  8 XXX XXX XX XX ")
    assert (rule.match, rule.replace, str(rule)) == ("+7XXXXXXXXXX", "8XXXXXXXXXX", "+7XXXXXXXXXX -> 8XXXXXXXXXX")


@given(st.text(max_size=40))
def test_whatever_the_crm_holds_only_plain_digits_are_ever_dialled(raw: str) -> None:
    for rules in (RUSSIAN_OFFICE, OUTSIDE_LINE, DialRules()):
        try:
            dialled = rules.dialled(raw)
        except BadPhoneNumber:
            continue
        assert dialled.isascii() and dialled.isdigit() and 3 <= len(dialled) <= 20


@given(st.from_regex(r"9[0-9]{9}", fullmatch=True), st.sampled_from(["+7 {} ", "8 {}", "8 ({}) ", "{} доб. 5"]))
def test_every_russian_form_of_one_mobile_dials_the_same_digits(mobile: str, form: str) -> None:
    raw = form.format(f"{mobile[:3]} {mobile[3:6]}-{mobile[6:8]}-{mobile[8:]}")
    assert RUSSIAN_OFFICE.dialled(raw) == "8" + mobile
