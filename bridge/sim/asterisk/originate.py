"""ARI originate, ``channels/create`` + ``dial``: channels an application asks for.

``POST /channels`` with ``app`` subscribes the app to the new channel(s) right after they are
created (so it does not see ``ChannelCreated``), starts dialing, and puts the ``;1`` into Stasis
with ``appArgs`` once the party answers. ``POST /channels/create`` puts the channel into Stasis at
once (state Down); ``POST /channels/{id}/dial`` then rings it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bridge.sim.asterisk.causes import NORMAL_CLEARING
from bridge.sim.asterisk.legs import Leg
from bridge.sim.asterisk.model import CallerId, Channel
from bridge.sim.asterisk.parties import Unregistered

if TYPE_CHECKING:
    from bridge.sim.asterisk.pbx import Pbx

_CALLER_ID = re.compile(r'^\s*(?:"(?P<quoted>[^"]*)"|(?P<bare>[^<]*?))\s*<(?P<number>[^>]*)>\s*$')


def parse_caller_id(text: str) -> CallerId:
    """``"Иван Петров" <79161234567>`` -> CallerId(name, number); a bare number is just the number."""
    match = _CALLER_ID.match(text)
    if match is None:
        return CallerId("", text.strip())
    name = match.group("quoted") if match.group("quoted") is not None else (match.group("bare") or "")
    return CallerId(name.strip(), match.group("number").strip())


class OriginateError(ValueError):
    """Bad originate parameters (HTTP 400 / AMI error)."""


class AllocationFailed(RuntimeError):
    """Asterisk could not create the channel at all: a PJSIP endpoint with no registered contact ("Could not
    create dialog to invalid URI"). ARI answers 500 ``{"error":"Allocation failed"}`` and sends no event; AMI
    Originate fails with ``Reason: 0`` (seen on Asterisk 20.20.1 with the kit's unregistered phones)."""


@dataclass
class OriginateRequest:
    endpoint: str
    app: str | None = None
    app_args: list[str] = field(default_factory=list)
    context: str | None = None
    extension: str | None = None
    caller_id: str | None = None
    timeout: float | None = 30.0
    variables: dict[str, str] = field(default_factory=dict)
    channel_id: str | None = None
    other_channel_id: str | None = None


def split_endpoint(endpoint: str) -> tuple[str, str]:
    tech, sep, resource = endpoint.partition("/")
    if not sep or not tech or not resource:
        raise OriginateError(f"Endpoint must be in the form Technology/resource, not {endpoint!r}")
    return tech, resource


class Originator:
    def __init__(self, pbx: Pbx) -> None:
        self.pbx = pbx
        self.waiting: dict[str, Leg] = {}  # channels/create'd legs waiting for /dial

    def prepare(self, request: OriginateRequest) -> Leg:
        """Create the channel(s), subscribe the app, return the (not yet begun) leg."""
        tech, resource = split_endpoint(request.endpoint)
        pbx = self.pbx
        inner: Channel | None = None
        if tech.lower() == "local":
            outer, inner = pbx.local_pair(resource, ids=(request.channel_id, request.other_channel_id))
            dialstring = resource
        else:
            if pbx.devices.is_offline(pbx.device_of(request.endpoint)) or isinstance(
                pbx.parties.for_endpoint(request.endpoint), Unregistered
            ):
                raise AllocationFailed(request.endpoint)
            outer = pbx.single_channel(request.endpoint, uniqueid=request.channel_id)
            dialstring = resource
        outer.set_dialplan("AppDial2", "(Outgoing Line)")
        outer.home_dialplan = ("AppDial2", "(Outgoing Line)")
        if request.caller_id:
            caller = parse_caller_id(request.caller_id)
            pbx.set_caller(outer, caller)
            pbx.set_connected(outer, caller)
        for name, value in request.variables.items():
            pbx.set_var(outer, name, value)
        if request.app:
            app = pbx.bus.app(request.app)
            app.channels.add(outer.id)
            if inner is not None:
                app.channels.add(inner.id)
        party = pbx.parties.for_endpoint(request.endpoint)
        return Leg(pbx, outer=outer, inner=inner, dialstring=dialstring, party=party, timeout=request.timeout)

    def originate(self, request: OriginateRequest) -> Channel:
        leg = self.prepare(request)
        outer, app = leg.outer, request.app
        if app is not None:
            leg.on_answer = lambda: self._enter(outer, app, request.app_args)
        elif request.extension:
            context, exten = request.context or "default", request.extension
            leg.on_answer = lambda: self._goto(outer, context, exten)
        leg.begin(request.variables)
        return outer

    def create(self, request: OriginateRequest) -> Channel:
        """``channels/create``: in Stasis at once, dialed later by :meth:`dial`."""
        leg = self.prepare(request)
        self.waiting[leg.outer.id] = leg

        def forget() -> None:
            self.waiting.pop(leg.outer.id, None)

        leg.outer.hangup_hooks.append(forget)
        if request.app is not None:
            self._enter(leg.outer, request.app, request.app_args)
        return leg.outer

    def dial(self, channel: Channel, caller: Channel | None, timeout: float | None) -> bool:
        leg = self.waiting.pop(channel.id, None)
        if leg is None:
            return False
        leg.caller, leg.timeout = caller, timeout
        leg.begin()
        return True

    def _enter(self, channel: Channel, app: str, args: list[str]) -> None:
        if not self.pbx.enter_stasis(channel, app, args):
            self.pbx.hangup(channel, NORMAL_CLEARING, "dialplan")

    def _goto(self, channel: Channel, context: str, exten: str) -> None:
        channel.context, channel.exten = context, exten
        self.pbx.dialplan_step(channel, "NoOp", f"Originated call to {exten}@{context}", priority=1)
