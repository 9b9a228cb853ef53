"""Click-to-call posts: forged, malformed and repeated ones are refused, good ones come out validated."""

from __future__ import annotations

import pytest

from bridge.crm.inbound import CallbackRequest, ClickToCall, EventGate, Rejected, nest_form

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


@pytest.mark.parametrize(("field", "value", "reason"), [("CALL_ID", "", "CALL_ID"), ("USER_ID", "eleven", "USER_ID")])
def test_malformed_fields_are_refused(field: str, value: str, reason: str) -> None:
    result = EventGate(TOKEN).accept(nest_form(post(**{field: value})))
    assert isinstance(result, Rejected) and reason in result.reason and result.status == 400


@pytest.mark.parametrize(
    ("number", "international", "phone"),
    [
        ("8 (916) 123-45-67", "+79161234567", "+79161234567"),  # valid: Bitrix24's E.164 form is used
        ("+7 (916) 123-45-67", "", "+79161234567"),
        ("916-123-45-67 доб. 12", "916-123-45-67 доб. 12", "9161234567"),  # invalid: repeated as typed, reduced
        ("89161234567#12", "+79161234567", "+79161234567"),
        ("89161234567", "+7916&1234567", "89161234567"),  # anything but E.164 there is not trusted
    ],
)
def test_the_number_is_bitrix24s_e164_form_or_else_the_crms_text_reduced(
    number: str, international: str, phone: str
) -> None:
    result = EventGate(TOKEN).accept(nest_form(post(PHONE_NUMBER=number, PHONE_NUMBER_INTERNATIONAL=international)))
    assert isinstance(result, ClickToCall) and (result.phone, result.problem) == (phone, "")


@pytest.mark.parametrize("number", ["", "нет номера", "12", "79161234567\nChannel: x", "+7916&1234567"])
def test_an_undialable_click_to_call_keeps_its_call_id_so_that_it_can_be_finished(number: str) -> None:
    result = EventGate(TOKEN).accept(nest_form(post(PHONE_NUMBER=number, PHONE_NUMBER_INTERNATIONAL=number)))
    assert isinstance(result, ClickToCall) and result.call_id.startswith("externalCall.") and result.user_id == 11
    assert result.problem and result.phone == repr(number)


def test_the_extension_bitrix24_cut_off_the_clients_number_does_not_choose_the_employee() -> None:
    result = EventGate(TOKEN).accept(nest_form(post(EXTENSION="1003", PHONE_NUMBER="89161234567#1003")))
    assert isinstance(result, ClickToCall) and result.user_id == 11 and not hasattr(result, "extension")


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


def test_a_callback_without_a_usable_number_is_refused() -> None:
    form = post(PHONE_NUMBER="перезвоните", PHONE_NUMBER_INTERNATIONAL="")
    form["event"] = "ONEXTERNALCALLBACKSTART"
    result = EventGate(TOKEN).accept(nest_form(form))
    assert isinstance(result, Rejected) and "'п' is not a digit" in result.reason and result.status == 400
