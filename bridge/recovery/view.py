"""What the PBX has now, as recovery needs it: channels, bridges, and who is in a conversation with whom.

A conversation is a bridge holding two or more *real* channels. Asterisk puts helper channels into bridges too:
music on hold is an ``Announcer/ARI_MOH-…`` member, a bridge recording a ``Recorder/…`` one, snooping a
``Snoop/…`` one (and ConfBridge its ``CBAnn``/``CBRec``, external media ``UnicastRTP``/``AudioSocket``); the
simulator, like Asterisk, lists the MOH Announcer among a bridge's ``channels`` (real Asterisk also lists it in
``GET /channels``). A caller alone on hold is therefore not talking: only members that are listed channels and
not helpers count.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog

from bridge.pbx import snapshots, wire
from bridge.pbx.events import LiveChannel

log = structlog.get_logger(__name__)

HELPER_TECHNOLOGIES = ("Announcer/", "Recorder/", "Snoop/", "CBAnn/", "CBRec/", "UnicastRTP/", "AudioSocket/")
"""Channel technologies Asterisk uses for media helpers, never a person on the line."""


class AriView(Protocol):
    async def channels(self) -> list[dict[str, Any]]: ...

    async def request(self, resource: str, operation: str, **params: object) -> Any: ...


class AmiView(Protocol):
    @property
    def connected(self) -> bool: ...

    async def core_show_channels(self) -> list[dict[str, str]]: ...


def is_helper(name: str) -> bool:
    return name.startswith(HELPER_TECHNOLOGIES)


@dataclass(frozen=True)
class Conversation:
    bridge: str
    partners: tuple[LiveChannel, ...]
    """The real channels in the bridge besides the one asked about."""


@dataclass
class PbxView:
    """One look at the PBX: ARI channels by id, bridges (id -> member ids) and AMI's channels by Linkedid."""

    channels: dict[str, LiveChannel] = field(default_factory=dict)
    bridges: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ami: dict[str, list[LiveChannel]] = field(default_factory=dict)
    """Linkedid -> its channels (AMI ``CoreShowChannels``), for calls only AMI watches."""
    ami_bridges: dict[str, list[LiveChannel]] = field(default_factory=dict)
    """AMI BridgeId -> its channels."""
    ami_ids: set[str] = field(default_factory=set)
    bridge_names: dict[str, str] = field(default_factory=dict)
    """ARI bridge id -> the name it was created with (``call-<call>`` for ours)."""
    bridge_created: dict[str, datetime] = field(default_factory=dict)
    """ARI bridge id -> its ``creationtime`` (where Asterisk gives one)."""

    def live(self, call: str) -> bool:
        """``call`` (a caller's channel id, or a Linkedid) still exists."""
        return call in self.channels or call in self.ami or call in self.ami_ids

    def conversation(self, call: str) -> Conversation | None:
        """The bridge where ``call`` talks with at least one real channel, if any."""
        for bridge, members in self.bridges.items():
            if call in members:
                partners = tuple(self.channels[m] for m in members if m != call and self._real(m))
                if partners:
                    return Conversation(bridge, partners)
        if call in self.channels:
            return None
        for bridge, ami_members in self.ami_bridges.items():
            real = [c for c in ami_members if not is_helper(c.name)]
            ours = [c for c in real if call in (c.id, c.linkedid)]
            if ours and len(real) >= 2:
                return Conversation(bridge, tuple(c for c in real if c not in ours))
        return None

    def bridges_of(self, channel: str) -> list[str]:
        return [bridge for bridge, members in self.bridges.items() if channel in members]

    def bridge_named(self, name: str) -> str:
        """The id of the ARI bridge created as ``name`` ('' when there is none)."""
        return next((bridge for bridge, named in self.bridge_names.items() if named == name), "")

    def _real(self, member: str) -> bool:
        channel = self.channels.get(member)
        return channel is not None and not is_helper(channel.name)


async def pbx_view(ari: AriView, ami: AmiView) -> PbxView:
    """Look at the PBX now (ARI channels and bridges; AMI channels when AMI is connected)."""
    view = PbxView()
    for item in await ari.channels():
        try:
            channel = snapshots.from_ari(item)
        except wire.Malformed as exc:
            log.warning("pbx.bad_input", link="ari", reason=f"channel list: {exc}")
            continue
        view.channels[channel.id] = channel
    listed = await ari.request("bridges", "list")
    for bridge in listed if isinstance(listed, list) else []:
        if isinstance(bridge, dict) and isinstance(bridge.get("id"), str):
            members = bridge.get("channels")
            view.bridges[bridge["id"]] = tuple(str(m) for m in members) if isinstance(members, list) else ()
            view.bridge_names[bridge["id"]] = str(bridge.get("name") or "")
            created = ari_time(bridge.get("creationtime"))
            if created is not None:
                view.bridge_created[bridge["id"]] = created
    if ami.connected:
        by_bridge: dict[str, list[LiveChannel]] = defaultdict(list)
        for row in await ami.core_show_channels():
            try:
                channel = snapshots.from_ami(row)
            except wire.Malformed:
                continue
            view.ami.setdefault(channel.linkedid, []).append(channel)
            view.ami_ids.add(channel.id)
            if row.get("BridgeId"):
                by_bridge[row["BridgeId"]].append(channel)
        view.ami_bridges = dict(by_bridge)
    return view


def ari_time(value: object) -> datetime | None:
    """ARI's ``2026-11-22T00:07:41.819+0000``; None when absent or not in that form."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return None
