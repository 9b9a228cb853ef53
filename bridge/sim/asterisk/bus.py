"""Fan-out of events to AMI sessions and to ARI applications, with ARI's subscription rules.

An ARI application receives an event when it is subscribed to one of the objects the event is
about: channels it originated or that are in its Stasis, bridges it created or that its channels
entered, event sources it subscribed to (``endpoint:PJSIP/1001``, ``deviceState:PJSIP/1001``), or
everything when its WebSocket asked for ``subscribeAll=true``. The newest WebSocket of an app
replaces the older one, which gets ``ApplicationReplaced``, as on Asterisk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from bridge.sim.asterisk.model import Headers

log = structlog.get_logger(__name__)


class EventSocket(Protocol):
    """An ARI WebSocket as the bus sees it: a queue that sends JSON frames in order."""

    def push(self, event: dict[str, Any]) -> None: ...


@dataclass
class StasisApp:
    name: str
    socket: EventSocket | None = None
    subscribe_all: bool = False
    channels: set[str] = field(default_factory=set)  # sticky: originated, created, subscribed
    stasis_channels: set[str] = field(default_factory=set)  # only while in Stasis
    bridges: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)  # "endpoint:PJSIP/1001", "deviceState:X"
    allowed: list[dict[str, Any]] = field(default_factory=list)  # eventFilter: empty allows every type
    disallowed: list[dict[str, Any]] = field(default_factory=list)

    def allows(self, event: dict[str, Any]) -> bool:
        """The app's event filter (``res/stasis/app.c`` ``stasis_app_event_allowed``), which Asterisk applies to every
        message its socket sends: events, ``ApplicationReplaced`` and ``RESTResponse`` alike."""
        kind = event.get("type")
        if any(f.get("type") == kind for f in self.disallowed):
            return False
        return not self.allowed or any(f.get("type") == kind for f in self.allowed)

    def wants(self, channels: Iterable[str], bridges: Iterable[str], sources: Iterable[str]) -> bool:
        if self.subscribe_all:
            return True
        return (
            any(c in self.channels or c in self.stasis_channels for c in channels)
            or any(b in self.bridges for b in bridges)
            or any(s in self.sources for s in sources)
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "channel_ids": sorted(self.channels | self.stasis_channels),
            "bridge_ids": sorted(self.bridges),
            "endpoint_ids": sorted(s.split(":", 1)[1] for s in self.sources if s.startswith("endpoint:")),
            "device_names": sorted(s.split(":", 1)[1] for s in self.sources if s.startswith("deviceState:")),
            "events_allowed": self.allowed,
            "events_disallowed": self.disallowed,
        }


class EventBus:
    """Delivers AMI events to every logged-in session and ARI events to the apps that want them."""

    def __init__(self, asterisk_id: str) -> None:
        self.asterisk_id = asterisk_id
        self.apps: dict[str, StasisApp] = {}
        self.ami_sinks: list[Callable[[Headers], None]] = []

    # --- AMI -------------------------------------------------------------------------------
    def emit_ami(self, event: str, privilege: str, fields: Headers) -> None:
        message: Headers = [("Event", event), ("Privilege", f"{privilege},all"), *fields]
        for sink in list(self.ami_sinks):
            sink(message)

    # --- ARI -------------------------------------------------------------------------------
    def app(self, name: str) -> StasisApp:
        if name not in self.apps:
            self.apps[name] = StasisApp(name)
        return self.apps[name]

    def is_active(self, name: str) -> bool:
        app = self.apps.get(name)
        return app is not None and app.socket is not None

    def attach(self, names: list[str], socket: EventSocket, subscribe_all: bool) -> None:
        for name in names:
            app = self.app(name)
            replaced = {"type": "ApplicationReplaced"}
            if app.socket is not None and app.socket is not socket and app.allows(replaced):
                app.socket.push(self._stamp(replaced, name))
            app.socket = socket
            app.subscribe_all = subscribe_all
            log.info("sim.ari_app_registered", app=name, subscribe_all=subscribe_all)

    def detach(self, socket: EventSocket) -> None:
        for app in self.apps.values():
            if app.socket is socket:
                app.socket = None
                app.subscribe_all = False
                log.info("sim.ari_app_deactivated", app=app.name)

    def emit_ari(
        self,
        event: dict[str, Any],
        *,
        channels: Iterable[str] = (),
        bridges: Iterable[str] = (),
        sources: Iterable[str] = (),
    ) -> None:
        channel_ids, bridge_ids, source_ids = list(channels), list(bridges), list(sources)
        for app in self.apps.values():
            if app.socket is not None and app.wants(channel_ids, bridge_ids, source_ids) and app.allows(event):
                app.socket.push(self._stamp(dict(event), app.name))

    def broadcast_ari(self, event: dict[str, Any]) -> None:
        """Send to every connected app (``inject_ari_event``); keeps fields the caller set."""
        for app in self.apps.values():
            if app.socket is not None and app.allows(event):
                stamped = dict(event)
                stamped.setdefault("asterisk_id", self.asterisk_id)
                stamped.setdefault("application", app.name)
                app.socket.push(stamped)

    def _stamp(self, event: dict[str, Any], app: str) -> dict[str, Any]:
        event["asterisk_id"] = self.asterisk_id
        event["application"] = app
        return event

    # --- subscriptions ---------------------------------------------------------------------
    def forget_channel(self, channel_id: str) -> None:
        for app in self.apps.values():
            app.channels.discard(channel_id)
            app.stasis_channels.discard(channel_id)

    def forget_bridge(self, bridge_id: str) -> None:
        for app in self.apps.values():
            app.bridges.discard(bridge_id)
