"""panoramisk 1.4, wrapped: a protocol that decodes UTF-8 across reads and hands unsolicited events straight to
the link, and a manager that leaves reconnecting and pinging to :class:`bridge.pbx.ami.AmiLink`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

from bridge.pbx.ami_stream import AmiStreamDecoder, BadFrame, event_headers, parse
from bridge.pbx.events import PbxError
from bridge.pbx.wire import AmiMessage

log = structlog.get_logger(__name__)


class Utf8AmiProtocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol, reading through :class:`AmiStreamDecoder` and reporting bad frames.

    An event that carries no ActionID or CommandID (no action waits for it) goes to :attr:`on_event` when it is
    set, past panoramisk's ``handle_message`` and ``Manager.dispatch`` (a lookup among the pending actions and a
    match of every registered pattern, for each of the thousands of events a busy PBX sends). Responses, list
    items, events with an ActionID (ours or another client's) and ``Shutdown`` (panoramisk closes on it) still
    take panoramisk's way. Such an event reaches :attr:`on_event` as a plain dict
    (:func:`bridge.pbx.ami_stream.event_headers`), an odd one (a header twice, a line without ``": "``) as a
    panoramisk ``Message``.
    """

    version: str | None
    on_event: Callable[[AmiMessage], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.stream = AmiStreamDecoder()

    def data_received(self, data: bytes) -> None:
        on_event = self.on_event
        for text in self.stream.frames(data):
            if on_event is not None and isinstance(text, str):
                headers = event_headers(text)
                if headers is not None:
                    on_event(headers)
                    continue
            item = parse(text) if isinstance(text, str) else text
            if isinstance(item, BadFrame):
                log.warning("pbx.bad_input", link="ami", reason=item.reason)
            elif on_event is not None and _unsolicited(item._store):
                on_event(item)
            else:
                self.handle_message(item)
        if self.version is None and self.stream.version is not None:
            self.version = self.stream.version


def _unsolicited(store: dict[str, tuple[str, Any]]) -> bool:
    """An event no action waits for (the frame's store: lower-case name -> (name, value))."""
    event = store.get("event")
    return (
        event is not None
        and "actionid" not in store
        and "commandid" not in store
        and str(event[1]).lower() != "shutdown"
    )


class LinkManager(Manager):  # type: ignore[misc]
    """One connection, driven by :class:`AmiLink`: no reconnect and no unchecked ping of its own."""

    pinger: asyncio.TimerHandle | None

    def __init__(self, lost: asyncio.Event, **config: Any) -> None:
        super().__init__(**config)
        self.lost = lost

    def ping(self) -> None:
        """Our watchdog pings and checks the answer."""

    def connection_lost(self, exc: BaseException | None) -> None:
        self._connected = False
        if self.pinger is not None:
            self.pinger.cancel()
            self.pinger = None
        self.fail_pending()
        self.lost.set()

    def fail_pending(self) -> None:
        """Fail the actions still waiting for an answer (panoramisk would resend them after a reconnect)."""
        pending = list(self.awaiting_actions)
        self.awaiting_actions.clear()
        if self.protocol is not None:
            pending += list(self.protocol.responses.values())
            self.protocol.responses.clear()
        for action in pending:
            if not action.future.done():
                action.future.set_exception(PbxError(0, "AMI connection lost", action=str(action["action"])))
