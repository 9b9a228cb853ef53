"""Device states and endpoint (registration) states.

A device's state follows its channels as Asterisk's device state engine reports it: Local
devices are ``INUSE`` while any of their channels exists (even ringing, as recorded), other
devices ``RINGING`` then ``INUSE`` once Up, ``NOT_INUSE`` when idle. An offline endpoint is
``UNAVAILABLE`` and dialing it gives ``CHANUNAVAIL``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.sim.asterisk.model import Channel
    from bridge.sim.asterisk.pbx import Pbx


class Devices:
    def __init__(self, pbx: Pbx) -> None:
        self.pbx = pbx
        self.states: dict[str, str] = {}
        self.endpoints: dict[str, str] = {}  # "PJSIP/1001" -> "online" | "offline"
        self.channels: dict[str, dict[str, Channel]] = {}
        """Device -> the PBX's channels on it, so that a refresh looks at that device's channels only."""

    def track(self, channel: Channel) -> None:
        """``channel`` is now in the PBX's channel table."""
        self.channels.setdefault(channel.device, {})[channel.id] = channel

    def forget(self, channel: Channel | None) -> None:
        """``channel`` has left the PBX's channel table (None: nothing did)."""
        if channel is not None and self.channels.get(channel.device, {}).get(channel.id) is channel:
            del self.channels[channel.device][channel.id]

    def state_of(self, device: str) -> str:
        if device in self.states:
            return self.states[device]
        if self.endpoints.get(device) == "offline":
            return "UNAVAILABLE"
        return "UNKNOWN" if device.startswith(("Local/", "Stasis:")) else "NOT_INUSE"

    def is_offline(self, device: str) -> bool:
        return self.endpoints.get(device) == "offline"

    def refresh(self, device: str) -> None:
        """Recompute a device's state from its channels and report it if it changed."""
        if self.is_offline(device):
            return
        live = [c for c in self.channels.get(device, {}).values() if not c.destroyed]
        if not live:
            state = "NOT_INUSE"
        elif device.startswith("Local/") or any(c.state == "Up" for c in live):
            state = "INUSE"
        else:
            state = "RINGING"
        if self.states.get(device) != state:
            self.set_state(device, state)

    def set_state(self, device: str, state: str) -> None:
        """AMI ``DeviceStateChange``; ARI ``DeviceStateChanged`` to apps subscribed to the device."""
        self.states[device] = state
        self.pbx.ami("DeviceStateChange", [("Device", device), ("State", state)])
        self.pbx.ari(
            "DeviceStateChanged",
            after={"device_state": {"name": device, "state": state}},
            sources=(f"deviceState:{device}",),
        )

    def set_endpoint_state(self, endpoint: str, state: str) -> None:
        """ContactStatus + PeerStatus on AMI, EndpointStateChange on ARI, and the device state."""
        tech, _, resource = endpoint.partition("/")
        self.endpoints[endpoint] = state
        if state == "online":
            contact_states, peer_state = ["Created", "Reachable"], "Reachable"
        else:
            contact_states, peer_state = ["Removed"], "Unreachable"
        uri = f"sip:{resource}@127.0.0.1:5060"
        for contact_state in contact_states:
            self.pbx.ami(
                "ContactStatus",
                [("URI", uri), ("ContactStatus", contact_state), ("AOR", resource), ("EndpointName", resource),
                 ("RoundtripUsec", "0")],
                "system",
            )  # fmt: skip
        self.pbx.ami("PeerStatus", [("ChannelType", tech), ("Peer", endpoint), ("PeerStatus", peer_state)], "system")
        ids = [c.id for c in self.pbx.channels.values() if c.device == endpoint]
        self.pbx.ari(
            "EndpointStateChange",
            after={"endpoint": {"technology": tech, "resource": resource, "state": state, "channel_ids": ids}},
            sources=(f"endpoint:{endpoint}", f"endpoint:{tech}"),
        )
        self.set_state(endpoint, "NOT_INUSE" if state == "online" else "UNAVAILABLE")
