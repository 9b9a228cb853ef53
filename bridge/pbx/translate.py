"""ARI events (JSON dicts) -> domain events. Pure: no I/O, no clock; it only remembers what it was told.

:class:`AriTranslator` follows the channels of our Stasis application:

* ``StasisStart`` with args ``inbound,<DID>`` -> ``CallStarted`` (the call is named by the caller's channel id);
  ``agent,<call>,<leg>`` -> ``LegAnswered``; ``intercept,<ext>`` -> ``Intercepted`` (call None: the daemon picks
  the call); anything else -> ``StasisEntered``.
* A leg (registered with :meth:`AriTranslator.expect_leg` before it is originated) ends with ``LegEnded`` when
  its channel is destroyed, its outcome by the rules of ``bridge.pbx.outcomes`` (Local: the final ``Dial``
  status; single channels: the hangup cause). An answered leg ends as HANGUP (also on ``StasisEnd``).
* The caller's ``StasisEnd`` / ``ChannelDestroyed`` -> ``CallerHungUp`` once, with the cause of its
  ``ChannelHangupRequest`` (Asterisk does not send ``ChannelDestroyed`` for it after ``StasisEnd``).
* ``ChannelDtmfReceived`` -> ``DtmfReceived``; ``PlaybackFinished`` -> ``PromptFinished``;
  ``RecordingFinished`` -> ``RecordingReady``; ``DeviceStateChanged`` -> ``DeviceStateSeen``.
* ``BridgeBlindTransfer`` / ``BridgeAttendedTransfer`` -> ``Transferred``, best effort (``bridge.pbx.transfers``).
* :meth:`AriTranslator.resync` (``GET /channels`` after every connect): a leg or caller it follows that is gone
  ended meanwhile (stamped with ``lost_at``, when the link was lost); a leg is only declared gone once the PBX
  has certainly known it (its originate answered, or an event about it), never one whose originate is still
  queued or under way. A channel in our application with ``inbound,<DID>`` arguments that it does not follow
  (its ``StasisStart`` was lost with the connection, or a previous process took it) is started as a
  ``CallStarted`` exactly as its ``StasisStart`` would have been.

AMI events are translated by :class:`bridge.pbx.observe.AmiTranslator` (re-exported here).

Unknown event types and events about channels we do not follow give no event. Malformed input gives one
``BadInput`` event; no exception escapes :meth:`AriTranslator.feed`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from bridge.domain.commands import CallType
from bridge.domain.events import (
    CallerHungUp,
    CallStarted,
    DtmfReceived,
    Intercepted,
    LegAnswered,
    LegEnded,
    LegOutcome,
    PromptFinished,
    RecordingReady,
)
from bridge.pbx import snapshots, transfers, wire
from bridge.pbx.events import BadInput, DeviceStateSeen, LiveChannel, PbxEvent, Resynced, StasisEntered
from bridge.pbx.observe import AmiTranslator
from bridge.pbx.outcomes import (
    PROGRESS_DIALSTATUS,
    EndpointTemplate,
    device_state_name,
    local_leg_outcome,
    single_leg_outcome,
)

DTMF_DIGITS = frozenset("0123456789*#ABCD")
CALLBACK_PREFIX = "cb-"
"""Channel ids the bridge gives the client legs of callbacks it places (``bridge/clicktocall.py``)."""
CLIENT = re.compile(r"\+?[0-9]{3,20}")


@dataclass
class CallerState:
    channel: str
    number: str
    name: str
    linkedid: str
    hangup_cause: int | None = None


@dataclass
class LegState:
    call: str
    answered: bool = False
    final_dialstatus: str | None = None
    local: bool = False
    entered: bool = False
    """In Stasis before it was answered (the channel that replaces an agent after a blind transfer)."""
    confirmed: bool = False
    """The PBX has it: its originate was answered, or an event named it. Only such a leg can be missed by a resync."""


class AriTranslator:
    """Turns ARI messages into ``PbxEvent``s, remembering the callers, legs, playbacks and recordings."""

    def __init__(self, device: EndpointTemplate, app: str = "") -> None:
        self.device = device
        self.app = app
        """Our Stasis application: a resync starts its unknown ``inbound`` channels (none when empty)."""
        self.callers: dict[str, CallerState] = {}
        self.legs: dict[str, LegState] = {}
        self.playbacks: dict[str, tuple[str, str]] = {}
        """Playback id -> (call, prompt id)."""
        self.recordings: dict[str, str] = {}
        """Recording name -> call."""
        self._busy: dict[str, int] = {}
        """Call -> how many of its playbacks and recordings may be under way (:meth:`occupied`)."""
        self._handlers: dict[str, Callable[[Mapping[str, Any]], list[PbxEvent]]] = {
            "StasisStart": self._stasis_start,
            "StasisEnd": self._stasis_end,
            "ChannelHangupRequest": self._hangup_request,
            "ChannelDestroyed": self._destroyed,
            "Dial": self._dial,
            "ChannelDtmfReceived": self._dtmf,
            "PlaybackFinished": self._playback_finished,
            "RecordingFinished": self._recording_finished,
            "DeviceStateChanged": self._device_state,
            "BridgeBlindTransfer": self._blind_transfer,
            "BridgeAttendedTransfer": self._attended_transfer,
        }

    @property
    def event_types(self) -> frozenset[str]:
        """The ARI event types this translator reads (every other type gives no event)."""
        return frozenset(self._handlers)

    # --- what the adapter tells us -----------------------------------------------------------------

    def expect_leg(
        self, leg: str, call: str, *, answered: bool = False, local: bool = False, confirmed: bool | None = None
    ) -> None:
        """``leg`` (a channel id we chose) belongs to ``call``; register before originating it.

        ``local``: the leg is a Local channel (its outcome then comes from the Dial status). ``confirmed``: the
        channel certainly exists (default: when it is answered); a leg to be originated is confirmed by
        :meth:`confirm` once the originate is answered.
        """
        state = LegState(call=call, answered=answered, local=local)
        state.confirmed = answered if confirmed is None else confirmed
        self.legs.setdefault(leg, state)

    def confirm(self, leg: str) -> None:
        """The PBX answered ``leg``'s originate: from now on a resync that does not list it means it ended."""
        state = self.legs.get(leg)
        if state is not None:
            state.confirmed = True

    def confirmed_legs(self) -> frozenset[str]:
        """Legs the PBX certainly knows now (take this *before* asking for the channel list)."""
        return frozenset(leg for leg, state in self.legs.items() if state.confirmed)

    def expect_playback(self, playback: str, call: str, prompt: str) -> None:
        self.forget_playback(playback)
        self.playbacks[playback] = (call, prompt)
        self._hold(call)

    def forget_playback(self, playback: str) -> tuple[str, str] | None:
        """Forget ``playback``; its (call, prompt id) when it was expected."""
        owner = self.playbacks.pop(playback, None)
        if owner is not None:
            self._release(owner[0])
        return owner

    def expect_recording(self, name: str, call: str) -> None:
        self._forget_recording(name)
        self.recordings[name] = call
        self._hold(call)

    def forget_call(self, call: str) -> None:
        """Drop what is remembered about a call that is over."""
        self.callers.pop(call, None)
        for leg in [leg for leg, state in self.legs.items() if state.call == call]:
            del self.legs[leg]
        for pid in [pid for pid, (owner, _) in self.playbacks.items() if owner == call]:
            del self.playbacks[pid]
        for name in [name for name, owner in self.recordings.items() if owner == call]:
            del self.recordings[name]
        self._busy.pop(call, None)

    def occupied(self, channel: str) -> bool:
        """A prompt or a recording we started for ``channel`` may be under way (the bridge plays and records on
        callers only, so an agent's leg never is). A recording of the call's bridge counts too: it does not hold the
        caller, but recordings are not told apart here, and HTTP is the safe side."""
        return channel in self._busy

    def linkedid(self, call: str | None) -> str:
        caller = self.callers.get(call or "")
        return caller.linkedid if caller else ""

    # --- input -------------------------------------------------------------------------------------

    def feed_text(self, frame: str | bytes) -> list[PbxEvent]:
        """One WebSocket text frame."""
        try:
            message = orjson.loads(frame)
        except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError, also for nesting past 1024
            return [_bad(f"not JSON: {type(exc).__name__}")]
        return self.feed(message)

    def feed(self, message: object) -> list[PbxEvent]:
        """One decoded ARI message -> the events it means (often none)."""
        if message.__class__ is not dict and not isinstance(message, Mapping):  # a dict (JSON) at the ABC's cost
            return [_bad(f"ARI message is a {type(message).__name__}, not an object")]
        kind = message.get("type")
        if not isinstance(kind, str) or not kind:
            return [_bad("ARI message without a type")]
        handler = self._handlers.get(kind)
        if handler is None:
            return []
        try:
            return handler(message)
        except wire.Malformed as exc:
            return [_bad(f"{kind}: {exc}")]

    def resync(
        self, channels: object, *, lost_at: datetime | None = None, confirmed: Collection[str] | None = None
    ) -> list[PbxEvent]:
        """``GET /channels`` after a (re)connect -> ends of what vanished meanwhile (at ``lost_at``, when the link
        was lost), calls whose start was missed, then ``Resynced``.

        ``confirmed``: the legs the PBX certainly knew when the list was asked for (:meth:`confirmed_legs` taken
        before the request); default: those confirmed now.
        """
        if not isinstance(channels, list):
            return [_bad("channel list is not a list")]
        events: list[PbxEvent] = []
        live: list[LiveChannel] = []
        for item in channels:
            try:
                live.append(snapshots.from_ari(item))
            except wire.Malformed as exc:
                events.append(_bad(f"channel list: {exc}"))
        ids = {channel.id for channel in live}
        known = self.confirmed_legs() if confirmed is None else confirmed
        ended: list[PbxEvent] = []
        for leg in [leg for leg in self.legs if leg not in ids and leg in known]:
            ended += self._leg_ended(leg, cause=None)
        for call in [call for call in self.callers if call not in ids]:
            ended += self._caller_gone(call, cause=None)
        events += [replace(event, at=lost_at) for event in ended]
        for channel in live:
            events += self._missed_start(channel)
        events.append(PbxEvent(None, Resynced(link="ari", channels=tuple(live), lost_at=lost_at)))
        return events

    def _missed_start(self, channel: LiveChannel) -> list[PbxEvent]:
        """A caller in our application we do not follow: start it as its ``StasisStart`` would have."""
        args = channel.app_data.split(",")
        if not self.app or channel.app != "Stasis" or args[0] != self.app or len(args) < 3:
            return []
        if args[1] != "inbound" or not args[2] or channel.id in self.callers or channel.id in self.legs:
            return []
        self.callers[channel.id] = CallerState(channel.id, channel.caller, channel.caller_name, channel.linkedid)
        started = _inbound(channel.id, args[1:], channel.caller, channel.caller_name, channel.linkedid)
        return [PbxEvent(channel.id, started, channel.linkedid)]

    # --- handlers ----------------------------------------------------------------------------------

    def _stasis_start(self, message: Mapping[str, Any]) -> list[PbxEvent]:
        # Asterisk's shapes read in place, anything else through wire's checks (in the same order, same errors)
        channel = _mapping(message, "channel")
        cid = _text(channel, "id")
        args = wire.string_list(message, "args")
        caller = channel.get("caller")
        if caller.__class__ is not dict:
            caller = wire.optional_mapping(channel, "caller") or {}
        number, name = caller.get("number", ""), caller.get("name", "")
        if number.__class__ is not str:
            number = wire.optional_text(caller, "number")
        if name.__class__ is not str:
            name = wire.optional_text(caller, "name")
        kind = args[0] if args else ""
        if kind != "agent" and cid in self.legs:
            # a blind transfer's replacement: it answers with its Dial status
            self.legs[cid].entered = self.legs[cid].confirmed = True
            return []
        if kind == "inbound":
            if len(args) < 2 or not args[1]:
                raise wire.Malformed("inbound without a DID")
            if cid in self.callers:
                return []
            linkedid = wire.optional_text(channel, "linkedid")
            self.callers[cid] = CallerState(cid, number, name, linkedid)
            return [PbxEvent(cid, _inbound(cid, args, number, name, linkedid), linkedid)]
        if kind == "agent":
            if len(args) < 2 or not args[1]:
                raise wire.Malformed("agent without a call")
            leg = self.legs.setdefault(cid, LegState(call=args[1]))
            leg.confirmed = True
            if leg.answered:
                return []
            leg.answered = True
            return [PbxEvent(leg.call, LegAnswered(cid), self.linkedid(leg.call))]
        if kind == "intercept":
            if len(args) < 2 or not args[1]:
                raise wire.Malformed("intercept without an extension")
            code = args[2] if len(args) > 2 else ""
            return [PbxEvent(None, Intercepted(ext=args[1], leg=cid, code=code))]
        entered = StasisEntered(cid, tuple(args), number, name, wire.optional_text(channel, "name"))
        return [PbxEvent(None, entered)]

    def _stasis_end(self, message: Mapping[str, Any]) -> list[PbxEvent]:
        cid = _channel_id(message, "channel")
        if cid in self.callers:
            return self._caller_gone(cid, cause=None)
        leg = self.legs.get(cid)
        if leg is not None and leg.answered:
            return self._leg_ended(cid, cause=None)
        return []

    def _hangup_request(self, message: Mapping[str, Any]) -> list[PbxEvent]:
        cid = _channel_id(message, "channel")
        cause = message.get("cause")
        if cause.__class__ is not int:  # Asterisk's (a JSON number) at once; anything else by the rules
            cause = wire.optional_int(message, "cause")
        caller = self.callers.get(cid)
        if caller is not None and cause is not None and caller.hangup_cause is None:
            caller.hangup_cause = cause
        return []

    def _destroyed(self, message: Mapping[str, Any]) -> list[PbxEvent]:
        channel = wire.mapping(message, "channel")
        cid = wire.text(channel, "id")
        cause = message.get("cause")
        if cause.__class__ is not int:
            cause = wire.optional_int(message, "cause")
        if cid in self.callers:
            return self._caller_gone(cid, cause)
        leg = self.legs.get(cid)
        if leg is not None:
            leg.local = leg.local or wire.optional_text(channel, "name").startswith("Local/")
            return self._leg_ended(cid, cause)
        return []

    def _dial(self, message: Mapping[str, Any]) -> list[PbxEvent]:
        # the most frequent event: Asterisk's shapes read in place, anything else through wire's checks
        peer = _mapping(message, "peer")
        peer_id = _text(peer, "id")
        leg = self.legs.get(peer_id)
        status = message.get("dialstatus", "")
        if status.__class__ is not str:
            status = wire.optional_text(message, "dialstatus")
        if leg is None:
            return []
        if not leg.local:
            name = peer.get("name", "")
            leg.local = (name if name.__class__ is str else wire.optional_text(peer, "name")).startswith("Local/")
        leg.confirmed = True
        if status not in PROGRESS_DIALSTATUS:
            leg.final_dialstatus = status
        if status == "ANSWER" and leg.entered and not leg.answered:
            leg.answered = True
            return [PbxEvent(leg.call, LegAnswered(peer_id), self.linkedid(leg.call))]
        return []

    def _dtmf(self, message: Mapping[str, Any]) -> list[PbxEvent]:
        cid = _channel_id(message, "channel")
        digit = wire.text(message, "digit")
        if digit not in DTMF_DIGITS:
            raise wire.Malformed(f"digit {digit[:8]!r} is not a DTMF key")
        if cid not in self.callers:
            return []
        return [PbxEvent(cid, DtmfReceived(digit), self.linkedid(cid))]

    def _playback_finished(self, message: Mapping[str, Any]) -> list[PbxEvent]:
        playback = wire.mapping(message, "playback")
        owner = self.forget_playback(wire.text(playback, "id"))
        if owner is None:
            return []
        call, prompt = owner
        # Asterisk ends a playback it could not play (a missing sound file) as state "failed", at once
        failed = wire.optional_text(playback, "media_uri") or "?" if playback.get("state") == "failed" else ""
        return [PbxEvent(call, PromptFinished(prompt, failed=failed), self.linkedid(call))]

    def _recording_finished(self, message: Mapping[str, Any]) -> list[PbxEvent]:
        recording = wire.mapping(message, "recording")
        name = wire.text(recording, "name")
        call = self._forget_recording(name)
        if call is None:
            return []
        duration = wire.optional_number(recording, "duration")
        return [PbxEvent(call, RecordingReady(name, duration), self.linkedid(call))]

    def _device_state(self, message: Mapping[str, Any]) -> list[PbxEvent]:
        state = wire.mapping(message, "device_state")
        ext = self.device.value_of(wire.text(state, "name"))
        name = device_state_name(wire.text(state, "state"))
        if name is None:
            raise wire.Malformed("unknown device state")
        if ext is None:
            return []
        return [PbxEvent(None, DeviceStateSeen(ext, name))]

    def _blind_transfer(self, message: Mapping[str, Any]) -> list[PbxEvent]:
        call = self._call_of(message, "transferee", "channel")
        if call is None or not transfers.succeeded(message):
            return []
        moved = transfers.blind(message)
        if moved.leg:
            self.expect_leg(moved.leg, call, local=transfers.replaced_by_local(message), confirmed=True)
        return [PbxEvent(call, moved, self.linkedid(call))]

    def _attended_transfer(self, message: Mapping[str, Any]) -> list[PbxEvent]:
        call = self._call_of(message, "transferee", "transferer_first_leg")
        moved = transfers.attended(message, self.device) if call is not None and transfers.succeeded(message) else None
        if call is None or moved is None:
            return []
        self.expect_leg(moved.leg, call, answered=True)
        return [PbxEvent(call, moved, self.linkedid(call))]

    # --- helpers -----------------------------------------------------------------------------------

    def _hold(self, call: str) -> None:
        self._busy[call] = self._busy.get(call, 0) + 1

    def _release(self, call: str) -> None:
        left = self._busy.get(call, 0) - 1
        if left > 0:
            self._busy[call] = left
        else:
            self._busy.pop(call, None)

    def _forget_recording(self, name: str) -> str | None:
        call = self.recordings.pop(name, None)
        if call is not None:
            self._release(call)
        return call

    def _call_of(self, message: Mapping[str, Any], *fields: str) -> str | None:
        """The call a transfer concerns: a field naming our caller, or one of our legs."""
        for name in fields:
            channel = wire.optional_mapping(message, name)
            cid = wire.optional_text(channel, "id") if channel else ""
            if cid in self.callers:
                return cid
            if cid in self.legs:
                return self.legs[cid].call
        return None

    def _caller_gone(self, call: str, cause: int | None) -> list[PbxEvent]:
        caller = self.callers.pop(call)
        final = caller.hangup_cause if caller.hangup_cause is not None else cause
        return [PbxEvent(call, CallerHungUp(16 if final is None else final), caller.linkedid)]

    def _leg_ended(self, leg_id: str, cause: int | None) -> list[PbxEvent]:
        leg = self.legs.pop(leg_id)
        if leg.answered:
            outcome = LegOutcome.HANGUP
        elif leg.local:
            outcome = local_leg_outcome(leg.final_dialstatus, cause)
        else:
            outcome = single_leg_outcome(leg.final_dialstatus, cause)
        return [PbxEvent(leg.call, LegEnded(leg_id, outcome), self.linkedid(leg.call))]


