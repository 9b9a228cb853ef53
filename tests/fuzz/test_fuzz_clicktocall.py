"""Fuzzing click-to-call and callback posts, from the HTTP handler down to the ARI originate.

Real posts to the daemon's aiohttp app on 127.0.0.1 with fields missing, forged or garbled, numbers with dial-string
characters, line breaks and non-ASCII digits inside: a refused post is answered 400/401 with a logged reason, an
accepted one rings, and every number that reaches an originate (the desk's ``RingNumber``, a callback's endpoint,
the ARI ``originateWithId`` request) is plain digits with an optional leading ``+``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import event, example, given
from hypothesis import strategies as st

from bridge.clicktocall import ClickToCallDesk
from bridge.config import Settings, load_config
from bridge.crm.inbound import EventGate, nest_form
from bridge.domain.commands import PbxCommand, RingAgent, RingNumber
from bridge.domain.events import LegAnswered, LegEnded, LegOutcome
from bridge.http_api import EVENTS_PATH, build_app
from bridge.metrics import Metrics
from bridge.pbx.ari_commands import CallCommands
from bridge.pbx.events import PbxEvent
from bridge.pbx.outcomes import EndpointTemplate
from bridge.pbx.translate import AriTranslator
from bridge.phone import checked_phone
from tests.fuzz.capture import LogCapture, captured_logs
from tests.fuzz.strategies import ODD_DIGITS, SPECIAL_CHARS, fuzz_settings, json_values, odd_text, one_in

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "bridge.example.toml"
DIALLABLE = re.compile(r"^\+?[0-9]{3,20}$")
EXTENSIONS = {11: "1001", 12: "1002", 13: "1003"}
CLICK_TO_CALL, CALLBACK = "ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART"
FORM = "application/x-www-form-urlencoded"


# --- the desk with spies where the PBX would be ------------------------------------------------------------


@dataclass
class SpyDispatcher:
    """What the desk asks of the dispatcher, recorded."""

    settings: Settings
    accepting: bool = True
    foreign: Any = None
    commands: list[tuple[str, PbxCommand]] = field(default_factory=list)
    started: list[str] = field(default_factory=list)

    def plan(self) -> Any:
        return self.settings.plan

    def start_observed(self, key: str, _event: Any) -> None:
        self.started.append(key)

    def step_observed(self, _key: str, _event: Any) -> None:
        pass

    def submit(self, key: str, command: PbxCommand) -> None:
        self.commands.append((key, command))

    def expect_callback(self, _channel: str, _phone: str) -> None:
        pass

    def forget_callback(self, _channel: str) -> None:
        pass


@dataclass
class SpyOriginator:
    endpoints: list[str] = field(default_factory=list)

    async def originate(self, endpoint: str, channel_id: str, app_args: Any, caller_id: str = "",
                        timeout: float = 30.0, variables: Any = None) -> dict[str, Any]:  # fmt: skip
        self.endpoints.append(endpoint)
        return {"id": channel_id}


class Directory:
    def ext_for(self, user_id: int) -> str | None:
        return EXTENSIONS.get(user_id)


@dataclass(repr=False)
class Desk:
    settings: Settings
    dispatcher: SpyDispatcher
    ari: SpyOriginator
    desk: ClickToCallDesk
    client: TestClient[Any, Any]
    logs: LogCapture

    def __repr__(self) -> str:
        return "Desk(example config)"

    def reset(self) -> None:
        self.dispatcher.commands.clear()
        self.dispatcher.started.clear()
        self.ari.endpoints.clear()
        self.logs.clear()


@pytest.fixture
def capture() -> Iterator[LogCapture]:
    with captured_logs() as logs:
        yield logs


@pytest.fixture
async def desk(capture: LogCapture) -> AsyncIterator[Desk]:
    settings = load_config(EXAMPLE_CONFIG)
    dispatcher, ari = SpyDispatcher(settings), SpyOriginator()
    clicktocall = ClickToCallDesk(settings, ari, Directory())
    clicktocall.attach(dispatcher)  # type: ignore[arg-type]
    gate = EventGate(settings.bitrix24.application_token.reveal())
    app = build_app(health=dict, metrics=Metrics(), gate=gate, on_event=clicktocall.on_event)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield Desk(settings, dispatcher, ari, clicktocall, client, capture)


# --- forms ---------------------------------------------------------------------------------------------------

serials = itertools.count(1)


@st.composite
def hostile_numbers(draw: st.DrawFn) -> str:
    """A phone number, half the time with something dangerous inside: dial-string characters, line breaks, odd
    digits; sometimes any text at all."""
    number = draw(st.from_regex(r"[ ]?\+?[0-9]{3,20}[ ]?", fullmatch=True))
    if draw(st.booleans()):
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(number)))
            inserted = draw(st.sampled_from([*SPECIAL_CHARS, "\n", "\r", "\r\n", "\x00", " ", "-", "+", *ODD_DIGITS]))
            number = number[:at] + inserted + number[at:]
    if draw(one_in(5)):
        return draw(st.one_of(odd_text(30), st.sampled_from(["", " ", "+", "0", "1" * 21])))
    return number


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


def expected_phone(form: dict[str, str]) -> str | None:
    """The number the gate may accept from this form, or None when it must refuse the number."""
    international = form.get("data[PHONE_NUMBER_INTERNATIONAL]", "").strip()
    raw = international or form.get("data[PHONE_NUMBER]", "")
    return raw.strip() if DIALLABLE.fullmatch(raw.strip()) else None


async def send(d: Desk, form: dict[str, str]) -> ClientResponse:
    """Post a form as Bitrix24 does: urlencoded UTF-8."""
    body = urlencode(form).encode()
    return await d.client.post(EVENTS_PATH, data=body, headers={"Content-Type": FORM})


# --- what must hold ------------------------------------------------------------------------------------------


async def assert_every_originate_is_plain_digits(d: Desk) -> None:
    """Drive every session the post started up to the client's leg, then run the rings through the ARI commands."""
    for key in list(d.dispatcher.started):
        d.desk.owns_event(PbxEvent(key, LegAnswered(key)))
    requests: list[dict[str, Any]] = []

    async def request(resource: str, operation: str, **params: Any) -> Any:
        requests.append({"operation": f"{resource}.{operation}", **params})
        return {"id": "bridge-1"}

    refused: list[PbxEvent] = []
    commands = CallCommands(
        d.settings.asterisk, AriTranslator(EndpointTemplate("PJSIP/{ext}")), request, refused.append
    )
    trunk = EndpointTemplate(d.settings.asterisk.trunk_endpoint, "number")
    for key, command in d.dispatcher.commands:
        if isinstance(command, RingNumber):
            assert DIALLABLE.fullmatch(command.number), command
            await commands.execute(key, command)
        elif isinstance(command, RingAgent):
            assert command.ext in d.settings.plan.employees, command
            await commands.execute(key, command)
    assert refused == [], "a number that passed the gate is dialable"
    for endpoint in d.ari.endpoints + [r["endpoint"] for r in requests if r["operation"].endswith("originateWithId")]:
        number = trunk.value_of(endpoint) or EndpointTemplate(d.settings.asterisk.agent_endpoint).value_of(endpoint)
        assert number is not None and DIALLABLE.fullmatch(number), endpoint


