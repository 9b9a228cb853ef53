"""Our panoramisk protocol: events no action waits for go straight to the link; the rest takes panoramisk's way."""

from __future__ import annotations

import asyncio
from typing import Any

from structlog.testing import capture_logs

from bridge.pbx.ami_protocol import LinkManager, Utf8AmiProtocol


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent.append(bytes(data))

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def frame(*headers: tuple[str, str]) -> bytes:
    return "".join(f"{name}: {value}\r\n" for name, value in headers).encode() + b"\r\n"


async def connected() -> tuple[LinkManager, Utf8AmiProtocol, list[Any], list[Any]]:
    """A manager and its protocol; the events handed straight over, and those panoramisk dispatched."""
    loop = asyncio.get_running_loop()
    manager = LinkManager(asyncio.Event(), loop=loop, ping_delay=3600)
    dispatched: list[Any] = []
    manager.register_event("*", lambda _manager, message: dispatched.append(message))
    protocol = Utf8AmiProtocol()
    straight: list[Any] = []
    protocol.on_event = straight.append
    protocol.connection_made(Transport())
    made: asyncio.Future[tuple[asyncio.Transport, Utf8AmiProtocol]] = loop.create_future()
    made.set_result((protocol.transport, protocol))
    manager.connection_made(made)
    protocol.data_received(b"Asterisk Call Manager/9.0.0\r\n")
    return manager, protocol, straight, dispatched


async def test_answers_reach_their_action_while_events_go_straight_to_the_link() -> None:
    manager, protocol, straight, dispatched = await connected()
    pending = manager.send_action({"Action": "DeviceStateList"})
    action_id = next(iter(protocol.responses.values())).id
    protocol.data_received(
        frame(("Response", "Success"), ("ActionID", action_id), ("EventList", "start"))
        + frame(("Event", "Hangup"), ("Privilege", "call,all"), ("Uniqueid", "1.1"))
        + frame(("Event", "DeviceStateChange"), ("ActionID", action_id), ("Device", "PJSIP/1001"), ("State", "BUSY"))
        + frame(("Event", "OriginateResponse"), ("ActionID", "another/client/1"), ("Response", "Success"))
        + frame(("Event", "DeviceStateListComplete"), ("ActionID", action_id), ("EventList", "Complete"))
    )
    answer = await asyncio.wait_for(pending, 1)
    assert [m.get("Event") for m in answer] == [None, "DeviceStateChange", "DeviceStateListComplete"]
    assert [m.get("Uniqueid") for m in straight] == ["1.1"], "the list's items are the action's, not events"
    assert [m.get("Event") for m in dispatched] == ["OriginateResponse"], "another client's answer: as before"
    manager.close()


async def test_a_shutdown_still_ends_the_session_and_odd_frames_are_logged() -> None:
    manager, protocol, straight, dispatched = await connected()
    with capture_logs() as logs:
        protocol.data_received(
            frame(("Event", "Hangup"), ("Event", "Hangup"), ("Uniqueid", "1.1"))  # a header that must be single
            + b"no colon here\r\n\r\n"
            + frame(("Event", "Shutdown"), ("Privilege", "system,all"), ("Shutdown", "Cleanly"))
        )
    reasons = [entry["reason"] for entry in logs if entry["event"] == "pbx.bad_input"]
    assert reasons == [
        "Event header repeated in one message",
        "not an AMI message (13 characters, no Event or Response)",
    ]
    assert straight == [] and [m.get("Event") for m in dispatched] == ["Shutdown"]
    assert manager.lost.is_set(), "panoramisk closes on Shutdown and the link reconnects"
