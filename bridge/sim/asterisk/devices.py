"""Device states and endpoint (registration) states.

A phone's device state is derived from its channels as ``chan_pjsip_devicestate`` does (Asterisk 20
``channels/chan_pjsip.c``, ``main/devicestate.c``): each channel counts by its state (Down -> NOT_INUSE, Ringing
and Pre-ring -> RINGING, Busy -> BUSY, Up, Ring, Dialing ... -> INUSE; held -> ONHOLD) and the aggregate is
RINGINUSE when one rings while another is in use (held counts as in use), else the highest of INUSE > RINGING >
ONHOLD > NOT_INUSE. With no channels: NOT_INUSE when the endpoint is registered, UNAVAILABLE when it is not
(``UNAVAILABLE`` devices refuse calls: ``CHANUNAVAIL``). Local devices are ``INUSE`` while any of their channels
exists (even ringing, as recorded).

**The device state travels on its own path** (``reference/asterisk.md``, "Device-state events race the channel
events"): on a real PBX the ``INUSE`` of a phone that answers reaches the application before or after the
channel's ``ChannelStateChange``/``StasisStart``, about 40 % before. ``order`` makes either reachable from a test:

* ``device-first``: a phone's answer publishes its device state at once and the answer's channel events
  (``Newstate``/``ChannelStateChange`` Up, ``Dial ANSWER``, ``StasisStart``) follow ``lag`` seconds later;
* ``device-last``: every device state is published ``lag`` seconds after the channel change that caused it;
* ``random`` (default): each answer picks one of the two, other changes are published at once or ``lag`` later,
  by a seeded generator (``seed``), so a run can be repeated.

Publications keep their order per PBX (a FIFO), whatever their delays.

**A device this PBX does not have** reads ``INVALID``, as on a real one: ``chan_pjsip_devicestate`` for an endpoint
pjsip.conf lacks, ``local_devicestate`` for an extension its context lacks. By default the simulator has every
device (a test names no configuration); :meth:`Devices.configure` gives it a PBX's own set (an office whose phones
are 1001-1002 has no 1003).
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from bridge.sim.asterisk.model import Channel
    from bridge.sim.asterisk.pbx import Pbx

Order = Literal["device-first", "device-last", "random"]
ORDERS: tuple[Order, ...] = ("device-first", "device-last", "random")

CHANNEL_DEVICE_STATE = {
    "Down": "NOT_INUSE",
    "Rsrvd": "INUSE",
    "OffHook": "INUSE",
    "Dialing": "INUSE",
    "Ring": "INUSE",
    "Ringing": "RINGING",
    "Up": "INUSE",
    "Busy": "BUSY",
    "Dialing Offhook": "INUSE",
    "Pre-ring": "RINGING",
}
"""``chan2dev`` of ``main/devicestate.c``."""

_RANK = {"UNKNOWN": 1, "NOT_INUSE": 3, "INUSE": 6, "BUSY": 7, "INVALID": 0, "UNAVAILABLE": 2, "RINGING": 5,
         "RINGINUSE": 8, "ONHOLD": 4}  # fmt: skip
"""``state_order`` of ``ast_devstate_aggregate_add``."""


def aggregate(states: Iterable[str]) -> str | None:
    """``ast_devstate_aggregate_add`` over ``states``; None when there were none (INVALID)."""
    result, ringing, inuse = "INVALID", False, False
    for state in states:
        ringing = ringing or state == "RINGING"
        inuse = inuse or state in ("INUSE", "ONHOLD", "BUSY")
        if ringing and inuse:
            result = "RINGINUSE"
        elif _RANK[state] > _RANK[result]:
            result = state
    return None if result == "INVALID" else result


def phone_state(registered: bool, channels: Iterable[Channel]) -> str:
    """What ``chan_pjsip_devicestate`` reports for an endpoint with these live channels."""
    found = aggregate("ONHOLD" if c.on_hold else CHANNEL_DEVICE_STATE.get(c.state, "UNKNOWN") for c in channels)
    if found is not None:
        return found
    return "NOT_INUSE" if registered else "UNAVAILABLE"


class Devices:
    def __init__(self, pbx: Pbx) -> None:
        self.pbx = pbx
        self.states: dict[str, str] = {}
        self.endpoints: dict[str, str] = {}  # "PJSIP/1001" -> "online" | "offline"
        self.channels: dict[str, dict[str, Channel]] = {}
        """Device -> the PBX's channels on it, so that a refresh looks at that device's channels only."""
        self.order: Order = "random"
        self.lag = 0.02
        self.rng = random.Random(20261207)
        self._pending: deque[tuple[str, str]] = deque()
        self.configured: frozenset[str] | None = None
        """The devices this PBX has (None: every one); any other reads INVALID."""

    def configure(self, devices: Iterable[str] | None) -> None:
        """The devices this PBX has (``PJSIP/1001``, ``Local/1001@agents``); None: every device."""
        self.configured = None if devices is None else frozenset(devices)

    def track(self, channel: Channel) -> None:
        """``channel`` is now in the PBX's channel table."""
        self.channels.setdefault(channel.device, {})[channel.id] = channel

    def forget(self, channel: Channel | None) -> None:
        """``channel`` has left the PBX's channel table (None: nothing did)."""
        if channel is not None and self.channels.get(channel.device, {}).get(channel.id) is channel:
            del self.channels[channel.device][channel.id]

    def state_of(self, device: str) -> str:
        if self.configured is not None and device not in self.configured and not device.startswith("Stasis:"):
            return "INVALID"
        if device in self.states:
            return self.states[device]
        if self.endpoints.get(device) == "offline":
            return "UNAVAILABLE"
        return "UNKNOWN" if device.startswith(("Local/", "Stasis:")) else "NOT_INUSE"

    def is_offline(self, device: str) -> bool:
        return self.endpoints.get(device) == "offline"

    def derived(self, device: str, *, answering: Channel | None = None) -> str:
        """The device's state from its live channels (``answering`` counted as Up already)."""
        live = [c for c in self.channels.get(device, {}).values() if not c.destroyed]
        if device.startswith("Local/"):
            return "INUSE" if live else "NOT_INUSE"
        if answering is not None:
            live = [c for c in live if c is not answering]
            up = "ONHOLD" if answering.on_hold else "INUSE"
            found = aggregate([up, *("ONHOLD" if c.on_hold else CHANNEL_DEVICE_STATE.get(c.state, "UNKNOWN")
                                     for c in live)])  # fmt: skip
            return found or "INUSE"
        return phone_state(not self.is_offline(device), live)

    def refresh(self, device: str) -> None:
        """Recompute a device's state from its channels and report it if it changed."""
        state = self.derived(device)
        if self.states.get(device) != state:
            self.states[device] = state
            self._publish(device, state, self._delay())

    def answer_leads(self, channel: Channel) -> bool:
        """Whether the answer of phone channel ``channel`` is published as a device state before its channel
        events (which the caller then defers by ``lag``); the device state is published here when it is."""
        if channel.device.startswith("Local/"):
            return False
        first = self.order == "device-first" or (self.order == "random" and self.rng.random() < 0.5)
        if not first:
            return False
        state = self.derived(channel.device, answering=channel)
        if self.states.get(channel.device) != state:
            self.states[channel.device] = state
            self._publish(channel.device, state, 0.0)
        return True

    def set_state(self, device: str, state: str) -> None:
        """A device state set from outside (``PUT /deviceStates``, a test): published at once."""
        self.states[device] = state
        self._publish(device, state, 0.0)

    def _delay(self) -> float:
        if self.order == "device-last":
            return self.lag
        if self.order == "random":
            return self.rng.choice((0.0, self.lag))
        return 0.0

    def _publish(self, device: str, state: str, delay: float) -> None:
        if delay <= 0 and not self._pending:
            self._emit(device, state)
            return
        self._pending.append((device, state))
        asyncio.get_running_loop().call_later(max(0.0, delay), self._emit_next)

    def _emit_next(self) -> None:
        if self._pending:
            self._emit(*self._pending.popleft())

    def _emit(self, device: str, state: str) -> None:
        """AMI ``DeviceStateChange``; ARI ``DeviceStateChanged`` to apps subscribed to the device."""
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
        self.refresh(endpoint)
