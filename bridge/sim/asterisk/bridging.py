"""Bridges: create, enter, leave, destroy, music on hold; BRIDGEPEER, connected line, linkedid.

As recorded: the app that creates a bridge is subscribed to it only after ``BridgeCreated`` went
out (so it does not see that event); a channel entering sets ``BRIDGEPEER`` on the members whose
peers changed and takes the oldest ``Linkedid`` of the bridge; a channel leaving gets
``BRIDGEPEER=""`` then ``ChannelLeftBridge``. Music on hold puts an ``Announcer/ARI_MOH-N;2``
channel into the bridge (it shows in ``channels`` and ``BRIDGEPEER`` but has no events). Its class is the one
asked for if musiconhold.conf has it, else ``default`` (res_musiconhold's ``local_ast_moh_start``: a warning in
Asterisk's log, the request still answered 204); without ``default`` either, the caller hears silence.
"""

from __future__ import annotations

import sys
import uuid
from typing import TYPE_CHECKING

from bridge.sim.asterisk.model import Bridge, CallerId, Channel, now

if TYPE_CHECKING:
    from bridge.sim.asterisk.pbx import Pbx


class Bridging:
    def __init__(self, pbx: Pbx) -> None:
        self.pbx = pbx
        self.moh_classes: set[str] = {"default"}
        """The classes musiconhold.conf defines."""
        self.moh_played: list[tuple[str, str, str]] = []
        """(bridge id, class asked for, class that plays: "" for silence), for tests to read."""

    def create(
        self,
        *,
        bridge_id: str | None = None,
        name: str = "",
        bridge_type: str = "mixing",
        creator_app: str | None = None,
        basic: bool = False,
    ) -> Bridge:
        bridge = Bridge(id=bridge_id or str(uuid.uuid4()), name=name, created_at=now(), bridge_type=bridge_type)
        if basic:  # what app_dial creates when a dialplan Dial() is answered
            bridge.bridge_class, bridge.creator, bridge.video_mode = "basic", "", "none"
        self.pbx.bridges[bridge.id] = bridge
        self.pbx.ami("BridgeCreate", bridge.ami_fields())
        self.pbx.ari("BridgeCreated", after={"bridge": bridge.as_json()}, bridges=(bridge,))
        if creator_app is not None:
            self.pbx.bus.app(creator_app).bridges.add(bridge.id)
        return bridge

    def add(self, bridge: Bridge, channel: Channel) -> None:
        if channel.bridge is bridge:
            return
        if channel.bridge is not None:
            self.remove(channel)
        bridge.channels.append(channel)
        channel.bridge = bridge
        if channel.stasis_app is not None:
            self.pbx.bus.app(channel.stasis_app).bridges.add(bridge.id)
        order = self.pbx.creation_order
        oldest = min((c.linkedid for c in bridge.channels), key=lambda linkedid: order.get(linkedid, sys.maxsize))
        for member in bridge.channels:
            member.linkedid = oldest
        self.pbx.ari("ChannelEnteredBridge", channel, after={"bridge": bridge.as_json()}, bridges=(bridge,))
        self.pbx.ami("BridgeEnter", [*bridge.ami_fields(), *channel.ami_fields()])
        self._update_peers(bridge)
        for hook in list(self.pbx.bridge_hooks):
            hook(bridge)

    def remove(self, channel: Channel) -> None:
        bridge = channel.bridge
        if bridge is None:
            return
        bridge.channels.remove(channel)
        channel.bridge = None
        if channel.variables.get("BRIDGEPEER"):
            self.pbx.set_var(channel, "BRIDGEPEER", "")
        self.pbx.ari("ChannelLeftBridge", channel, after={"bridge": bridge.as_json()}, bridges=(bridge,))
        self.pbx.ami("BridgeLeave", [*bridge.ami_fields(), *channel.ami_fields()])

    def destroy(self, bridge: Bridge) -> None:
        if bridge.destroyed:
            return
        for channel in list(bridge.channels):
            self.remove(channel)
        bridge.moh_channel = None
        bridge.destroyed = True
        self.pbx.media.stop_bridge_media(bridge)
        self.pbx.bridges.pop(bridge.id, None)
        self.pbx.ari("BridgeDestroyed", after={"bridge": bridge.as_json()}, bridges=(bridge,))
        self.pbx.ami("BridgeDestroy", bridge.ami_fields())
        self.pbx.bus.forget_bridge(bridge.id)

    def start_moh(self, bridge: Bridge, moh_class: str = "") -> None:
        if bridge.moh_channel is not None:
            return
        asked = moh_class or "default"
        playing = next((c for c in (asked, "default") if c in self.moh_classes), "")
        self.moh_played.append((bridge.id, moh_class, playing))
        suffix = self.pbx.ids.unreal_suffix()
        self.pbx.ids.uniqueid(now())  # the Announcer ;1 takes an id too
        bridge.moh_channel = (self.pbx.ids.uniqueid(now()), f"Announcer/ARI_MOH-{suffix};2")
        self._update_peers(bridge)

    def stop_moh(self, bridge: Bridge) -> None:
        bridge.moh_channel = None

    def _update_peers(self, bridge: Bridge) -> None:
        """Set BRIDGEPEER (and connected line, with one peer) where the set of peers changed."""
        names = [(c, c.name) for c in bridge.channels]
        moh_name = bridge.moh_channel[1] if bridge.moh_channel is not None else None
        for channel in bridge.channels:
            peers = [name for other, name in names if other is not channel]
            if moh_name is not None:
                peers.append(moh_name)
            if not peers:
                continue
            value = ",".join(peers)
            if channel.variables.get("BRIDGEPEER", "") != value:
                self.pbx.set_var(channel, "BRIDGEPEER", value)
        for channel in bridge.channels:
            others = [c for c in bridge.channels if c is not channel]
            if moh_name is not None and not others:
                self.pbx.set_connected(channel, CallerId())
            elif len(others) == 1 and moh_name is None:
                self.pbx.set_connected(channel, others[0].caller)
