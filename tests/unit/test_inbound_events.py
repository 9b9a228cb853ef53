"""Click-to-call posts: forged, malformed and repeated ones are refused, good ones come out validated."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.crm.inbound import CallbackRequest, ClickToCall, EventGate, Rejected, nest_form
from bridge.phone import BadPhoneNumber, checked_phone

TOKEN = "app-token-123"


def post(**data: str) -> dict[str, str]:
    form = {
        "event": "ONEXTERNALCALLSTART",
        "event_handler_id": "7",
        "ts": "1795306061",
        "auth[domain]": "portal.bitrix24.ru",
        "auth[member_id]": "abc",
        "auth[application_token]": TOKEN,
    }
    base = {
        "PHONE_NUMBER": "+7 (916) 123-45-67",
        "PHONE_NUMBER_INTERNATIONAL": "+79161234567",
        "EXTENSION": "1001",
        "USER_ID": "11",
        "CALL_LIST_ID": "5",
        "LINE_NUMBER": "74951112233",
        "IS_MOBILE": "0",
        "CALL_ID": "externalCall.0123456789abcdef0123456789abcdef.1795306061",
        "CRM_ENTITY_TYPE": "CONTACT",
        "CRM_ENTITY_ID": "1",
    }
    base.update(data)
    form.update({f"data[{k}]": v for k, v in base.items()})
    return form


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_good_click_to_call_is_parsed() -> None:
    gate = EventGate(TOKEN)
    result = gate.accept(nest_form(post()))
    assert result == ClickToCall(
        call_id="externalCall.0123456789abcdef0123456789abcdef.1795306061",
        user_id=11,
        phone="+79161234567",
        extension="1001",
        line="74951112233",
        call_list_id=5,
        crm_entity_type="CONTACT",
        crm_entity_id=1,
        is_mobile=False,
    )


def test_forged_token_is_401() -> None:
    form = post()
    form["auth[application_token]"] = "guess"
    assert EventGate(TOKEN).accept(nest_form(form)) == Rejected("application_token does not match", 401)
    del form["auth[application_token]"]
    assert EventGate(TOKEN).accept(nest_form(form)).status == 401  # type: ignore[union-attr]
    assert EventGate("").accept(nest_form(post())).status == 401  # type: ignore[union-attr]


def test_repeated_call_id_within_window_is_ignored_then_accepted_again() -> None:
    clock = Clock()
    gate = EventGate(TOKEN, dedup_window=60, clock=clock)
    assert isinstance(gate.accept(nest_form(post())), ClickToCall)
    clock.now = 30
    again = gate.accept(nest_form(post()))
    assert isinstance(again, Rejected) and "already handled" in again.reason and again.status == 200
    clock.now = 100
    assert isinstance(gate.accept(nest_form(post())), ClickToCall)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("PHONE_NUMBER_INTERNATIONAL", "+7916&1234567", "refused"),
        ("PHONE_NUMBER_INTERNATIONAL", "79161234567\nChannel: x", "refused"),
        ("PHONE_NUMBER_INTERNATIONAL", "12", "refused"),
        ("CALL_ID", "", "CALL_ID"),
        ("USER_ID", "eleven", "USER_ID"),
        ("EXTENSION", "1001@ctx", "EXTENSION"),
    ],
)
def test_malformed_fields_are_refused(field: str, value: str, reason: str) -> None:
    result = EventGate(TOKEN).accept(nest_form(post(**{field: value})))
    assert isinstance(result, Rejected) and reason in result.reason and result.status == 400


def test_plain_phone_number_is_used_when_no_international_one() -> None:
    result = EventGate(TOKEN).accept(nest_form(post(PHONE_NUMBER_INTERNATIONAL="", PHONE_NUMBER="89161234567")))
    assert isinstance(result, ClickToCall) and result.phone == "89161234567"
    result = EventGate(TOKEN).accept(nest_form(post(PHONE_NUMBER_INTERNATIONAL="")))
    assert isinstance(result, Rejected)  # "+7 (916) ..." has brackets and spaces: refused, not guessed


def test_callback_request_and_unknown_events() -> None:
    form = post()
    form["event"] = "ONEXTERNALCALLBACKSTART"
    form["data[TEXT]"] = "Please call me"
    result = EventGate(TOKEN).accept(nest_form(form))
    assert result == CallbackRequest("+79161234567", "Please call me", "74951112233", "CONTACT", 1)
    form["event"] = "ONCRMLEADADD"
    assert isinstance(EventGate(TOKEN).accept(nest_form(form)), Rejected)
    no_data = {"event": "ONEXTERNALCALLSTART", "auth[application_token]": TOKEN}
    assert EventGate(TOKEN).accept(nest_form(no_data)) == Rejected("no data[...] fields")


@given(st.text(max_size=40))
def test_checked_phone_never_lets_a_dial_string_character_through(raw: str) -> None:
    try:
        value = checked_phone(raw)
    except BadPhoneNumber:
        return
    assert value.lstrip("+").isdigit() and value.isascii() and 3 <= len(value.lstrip("+")) <= 20
