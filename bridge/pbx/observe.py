"""AMI events -> the observed-call events of calls the dialplan handles itself. Pure: no I/O, no clock.

Calls are grouped by ``Linkedid``. A call is watched from the first channel event whose snapshot shows

* a dialplan context listed in ``outbound_contexts`` with a dialled number (digits, optional ``+``; feature codes
  like ``*8`` and the special extensions ``s``/``h``/... never count): an **outbound** call from the employee
  whose device the channel belongs to (reverse of the ``device`` template; else the caller ID), or
* an extension listed in ``monitor_lines``: an **inbound** call on a monitor-only line, once a snapshot shows the
  caller's number (a call arriving on a Local channel is created as ``<unknown>``; its next ``Newexten`` has it),
  at the latest at its first ``DialBegin`` (a caller who withholds the number).

Then ``DialBegin`` towards an agent device -> ``ObservedRinging``; ``DialEnd`` -> ``ObservedAnswered`` (ANSWER) or
``ObservedStoppedRinging``; ``BridgeEnter`` of a second party is a fallback for the answer; the MixMonitor file
(``VarSet MIXMONITOR_FILENAME``) names the recording; when the last channel of the call hangs up ->
``ObservedEnded`` (dialstatus of the dial, cause of the first channel's ``Hangup``) and ``ObservedRecording``.
``DeviceStateChange`` of an agent device -> ``DeviceStateSeen`` (the dispatcher reads it for each call).

Every other event (:data:`bridge.pbx.ami_events.USED_EVENTS` lists the ones read), a ``VarSet`` of another or of a
global variable (``Channel: none``, no ``Linkedid``) and the state of a device that is no agent's are ordinary
traffic: ignored, not bad input (Asterisk writes every device state with one of the nine standard names).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from bridge.domain.commands import CallType
from bridge.domain.events import (
    Direction,
    ObservedAnswered,
    ObservedEnded,
    ObservedRecording,
    ObservedRinging,
    ObservedStarted,
    ObservedStoppedRinging,
)
from bridge.pbx import snapshots, wire
from bridge.pbx.ami_events import RECORDING_VARIABLE, USED_EVENTS
from bridge.pbx.events import BadInput, DeviceStateSeen, LiveChannel, PbxEvent, Resynced
from bridge.pbx.outcomes import EndpointTemplate, device_state_name

DIALLED_NUMBER = re.compile(r"\+?[0-9]{2,32}")
SNAPSHOT_EVENTS = frozenset({"Newchannel", "Newstate", "Newexten", "MixMonitorStart", "DialBegin", "CoreShowChannel"})


@dataclass
class WatchedCall:
    linkedid: str
    direction: Direction
    origin: str
    """Uniqueid of the channel that showed the call; its hangup cause is the call's."""
    ext: str = ""
    answered: bool = False
    dialstatus: str = ""
    cause: int | None = None
    recording: str = ""
    ringing: list[str] = field(default_factory=list)


