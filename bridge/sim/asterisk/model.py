"""Channels, bridges and the ids Asterisk gives them, with their ARI JSON and AMI header forms.

Id rules, as recorded on Asterisk 20:

* ``Uniqueid`` is ``<epoch seconds at creation>.<global counter>``; a call's ``Linkedid`` is the
  ``Uniqueid`` of its oldest channel, and spreads to every channel bridged with it.
* Local and Announcer (MOH) channels share one name counter: ``Local/1002@agents-00000002;1``,
  ``Announcer/ARI_MOH-00000001;2``; other technologies count on their own (``PJSIP/1001-00000000``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.sim.asterisk.causes import CHANNEL_STATES

Headers = list[tuple[str, str]]
"""An AMI message: ordered (name, value) pairs; names may repeat (``Output:``)."""


def ari_time(epoch: float) -> str:
    """``2026-11-22T00:07:41.816+0000``: the timestamp format of ARI events and objects."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def cdr_time(epoch: float | None) -> str:
    """``2026-11-22 00:07:41``: the time format of AMI ``Cdr`` events ("" when unset)."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


class IdSource:
    """Hands out uniqueids and channel-name suffixes the way Asterisk counts them."""

    def __init__(self, system_name: str = "") -> None:
        self.system_name = system_name
        """asterisk.conf's ``systemname``: uniqueids become ``<name>-<epoch>.<n>`` (channel_internal_api.c), so
        the ids of several PBXes never collide (a shared journal needs that)."""
        self._unique = itertools.count()
        self._unreal = itertools.count()
        self._by_tech: dict[str, itertools.count[int]] = {}

    def uniqueid(self, now: float) -> str:
        counted = f"{int(now)}.{next(self._unique)}"
        return f"{self.system_name}-{counted}" if self.system_name else counted

    def unreal_suffix(self) -> str:
        return f"{next(self._unreal):08x}"

    def tech_suffix(self, tech: str) -> str:
        counter = self._by_tech.setdefault(tech.upper(), itertools.count())
        return f"{next(counter):08x}"


@dataclass
class CallerId:
    name: str = ""
    number: str = ""

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "number": self.number}


@dataclass(eq=False)
class Channel:
    """One channel; ``peer`` is the other half when this is one side of a Local pair."""

    id: str
    name: str
    device: str  # device/endpoint it belongs to: "Local/1002@agents", "PJSIP/1001"
    state: str
    created_at: float
    linkedid: str
    context: str = "default"
    exten: str = "s"
    priority: int = 1
    app_name: str = ""
    app_data: str = ""
    caller: CallerId = field(default_factory=CallerId)
    connected: CallerId = field(default_factory=CallerId)
    language: str = "en"
    accountcode: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    peer: Channel | None = None
    bridge: Bridge | None = None
    stasis_app: str | None = None
    stasis_args: list[str] = field(default_factory=list)
    answered_at: float | None = None
    on_hold: bool = False  # the phone put this call on hold (SIP re-INVITE): its device shows ONHOLD
    hanging_up: bool = False
    destroyed: bool = False
    dialed_peer: str = ""  # DestinationChannel of the Cdr
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    home_dialplan: tuple[str, str] | None = None  # app shown again after leaving Stasis
    on_answer: Callable[[], None] | None = None  # the dial that waits for this channel
    hangup_hooks: list[Callable[[], None]] = field(default_factory=list)

    @property
    def is_local(self) -> bool:
        return self.peer is not None

    def set_dialplan(self, app_name: str, app_data: str, priority: int | None = None) -> None:
        self.app_name, self.app_data = app_name, app_data
        if priority is not None:
            self.priority = priority

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()

    def as_json(self) -> dict[str, Any]:
        """The ARI ``Channel`` object, keys in the order Asterisk 20 writes them."""
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "protocol_id": "",
            "caller": self.caller.as_json(),
            "connected": self.connected.as_json(),
            "accountcode": self.accountcode,
            "dialplan": {
                "context": self.context,
                "exten": self.exten,
                "priority": self.priority,
                "app_name": self.app_name,
                "app_data": self.app_data,
            },
            "creationtime": ari_time(self.created_at),
            "language": self.language,
        }

    def ami_fields(self, prefix: str = "") -> Headers:
        """The AMI channel snapshot (``Channel`` ... ``Linkedid``), optionally prefixed (``Dest``)."""
        number, desc = CHANNEL_STATES.get(self.state, (10, "Unknown"))
        return [
            (f"{prefix}Channel", self.name),
            (f"{prefix}ChannelState", str(number)),
            (f"{prefix}ChannelStateDesc", desc),
            (f"{prefix}CallerIDNum", self.caller.number or "<unknown>"),
            (f"{prefix}CallerIDName", self.caller.name or "<unknown>"),
            (f"{prefix}ConnectedLineNum", self.connected.number or "<unknown>"),
            (f"{prefix}ConnectedLineName", self.connected.name or "<unknown>"),
            (f"{prefix}Language", self.language),
            (f"{prefix}AccountCode", self.accountcode),
            (f"{prefix}Context", self.context),
            (f"{prefix}Exten", self.exten),
            (f"{prefix}Priority", str(self.priority)),
            (f"{prefix}Uniqueid", self.id),
            (f"{prefix}Linkedid", self.linkedid),
        ]

    def read_variable(self, name: str) -> str | None:
        """A variable, or one of the dialplan functions ARI/AMI clients read."""
        functions = {
            "CHANNEL(linkedid)": self.linkedid,
            "CHANNEL(uniqueid)": self.id,
            "UNIQUEID": self.id,
            "CHANNEL(name)": self.name,
            "CHANNEL(state)": self.state,
            "CALLERID(num)": self.caller.number,
            "CALLERID(name)": self.caller.name,
            "CONNECTEDLINE(num)": self.connected.number,
            "CONNECTEDLINE(name)": self.connected.name,
        }
        return functions[name] if name in functions else self.variables.get(name)

    def cdr_fields(self, cause: int) -> Headers:
        """The AMI ``Cdr`` event body for this channel ending with ``cause``."""
        ended = now()
        if self.answered_at is not None:
            disposition = "ANSWERED"
        else:
            disposition = {17: "BUSY", 20: "FAILED", 34: "FAILED", 0: "FAILED"}.get(cause, "NO ANSWER")
        billable = int(ended - self.answered_at) if self.answered_at is not None else 0
        caller = self.caller
        return [
            ("AccountCode", self.accountcode),
            ("Source", caller.number),
            ("Destination", self.exten),
            ("DestinationContext", self.context),
            ("CallerID", f'"{caller.name}" <{caller.number}>' if caller.name else caller.number),
            ("Channel", self.name),
            ("DestinationChannel", self.dialed_peer),
            ("LastApplication", self.app_name),
            ("LastData", self.app_data),
            ("StartTime", cdr_time(self.created_at)),
            ("AnswerTime", cdr_time(self.answered_at)),
            ("EndTime", cdr_time(ended)),
            ("Duration", str(int(ended - self.created_at))),
            ("BillableSeconds", str(billable)),
            ("Disposition", disposition),
            ("AMAFlags", "DOCUMENTATION"),
            ("UniqueID", self.id),
            ("UserField", self.variables.get("CDR(userfield)", "")),
        ]


@dataclass(eq=False)
class Bridge:
    """A bridge; ``moh_channel`` is the Announcer half that plays music on hold into it."""

    id: str
    name: str
    created_at: float
    bridge_type: str = "mixing"
    bridge_class: str = "stasis"
    creator: str = "Stasis"
    technology: str = "simple_bridge"
    video_mode: str = "talker"
    channels: list[Channel] = field(default_factory=list)
    moh_channel: tuple[str, str] | None = None  # (uniqueid, name) of the Announcer ;2
    destroyed: bool = False

    def member_ids(self) -> list[str]:
        ids = [channel.id for channel in self.channels]
        if self.moh_channel is not None:
            ids.append(self.moh_channel[0])
        return ids

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "technology": self.technology,
            "bridge_type": self.bridge_type,
            "bridge_class": self.bridge_class,
            "creator": self.creator,
            "name": self.name,
            "channels": self.member_ids(),
            "creationtime": ari_time(self.created_at),
            "video_mode": self.video_mode,
        }

    def ami_fields(self) -> Headers:
        return [
            ("BridgeUniqueid", self.id),
            ("BridgeType", self.bridge_class),
            ("BridgeTechnology", self.technology),
            ("BridgeCreator", self.creator or "<unknown>"),
            ("BridgeName", self.name or "<unknown>"),
            ("BridgeNumChannels", str(len(self.member_ids()))),
            ("BridgeVideoSourceMode", self.video_mode),
        ]


def now() -> float:
    return time.time()