@fuzz_settings(150)
@given(data=st.data())
@example(data=None)
async def test_a_post_is_refused_with_a_logged_reason_or_only_plain_digits_are_dialled(
    desk: Desk, data: st.DataObject | None
) -> None:
    token = desk.settings.bitrix24.application_token.reveal()
    post = data.draw(posts(token)) if data is not None else Post(good_form(token, "+7 (916) 1234567"), True, "")
    desk.reset()
    response = await send(desk, post.form)
    body = await response.json()
    event(f"status {response.status}")
    refusals = desk.logs.events("clicktocall.rejected")
    phone = expected_phone(post.form)
    if not post.authentic:
        assert response.status == 401
    elif post.event.upper() not in (CLICK_TO_CALL, CALLBACK) or phone is None:
        assert response.status == 400
    if response.status == 200 and body == {"result": True}:
        assert not refusals and phone is not None and post.authentic
        assert desk.dispatcher.started or desk.ari.endpoints or desk.logs.events("callback.rejected")
    else:
        assert response.status in (200, 400, 401) and "error" in body
        assert [(line["reason"], line["status"]) for line in refusals] == [(body["error"], response.status)]
        assert not desk.dispatcher.commands and not desk.ari.endpoints
    await assert_every_originate_is_plain_digits(desk)


def good_form(token: str, phone: str, event: str = CLICK_TO_CALL) -> dict[str, str]:
    return {
        "event": event,
        "auth[application_token]": token,
        "data[PHONE_NUMBER]": phone,
        "data[CALL_ID]": f"externalCall.good{next(serials)}",
        "data[USER_ID]": "12",
        "data[LINE_NUMBER]": "74951112233",
    }


