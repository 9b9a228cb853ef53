"""Fuzzing click-to-call and callback posts, from the HTTP handler down to the ARI originate.

Real posts to the daemon's aiohttp app on 127.0.0.1 with fields missing, forged or garbled, numbers with dial-string
characters, line breaks and non-ASCII digits inside: a refused post is answered 400/401 with a logged reason, an
accepted one rings, or (a click-to-call whose number cannot be dialled) has its CALL_ID finished and rings nobody;
every number the desk hands on (``RingNumber``) is reduced to ``+?digits``, and every number that reaches an
originate (a callback's endpoint, the ARI ``originateWithId`` request) is plain digits after the example config's
``dial_rules``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from bridge.config import load_config
from bridge.crm.inbound import ClickToCall, EventGate, nest_form
from bridge.domain.commands import RingNumber
from bridge.domain.events import LegEnded, LegOutcome
from bridge.pbx.ari_commands import CallCommands
from bridge.pbx.events import PbxEvent
from bridge.pbx.outcomes import EndpointTemplate
from bridge.pbx.translate import AriTranslator
from bridge.phone import BadPhoneNumber, is_e164, reduce_number
from tests.fuzz.capture import LogCapture
from tests.fuzz.desk import (
    CALLBACK,
    CLICK_TO_CALL,
    DIALLABLE,
    Desk,
    assert_every_originate_is_plain_digits,
    good_form,
    open_desk,
    send,
    serials,
)
from tests.fuzz.strategies import (
    EXAMPLE_CONFIG,
    SPECIAL_CHARS,
    fuzz_settings,
    hostile_numbers,
    json_values,
    odd_text,
    one_in,
)


@pytest.fixture
async def desk(capture: LogCapture) -> AsyncIterator[Desk]:
    async with open_desk(capture) as opened:
        yield opened


# --- forms ---------------------------------------------------------------------------------------------------


FIELD_VALUES = {
    "USER_ID": st.one_of(st.sampled_from(["11", "12", "13", "99", "0", "-1", "١١", " 12 ", "1e1"]), odd_text(10)),
    "EXTENSION": st.one_of(st.sampled_from(["", "1001", "1003", "10 01", "1001;1002", "१००१"]), odd_text(10)),
    "LINE_NUMBER": st.one_of(st.sampled_from(["74951112233", "74951112244", "", "1;2"]), odd_text(12)),
    "CALL_LIST_ID": odd_text(10),
    "CRM_ENTITY_TYPE": odd_text(10),
    "CRM_ENTITY_ID": odd_text(10),
    "IS_MOBILE": st.sampled_from(["0", "1", "", "yes"]),
    "TEXT": odd_text(60),
}


@dataclass(frozen=True)
class Post:
    form: dict[str, str]
    authentic: bool
    event: str


@st.composite
def posts(draw: st.DrawFn, token: str) -> Post:
    event = draw(st.sampled_from([CLICK_TO_CALL, CALLBACK, CLICK_TO_CALL, CALLBACK.lower(), "ONCRMLEADADD", ""]))
    data = {
        "PHONE_NUMBER": draw(hostile_numbers()),
        "PHONE_NUMBER_INTERNATIONAL": draw(st.one_of(st.just(""), hostile_numbers())),
        "CALL_ID": f"externalCall.fuzz{next(serials)}",
        "USER_ID": "11",
        "LINE_NUMBER": "74951112233",
    }
    for name, values in FIELD_VALUES.items():
        if draw(st.booleans()):
            data[name] = draw(values)
    for name in draw(st.sets(st.sampled_from(sorted(data)), max_size=2)):
        del data[name]
    if draw(one_in(10)):
        data["CALL_ID"] = draw(st.one_of(odd_text(20), st.just("externalCall." + "x" * 100)))
    form = {f"data[{name}]": value for name, value in data.items()}
    form["event"] = event
    if not draw(one_in(5)):
        form["auth[application_token]"] = token
    elif draw(st.booleans()):
        form["auth[application_token]"] = draw(st.one_of(odd_text(20), st.sampled_from(["", token + " ", token[:-1]])))
    form.update(draw(st.dictionaries(odd_text(15), odd_text(15), max_size=3)))
    return Post(form, authentic=form.get("auth[application_token]") == token, event=form["event"])


def expected_dialled(form: dict[str, str], desk: Desk) -> str | None:
    """The trunk's digits for this form's number (E.164 if Bitrix24 sent it, else the CRM's text), or None."""
    international = form.get("data[PHONE_NUMBER_INTERNATIONAL]", "")
    raw = international if is_e164(international) else form.get("data[PHONE_NUMBER]", "")
    try:
        return desk.settings.asterisk.dial_rules.dialled(raw)
    except BadPhoneNumber:
        return None


# --- what must hold ------------------------------------------------------------------------------------------


@fuzz_settings(150)
@given(data=st.data())
@example(data=None)
async def test_a_post_is_refused_with_a_logged_reason_or_only_plain_digits_are_dialled(
    desk: Desk, data: st.DataObject | None
) -> None:
    token = desk.settings.bitrix24.application_token.reveal()
    spaced = Post(good_form(token, "+7 (916) 1234567"), authentic=True, event=CLICK_TO_CALL)
    post = data.draw(posts(token)) if data is not None else spaced
    desk.reset()
    response = await send(desk, post.form)
    body = await response.json()
    event(f"status {response.status}")
    refusals = desk.logs.events("clicktocall.rejected")
    undialable = desk.logs.events("clicktocall.undialable")
    dialled = expected_dialled(post.form, desk)
    if not post.authentic:
        assert response.status == 401
    elif post.event.upper() not in (CLICK_TO_CALL, CALLBACK):
        assert response.status == 400
    if response.status == 200 and body == {"result": True}:
        assert not refusals and post.authentic
        if post.event == CLICK_TO_CALL and dialled is None:  # its CALL_ID is finished, nobody rings
            [line] = undialable
            assert line["reason"] and len(desk.dispatcher.started) == 1
            assert not desk.dispatcher.commands and not desk.ari.endpoints
        else:
            assert not undialable
            assert desk.dispatcher.started or desk.ari.endpoints or desk.logs.events("callback.rejected")
    else:
        assert response.status in (200, 400, 401) and "error" in body
        assert [(line["reason"], line["status"]) for line in refusals] == [(body["error"], response.status)]
        assert not desk.dispatcher.commands and not desk.ari.endpoints
    await assert_every_originate_is_plain_digits(desk)


DROPPED = "/()"
"""Separators people type: dropped."""


@pytest.mark.parametrize("event", [CLICK_TO_CALL, CALLBACK])
@pytest.mark.parametrize(
    "inside", [*(c for c in SPECIAL_CHARS if c not in DROPPED + ";"), "\n", "\r\n", "\x00", "٣", "²"]
)
async def test_each_dial_string_character_inside_a_number_dials_nothing(desk: Desk, event: str, inside: str) -> None:
    token = desk.settings.bitrix24.application_token.reveal()
    response = await send(desk, good_form(token, f"7916{inside}1234567", event))
    if event == CALLBACK:  # nothing to close in Bitrix24: the post is refused
        assert response.status == 400
        [refusal] = desk.logs.events("clicktocall.rejected")
        assert "refused" in refusal["reason"] and refusal["status"] == 400
    else:  # Bitrix24 registered the call: it is finished (by the core), and nobody rings
        assert response.status == 200
        [line] = desk.logs.events("clicktocall.undialable")
        assert "refused" in line["reason"] and len(desk.dispatcher.started) == 1
    assert not desk.dispatcher.commands and not desk.ari.endpoints


@pytest.mark.parametrize("event", [CLICK_TO_CALL, CALLBACK])
@pytest.mark.parametrize(
    ("number", "dialled"),
    [
        (" +79161234567 ", "89161234567"),
        ("8 (916) 123-45-67", "89161234567"),
        ("916/123.45.67 доб. 5", "89161234567"),
        ("7916;1234567", "7916"),
    ],
)
async def test_a_good_post_dials_the_trunks_digits_for_the_number_it_names(
    desk: Desk, event: str, number: str, dialled: str
) -> None:
    token = desk.settings.bitrix24.application_token.reveal()
    response = await send(desk, good_form(token, number, event))
    assert response.status == 200 and await response.json() == {"result": True}
    assert await assert_every_originate_is_plain_digits(desk) == [dialled]


# --- the gate alone, with payloads as pulled events deliver them (any JSON) ------------------------------------


@fuzz_settings(300)
@given(
    event=st.sampled_from([CLICK_TO_CALL, CALLBACK, "", "other"]),
    data=st.one_of(json_values(), st.dictionaries(st.sampled_from(["PHONE_NUMBER", "PHONE_NUMBER_INTERNATIONAL",
                   "CALL_ID", "USER_ID", "EXTENSION", "CRM_ENTITY_ID"]), st.one_of(json_values(4), hostile_numbers()))),
)  # fmt: skip
def test_a_pulled_event_with_any_json_is_parsed_or_refused(event: str, data: Any) -> None:
    payload = {"event": event, "data": data}
    parsed = EventGate("token").accept(nest_form(payload) | payload, check_token=False)
    phone = getattr(parsed, "phone", None)
    if isinstance(parsed, ClickToCall) and parsed.problem:
        assert phone and phone[0] in "'\"" and phone[-1] in "'\""  # quoted for the log line, never dialled
    elif phone is not None:
        assert DIALLABLE.fullmatch(phone) and reduce_number(phone) == phone
    else:
        assert parsed.reason and parsed.status in (200, 400)  # type: ignore[union-attr]


@fuzz_settings(150)
@given(number=st.one_of(hostile_numbers(), odd_text(40), st.from_regex(r"[0-9]{1,32}", fullmatch=True)))
async def test_the_ari_commands_originate_only_a_plain_digit_ring_number(capture: LogCapture, number: str) -> None:
    capture.clear()
    settings = load_config(EXAMPLE_CONFIG)
    requests: list[dict[str, Any]] = []
    emitted: list[PbxEvent] = []

    async def request(resource: str, operation: str, **params: Any) -> Any:
        requests.append({"operation": f"{resource}.{operation}", **params})

    commands = CallCommands(settings.asterisk, AriTranslator(EndpointTemplate("PJSIP/{ext}")), request, emitted.append)
    await commands.execute("call-1", RingNumber(leg="leg-1", number=number, timeout=5))
    try:
        dialled: str | None = settings.asterisk.dial_rules.dialled(number)
    except BadPhoneNumber:
        dialled = None
    if re.fullmatch(r"[0-9]{3,9}", number):
        assert dialled == number  # no rule of the example touches a short plain number
    if dialled is not None:
        [originate] = requests
        assert originate["endpoint"] == settings.asterisk.trunk_endpoint.format(number=dialled)
        assert re.fullmatch(r"[0-9]{3,20}", dialled) and not emitted
    else:
        assert requests == []
        [refused] = capture.events("pbx.command_refused")
        assert refused["leg"] == "leg-1" and refused["reason"]
        [ended] = emitted
        assert isinstance(ended.event, LegEnded) and ended.event.outcome is LegOutcome.FAILED
