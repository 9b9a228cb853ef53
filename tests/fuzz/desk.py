"""The click-to-call desk behind the daemon's real HTTP app, with spies where the dispatcher and the PBX would be."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from bridge.clicktocall import ClickToCallDesk
from bridge.config import Secret, Settings, load_config
from bridge.crm.inbound import EventGate
from bridge.domain.commands import PbxCommand, RingAgent, RingNumber
from bridge.domain.events import LegAnswered
from bridge.ops.http_api import EVENTS_PATH, event_routes, events_app
from bridge.ops.metrics import Metrics
from bridge.pbx.ari_commands import CallCommands
from bridge.pbx.events import PbxEvent
from bridge.pbx.outcomes import EndpointTemplate
from bridge.pbx.translate import AriTranslator
from tests.fuzz.capture import LogCapture
from tests.fuzz.strategies import EXAMPLE_CONFIG

DIALLABLE = re.compile(r"\+?[0-9]{3,20}")
"""What a number may look like when the desk hands it on (``bridge.phone.reduce_number``)."""
PLAIN_DIGITS = re.compile(r"[0-9]{3,20}")
"""What an external number looks like in an originated endpoint (after ``asterisk.dial_rules``)."""
EXTENSIONS = {11: "1001", 12: "1002", 13: "1003"}
CLICK_TO_CALL, CALLBACK = "ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART"
FORM = "application/x-www-form-urlencoded"

serials = itertools.count(1)


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


@asynccontextmanager
async def open_desk(capture: LogCapture) -> AsyncIterator[Desk]:
    """The example config's desk behind ``/b24/events`` on 127.0.0.1 (a free port), with a test client."""
    example = load_config(EXAMPLE_CONFIG)  # a local application: its token comes with the install
    settings = replace(example, bitrix24=replace(example.bitrix24, application_token=Secret("token-of-the-install")))
    dispatcher, ari = SpyDispatcher(settings), SpyOriginator()
    clicktocall = ClickToCallDesk(settings, ari, Directory())
    clicktocall.attach(dispatcher)  # type: ignore[arg-type]
    gate = EventGate(settings.bitrix24.application_token.reveal())
    app = events_app(event_routes(metrics=Metrics(), gate=gate, on_event=clicktocall.on_event))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield Desk(settings, dispatcher, ari, clicktocall, client, capture)


async def send(d: Desk, form: dict[str, str]) -> ClientResponse:
    """Post a form as Bitrix24 does: urlencoded UTF-8."""
    body = urlencode(form).encode()
    return await d.client.post(EVENTS_PATH, data=body, headers={"Content-Type": FORM})


def good_form(token: str, phone: str, event: str = CLICK_TO_CALL) -> dict[str, str]:
    return {
        "event": event,
        "auth[application_token]": token,
        "data[PHONE_NUMBER]": phone,
        "data[CALL_ID]": f"externalCall.good{next(serials)}",
        "data[USER_ID]": "12",
        "data[LINE_NUMBER]": "74951112233",
    }


async def assert_every_originate_is_plain_digits(d: Desk) -> list[str]:
    """Drive every session the post started up to the client's leg, then run the rings through the ARI commands;
    return the external numbers originated (the trunk's digits)."""
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
    external: list[str] = []
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
        if trunk.value_of(endpoint):
            assert PLAIN_DIGITS.fullmatch(number), endpoint
            external.append(number)
    return external