@pytest.mark.parametrize("event", [CLICK_TO_CALL, CALLBACK])
@pytest.mark.parametrize("inside", [*SPECIAL_CHARS, "\n", "\r\n", "\x00", "٣", "²"])
async def test_each_dial_string_character_inside_a_number_is_refused(desk: Desk, event: str, inside: str) -> None:
    token = desk.settings.bitrix24.application_token.reveal()
    response = await send(desk, good_form(token, f"7916{inside}1234567", event))
    assert response.status == 400
    [refusal] = desk.logs.events("clicktocall.rejected")
    assert "refused" in refusal["reason"] and refusal["status"] == 400
    assert not desk.dispatcher.commands and not desk.ari.endpoints


@pytest.mark.parametrize("event", [CLICK_TO_CALL, CALLBACK])
async def test_a_good_post_dials_the_number_it_names(desk: Desk, event: str) -> None:
    token = desk.settings.bitrix24.application_token.reveal()
    response = await send(desk, good_form(token, " +79161234567 ", event))
    assert response.status == 200 and await response.json() == {"result": True}
    await assert_every_originate_is_plain_digits(desk)
    trunk = EndpointTemplate(desk.settings.asterisk.trunk_endpoint, "number")
    dialled = [c.number for _, c in desk.dispatcher.commands if isinstance(c, RingNumber)]
    dialled += [trunk.value_of(endpoint) or "" for endpoint in desk.ari.endpoints]
    assert dialled == ["79161234567"]


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
    if phone is not None:
        assert DIALLABLE.fullmatch(phone) and checked_phone(phone) == phone
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
    if re.fullmatch(r"[0-9]{1,32}", number):
        [originate] = requests
        assert originate["endpoint"] == settings.asterisk.trunk_endpoint.format(number=number)
        assert not emitted
    else:
        assert requests == []
        [refused] = capture.events("pbx.command_refused")
        assert refused["leg"] == "leg-1" and refused["reason"]
        [ended] = emitted
        assert isinstance(ended.event, LegEnded) and ended.event.outcome is LegOutcome.FAILED


# --- bodies that are no form at all ----------------------------------------------------------------------------

CONTENT_TYPES = [
    FORM,
    f"{FORM}; charset=utf-8",
    f"{FORM}; charset=latin-1",
    f"{FORM}; charset=utf-16",
    "multipart/form-data",
    "multipart/form-data; boundary=xyz",
    "application/json",
    "",
]


@fuzz_settings(150)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        odd_text(300).map(str.encode),
        st.just(b"--xyz\r\nContent-Disposition: form-data\r\n\r\n1\r\n--xyz--\r\n"),
        st.just(b"--xyz\r\nContent-Disposition: form-data; name=event\r\n\r\n\xff\r\n--xyz--\r\n"),
        st.just(b"a=%ff%fe&b=%"),
    ),
    content_type=st.sampled_from(CONTENT_TYPES),
)  # fmt: skip
async def test_a_body_that_is_no_form_is_answered_with_a_client_error(
    desk: Desk, body: bytes, content_type: str
) -> None:
    desk.reset()
    response = await desk.client.post(EVENTS_PATH, data=body, headers={"Content-Type": content_type})
    assert 400 <= response.status < 500, (response.status, await response.text())
    [refusal] = desk.logs.events("clicktocall.rejected")
    assert refusal["reason"] and refusal["status"] == response.status
    assert not desk.dispatcher.commands and not desk.ari.endpoints


@pytest.mark.xfail(
    strict=True,
    reason="bridge/http_api.py lets aiohttp's LookupError for an unknown charset through: 500, no logged reason "
    "(reported to the owner of http_api.py)",
)
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (f"{FORM}; charset=no-such-charset", b"event=ONEXTERNALCALLSTART"),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data; name=event\r\n"
         b"Content-Type: text/plain; charset=bogus\r\n\r\n1\r\n--xyz--\r\n"),
    ],
)  # fmt: skip
async def test_an_unknown_charset_is_a_client_error(desk: Desk, content_type: str, body: bytes) -> None:
    response = await desk.client.post(EVENTS_PATH, data=body, headers={"Content-Type": content_type})
    assert response.status == 400
    [refusal] = desk.logs.events("clicktocall.rejected")
    assert refusal["status"] == 400