class AmiTranslator:
    """Follows every call's channels by Linkedid and reports the watched ones."""

    def __init__(
        self, device: EndpointTemplate, outbound_contexts: Iterable[str], monitor_lines: Iterable[str]
    ) -> None:
        self.device = device
        self.outbound_contexts = frozenset(outbound_contexts)
        self.monitor_lines = frozenset(monitor_lines)
        self.channels: dict[str, set[str]] = {}
        """Linkedid -> Uniqueids of its channels that are up."""
        self.linked_of: dict[str, str] = {}
        """Uniqueid -> the Linkedid it was created with (bridging may change it later)."""
        self.filenames: dict[str, str] = {}
        self.watched: dict[str, WatchedCall] = {}

    def feed(self, message: wire.AmiMessage) -> list[PbxEvent]:
        """One AMI event -> the events it means (often none). Never raises."""
        kind = message.get("Event")
        if not isinstance(kind, str) or kind not in USED_EVENTS:
            return []
        try:  # one function for every event: a call less for each of them
            if kind == "DeviceStateChange":
                return self._device_state(message)
            if kind == "VarSet" and (
                message.get("Variable") != RECORDING_VARIABLE or message.get("Uniqueid") == "none"
            ):
                return []  # another variable, or a global one (Asterisk writes Channel and Uniqueid "none")
            if kind == "Newchannel":
                self._add_channel(wire.header(message, "Linkedid"), wire.header(message, "Uniqueid"))
            events: list[PbxEvent] = []
            if kind in SNAPSHOT_EVENTS:
                events += self._start(message)
            if kind in ("VarSet", "MixMonitorStart"):
                self._recording_file(message)
            elif kind == "DialBegin":
                events += self._dial_begin(message)
            elif kind == "DialEnd":
                events += self._dial_end(message)
            elif kind == "BridgeEnter":
                events += self._bridge_enter(message)
            elif kind == "Hangup":
                events += self._hangup(message)
            return events
        except wire.Malformed as exc:
            return [PbxEvent(None, BadInput(f"AMI {kind[:40]}: {exc}"))]

    def resync(self, channels: Sequence[wire.AmiMessage], devices: Sequence[wire.AmiMessage]) -> list[PbxEvent]:
        """``CoreShowChannel`` and ``DeviceStateChange`` (DeviceStateList) messages after a (re)connect."""
        events: list[PbxEvent] = []
        live: list[LiveChannel] = []
        self.channels = {}
        self.linked_of = {}
        for message in channels:
            try:
                channel = snapshots.from_ami(message)
            except wire.Malformed as exc:
                events.append(PbxEvent(None, BadInput(f"AMI CoreShowChannel: {exc}")))
                continue
            live.append(channel)
            self._add_channel(channel.linkedid, channel.id)
        for linkedid in [linkedid for linkedid in self.watched if linkedid not in self.channels]:
            events += self._end(self.watched[linkedid])
        for message in channels:
            try:
                events += self._start(message)
            except wire.Malformed:
                continue  # already reported above
        states: dict[str, str] = {}
        for message in devices:
            ext = self.device.value_of(wire.optional_header(message, "Device"))
            state = device_state_name(wire.optional_header(message, "State"))
            if ext is not None and state is not None:
                states[ext] = state
        events.append(PbxEvent(None, Resynced(link="ami", channels=tuple(live), devices=states)))
        return events

    # --- events ------------------------------------------------------------------------------------

    def _start(self, message: wire.AmiMessage) -> list[PbxEvent]:
        if not message.get("Channel"):
            return []  # DialBegin of an Originate: only the Dest side
        linkedid = wire.header(message, "Linkedid")
        if linkedid in self.watched:
            return []
        context = wire.optional_header(message, "Context")
        exten = wire.optional_header(message, "Exten")
        uniqueid = wire.header(message, "Uniqueid")
        if context in self.outbound_contexts and DIALLED_NUMBER.fullmatch(exten):
            ext = self.device.value_of_channel(wire.header(message, "Channel")) or snapshots.ami_number(
                message, "CallerIDNum"
            )
            call = WatchedCall(linkedid, Direction.OUTBOUND, uniqueid, ext=ext)
            started = ObservedStarted(
                direction=Direction.OUTBOUND,
                number=exten,
                ext=ext,
                crm_key=linkedid,
                call_type=CallType.OUTGOING,
                linkedid=linkedid,
            )
        elif exten in self.monitor_lines and context not in self.outbound_contexts:
            number = snapshots.ami_number(message, "CallerIDNum")
            if not number and wire.optional_header(message, "Event") != "DialBegin":
                return []  # a call on a Local channel is created before its caller ID: wait for a snapshot with it
            call = WatchedCall(linkedid, Direction.INBOUND, uniqueid)
            started = ObservedStarted(
                direction=Direction.INBOUND,
                number=number,
                line=exten,
                crm_key=linkedid,
                call_type=CallType.INCOMING,
                linkedid=linkedid,
            )
        else:
            return []
        self.watched[linkedid] = call
        self._add_channel(linkedid, uniqueid)
        self._recording_file(message)
        return [PbxEvent(linkedid, started, linkedid)]

    def _recording_file(self, message: wire.AmiMessage) -> None:
        linkedid = wire.header(message, "Linkedid")
        if wire.optional_header(message, "Variable") == RECORDING_VARIABLE:
            value = wire.optional_header(message, "Value")
            if value:
                self.filenames[linkedid] = PurePosixPath(value).stem
        call = self.watched.get(linkedid)
        if call is not None and linkedid in self.filenames:
            call.recording = self.filenames[linkedid]

    def _dial_begin(self, message: wire.AmiMessage) -> list[PbxEvent]:
        call = self.watched.get(_linkedid(message))
        if call is None or call.direction is not Direction.INBOUND:
            return []
        ext = self.device.value_of_channel(wire.header(message, "DestChannel"))
        if ext is None or ext in call.ringing:
            return []
        call.ringing.append(ext)
        return [PbxEvent(call.linkedid, ObservedRinging(ext), call.linkedid)]

    def _dial_end(self, message: wire.AmiMessage) -> list[PbxEvent]:
        call = self.watched.get(_linkedid(message))
        if call is None:
            return []
        status = wire.header(message, "DialStatus")
        if call.dialstatus != "ANSWER":
            call.dialstatus = status
        ext = self.device.value_of_channel(wire.header(message, "DestChannel")) or ""
        events: list[PbxEvent] = []
        if ext in call.ringing:
            call.ringing.remove(ext)
            if status != "ANSWER":
                events.append(PbxEvent(call.linkedid, ObservedStoppedRinging(ext), call.linkedid))
        if status == "ANSWER":
            events += self._answered(call, ext)
        return events

    def _bridge_enter(self, message: wire.AmiMessage) -> list[PbxEvent]:
        call = self.watched.get(wire.header(message, "Linkedid"))
        count = wire.optional_int(message, "BridgeNumChannels") or 0
        if call is None or call.answered or count < 2:
            return []
        return self._answered(call, self.device.value_of_channel(wire.header(message, "Channel")) or "")

    def _answered(self, call: WatchedCall, ext: str) -> list[PbxEvent]:
        if call.answered:
            return []
        call.answered = True
        who = ext if call.direction is Direction.INBOUND else ""
        return [PbxEvent(call.linkedid, ObservedAnswered(who), call.linkedid)]

    def _add_channel(self, linkedid: str, uniqueid: str) -> None:
        self.channels.setdefault(linkedid, set()).add(uniqueid)
        self.linked_of.setdefault(uniqueid, linkedid)

    def _hangup(self, message: wire.AmiMessage) -> list[PbxEvent]:
        linkedid, uniqueid = message.get("Linkedid"), message.get("Uniqueid")  # read in place when plain
        if linkedid.__class__ is not str or not linkedid:
            linkedid = wire.header(message, "Linkedid")
        if uniqueid.__class__ is not str or not uniqueid:
            uniqueid = wire.header(message, "Uniqueid")
        cause = wire.optional_int(message, "Cause")
        call = self.watched.get(linkedid)
        if call is not None and (uniqueid == call.origin or call.cause is None):
            call.cause = cause
        events: list[PbxEvent] = []
        for group in dict.fromkeys((self.linked_of.pop(uniqueid, linkedid), linkedid)):
            live = self.channels.get(group)
            if live is None:
                continue
            live.discard(uniqueid)
            if live:
                continue
            del self.channels[group]
            if group in self.watched:
                events += self._end(self.watched[group])
            else:
                self.filenames.pop(group, None)
        return events

    def _end(self, call: WatchedCall) -> list[PbxEvent]:
        del self.watched[call.linkedid]
        self.filenames.pop(call.linkedid, None)
        events = [PbxEvent(call.linkedid, ObservedStoppedRinging(ext), call.linkedid) for ext in call.ringing]
        ended = ObservedEnded(dialstatus=call.dialstatus, cause=call.cause, recording=call.recording)
        events.append(PbxEvent(call.linkedid, ended, call.linkedid))
        if call.recording:
            events.append(PbxEvent(call.linkedid, ObservedRecording(call.recording), call.linkedid))
        return events

    def _device_state(self, message: wire.AmiMessage) -> list[PbxEvent]:
        device, state_text = message.get("Device"), message.get("State")  # a third of the stream: read in place
        if device.__class__ is not str or not device:
            device = wire.header(message, "Device")
        if state_text.__class__ is not str or not state_text:
            state_text = wire.header(message, "State")
        ext = self.device.value_of(device)  # type: ignore[arg-type]
        state = device_state_name(state_text)  # type: ignore[arg-type]
        if state is None:
            raise wire.Malformed("unknown device state")
        if ext is None:
            return []
        return [PbxEvent(None, DeviceStateSeen(ext, state))]


def _linkedid(message: wire.AmiMessage) -> str:
    return wire.optional_header(message, "Linkedid") or wire.header(message, "DestLinkedid")