def _inbound(cid: str, args: list[str], number: str, name: str, linkedid: str) -> CallStarted:
    """The start of a caller with arguments ``inbound,<DID>[,...]``. A callback the bridge placed (its own channel id
    ``cb-...``, ``inbound,<line>,callback,<client's number>``) is the client's TYPE 4 call, even for a process that did
    not place it (a restart); its caller ID is the line's. Another channel cannot claim to be one."""
    if len(args) >= 4 and args[2] == "callback" and cid.startswith(CALLBACK_PREFIX) and CLIENT.fullmatch(args[3]):
        return CallStarted(line=args[1], caller=args[3], linkedid=linkedid, call_type=CallType.CALLBACK)
    return CallStarted(line=args[1], caller=number, caller_name=name, linkedid=linkedid)


def _bad(reason: str) -> PbxEvent:
    return PbxEvent(None, BadInput(reason))


__all__ = ["AmiTranslator", "AriTranslator", "CallerState", "LegState"]


def _channel_id(message: Mapping[str, Any], key: str) -> str:
    """``wire.text(wire.mapping(message, key), "id")``, Asterisk's own shape read in place."""
    return _text(_mapping(message, key), "id")


def _mapping(message: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``wire.mapping(message, key)``, a dict (Asterisk's own shape) read in place."""
    value = message.get(key)
    return value if value.__class__ is dict else wire.mapping(message, key)  # type: ignore[return-value]


def _text(message: Mapping[str, Any], key: str) -> str:
    """``wire.text(message, key)``, a non-empty string (Asterisk's own shape) read in place."""
    value = message.get(key)
    return value if value.__class__ is str and value else wire.text(message, key)  # type: ignore[return-value]
