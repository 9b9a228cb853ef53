"""What the PBX adapters put on their output queue: domain events wrapped with the call they belong to.

Besides the core's own events (``bridge.domain.events``) the adapters produce a few shell-level facts:
``Resynced`` after every (re)connect, ``StasisEntered`` for Stasis entries the daemon routes itself,
``DeviceStateSeen`` for an agent device's state (the dispatcher reads it around its own legs), and ``BadInput``
for wire data that made no sense (it is logged as ``pbx.bad_input`` and changes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bridge.domain.events import (
    CallerHungUp,
    CallStarted,
    DtmfReceived,
    Intercepted,
    LegAnswered,
    LegEnded,
    ObservedAnswered,
    ObservedEnded,
    ObservedRecording,
    ObservedRinging,
    ObservedStarted,
    ObservedStoppedRinging,
    PromptFinished,
    RecordingReady,
    Transferred,
)


class PbxError(Exception):
    """A PBX request failed: ``status`` is the HTTP status (0 when there was no answer at all)."""

    def __init__(self, status: int, body: str = "", *, action: str = "") -> None:
        self.status = status
        self.body = body
        self.action = action
        where = f"{action}: " if action else ""
        super().__init__(f"{where}{status} {body}".strip())


@dataclass(frozen=True)
class BadInput:
    """A frame or message that could not be understood; ``reason`` says why (never the raw secrets)."""

    reason: str


@dataclass(frozen=True)
class LiveChannel:
    """One channel that exists on the PBX right now (from ``GET /channels`` or ``CoreShowChannels``)."""

    id: str
    name: str
    state: str = ""
    caller: str = ""
    caller_name: str = ""
    linkedid: str = ""
    app: str = ""
    """Dialplan application the channel is in, e.g. ``Stasis``."""
    app_data: str = ""
    """Its arguments, e.g. ``b24bridge,inbound,74951112233``."""
    context: str = ""
    exten: str = ""
    created: str = ""
    """ARI ``creationtime`` as Asterisk writes it (``2026-11-22T00:07:41.819+0000``); empty from AMI."""


@dataclass(frozen=True)
class Resynced:
    """The adapter (``link``: ``ari`` or ``ami``) (re)connected and listed what exists now.

    Events of calls that ended while the link was away are put on the queue *before* this one (``LegEnded``,
    ``CallerHungUp``, ``ObservedEnded``), as far as the link knew those calls.
    """

    link: str
    channels: tuple[LiveChannel, ...]
    devices: dict[str, str] = field(default_factory=dict)
    """Extension -> its device's state (AMI ``DeviceStateList``: ``NOT_INUSE``, ``INUSE``, ...), when known."""
    lost_at: datetime | None = None
    """When the link was lost before this reconnect (None on the first connect): whatever ended meanwhile
    ended at this moment or later."""


@dataclass(frozen=True)
class DeviceStateSeen:
    """Agent ``ext``'s device reported ``state`` (an Asterisk device state name, upper case, known to us).

    Not an availability yet: the bridge's own legs to the device make it ``RINGING``/``INUSE`` too, so only the
    dispatcher, which knows those legs, can tell what it means for each call (``bridge/dispatch/presence.py``).
    """

    ext: str
    state: str


@dataclass(frozen=True)
class StasisEntered:
    """A channel entered our Stasis application with arguments we do not route (e.g. ``click2call,...``)."""

    channel: str
    args: tuple[str, ...]
    caller: str = ""
    caller_name: str = ""
    name: str = ""


PbxFact = (
    CallStarted
    | DeviceStateSeen
    | LegAnswered
    | LegEnded
    | CallerHungUp
    | DtmfReceived
    | PromptFinished
    | RecordingReady
    | Intercepted
    | Transferred
    | ObservedStarted
    | ObservedRinging
    | ObservedStoppedRinging
    | ObservedAnswered
    | ObservedEnded
    | ObservedRecording
    | Resynced
    | StasisEntered
    | BadInput
)


@dataclass(frozen=True)
class PbxEvent:
    """One fact from the PBX. ``call`` is the call it belongs to: the caller's channel id for Stasis calls,
    the ``Linkedid`` for calls only observed on AMI, None when the daemon has to pick (intercept, device
    states, resyncs)."""

    call: str | None
    event: PbxFact
    linkedid: str = ""
    at: datetime | None = None
    """When it happened, if known to be before it arrived: an end a resync found happened after the link was
    lost (``at`` is that moment; the dispatcher prefers the hang-up AMI saw, see ``pbx_facts.happened_at``)."""
