"""The ARI link: our Stasis application over aioari 0.10.2, reconnected and resynchronised.

aioari's ``run()`` returns quietly when the socket closes, crashes on a frame that is not JSON, and awaits
listeners inside its socket reader; so the link reads the events WebSocket itself: every text frame is
translated at once (:class:`bridge.pbx.translate.AriTranslator`, pure) and the resulting events are put on
the output queue. When the socket closes the link reconnects with exponential backoff (capped at
``reconnect_max_delay``) and, after each (re)connect, lists the channels (``GET /channels``) so the translator
reports what ended meanwhile, followed by ``Resynced``. REST calls go through :class:`bridge.pbx.ari_rest.AriRest`
(string booleans, errors as :class:`PbxError`), over the events WebSocket once the resync is done when the PBX
takes them there (``asterisk.rest_over_websocket``); the reader hands their answers back before translating.

Asterisk gives an application name to one WebSocket at a time: a newer subscription to the same name takes it and
the older socket gets ``ApplicationReplaced`` and then nothing more for that application, though it stays open
(res/stasis/app.c ``app_update``, res/ari/ari_websockets.c ``ari_websocket_send_event``). The link then stops for
good and sets :attr:`AriLink.replaced`: reconnecting would take the application back from the other bridge, and
both would route the same calls.

Each session first asks the PBX to send the application only the messages the link reads (``PUT
/applications/{app}/eventFilter``: the translator's event types, ``ApplicationReplaced``, ``RESTResponse``): Asterisk
otherwise sends every event about our channels and bridges (``ChannelVarset``, ``ChannelStateChange``,
``ChannelEnteredBridge``, ...), which cost CPU to read and give nothing.

:attr:`AriLink.vet` (if set) sees ``GET /asterisk/info`` before each subscription; when it says no, the link stops
without subscribing (a PBX whose ``systemname`` another bridge's PBX already uses on a shared journal).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import structlog

from bridge.config import AsteriskSettings
from bridge.domain.commands import PbxCommand, RingAgent, RingNumber
from bridge.domain.events import CallerHungUp
from bridge.pbx.ari_commands import CallCommands, CallMedia
from bridge.pbx.ari_rest import AriRest
from bridge.pbx.events import BadInput, PbxError, PbxEvent
from bridge.pbx.outcomes import EndpointTemplate
from bridge.pbx.reconnect import ReconnectingLink
from bridge.pbx.translate import AriTranslator

log = structlog.get_logger(__name__)

LINK_MESSAGES = frozenset({"ApplicationReplaced", "RESTResponse"})
"""Messages the link reads itself, beside the translator's events (Asterisk's event filter applies to them too)."""
SOCKET_ENDS = frozenset({aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED})
"""Messages that end the socket's ``async for`` (``ClientWebSocketResponse.__anext__``) and :meth:`AriLink._read`."""


class AriLink(ReconnectingLink):
    """Keeps the Stasis application connected; executes PBX commands; puts events on ``out``."""

    link = "ari"

    def __init__(self, settings: AsteriskSettings, out: asyncio.Queue[PbxEvent]) -> None:
        super().__init__(settings.reconnect_max_delay)
        self.settings = settings
        self.out = out
        self.translator = AriTranslator(EndpointTemplate(settings.device), settings.app)
        self.rest = AriRest(settings)
        self.rest.occupied = self.translator.occupied
        self.commands = CallCommands(
            settings, self.translator, self.rest.request, self._emit, self.wait_connected, self._up.is_set
        )
        self._cleanups: set[asyncio.Task[None]] = set()
        self.lost_at: datetime | None = None
        """When the last session ended (what ended since happened at this moment or later)."""
        self.vet: Callable[[dict[str, Any]], Awaitable[bool]] | None = None
        """Asked with ``GET /asterisk/info`` before each subscription; False stops the link (see the docstring)."""
        self.replaced = asyncio.Event()
        """Another WebSocket took our Stasis application: the link has stopped and does not reconnect."""

    # --- lifecycle -----------------------------------------------------------------------------------

    async def stop(self) -> None:
        await super().stop()
        for task in list(self._cleanups):
            task.cancel()

    async def _session(self) -> bool:
        """One connection: open, subscribe, resync, read until the socket closes. True if it got that far."""
        await self.rest.open()
        try:
            if self.vet is not None:
                info = await self.request("asterisk", "getInfo")
                if not await self.vet(info if isinstance(info, dict) else {}):
                    self._stopping.set()
                    return False
            socket = await self.rest.events(self.settings.app)
            log.info("pbx.connected", link="ari", app=self.settings.app)
            await self._filter_events()
            confirmed = self.translator.confirmed_legs()  # legs the PBX knew before it was asked what is left
            listed = await self.request("channels", "list")
            for event in self.translator.resync(listed, lost_at=self.lost_at, confirmed=confirmed):
                self._emit(event)
            self.connected = True  # only now: a command waiting for the link sees what ended while it was away
            await self.rest.attach(socket)  # REST over this socket from now on (its answers come to _read)
            await self._read(socket)
            return True
        finally:
            if self.connected:
                log.info("pbx.disconnected", link="ari")
                self.lost_at = datetime.now(UTC)
            self.connected = False
            await self.rest.close()

    async def _filter_events(self) -> None:
        """Ask the PBX for the messages the link reads only (:data:`LINK_MESSAGES` and the translator's events); a PBX
        that refuses keeps sending everything, which the translator ignores."""
        try:
            await self.rest.filter_events(self.settings.app, self.translator.event_types | LINK_MESSAGES)
        except PbxError as exc:
            log.warning("pbx.event_filter_refused", link="ari", status=exc.status, error=exc.body,
                        note="every event of the application comes; those the bridge ignores cost CPU")  # fmt: skip

    async def _read(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        """Every frame decoded once: a RESTResponse goes to the requests waiting for it, ``ApplicationReplaced`` for
        our application stops the link, anything else goes to the translator. ``receive()`` itself, not ``async
        for``: the iterator adds a layer a frame to do the same test for the end of the socket (:data:`SOCKET_ENDS`)."""
        translator, app, rest, receive = self.translator, self.settings.app, self.rest, socket.receive
        text, binary, error = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.ERROR
        while True:
            message = await receive()
            frame = message.type
            if frame is text:
                try:
                    decoded = orjson.loads(message.data)
                except (ValueError, TypeError):  # the translator says why (BadInput)
                    decoded = None
                if decoded.__class__ is dict:
                    kind = decoded.get("type")
                    if kind == "RESTResponse":
                        over_socket = rest.over_socket
                        if over_socket is not None and over_socket.take(decoded):
                            continue
                    elif kind == "ApplicationReplaced" and decoded.get("application", app) == app:
                        note = "another client subscribed to this application; this link stops"
                        log.error("pbx.app_replaced", link="ari", app=app, note=note)
                        self.replaced.set()
                        self._end()
                        return
                events = translator.feed_text(message.data) if decoded is None else translator.feed(decoded)
                for event in events:
                    self._emit(event)
            elif frame is binary:
                self._emit(PbxEvent(None, BadInput(f"binary WebSocket frame of {len(message.data)} bytes")))
            elif frame is error:
                log.warning("pbx.socket_error", link="ari", error=type(socket.exception()).__name__)
                break
            elif frame in SOCKET_ENDS:
                break

    def _emit(self, event: PbxEvent) -> None:
        event = self.commands.reviewed(event)
        if isinstance(event.event, BadInput):
            log.warning("pbx.bad_input", link="ari", reason=event.event.reason)
            return
        self.out.put_nowait(event)
        if isinstance(event.event, CallerHungUp) and event.call in self.commands.calls:
            self._release_later(event.call)

    def _release_later(self, call: str) -> None:
        """Destroy the call's bridge in the background: the event path never waits for REST."""
        task = asyncio.get_running_loop().create_task(self._release(call))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _release(self, call: str) -> None:
        try:
            await self.commands.release(call)
        except PbxError as exc:
            log.warning("pbx.cleanup_failed", link="ari", call_id=call, error=str(exc))

    # --- REST ----------------------------------------------------------------------------------------

    async def request(self, resource: str, operation: str, **params: object) -> Any:
        """Any ARI operation by swagger nickname; see :meth:`AriRest.request`."""
        return await self.rest.request(resource, operation, **params)

    async def execute(self, call_id: str, cmd: PbxCommand) -> None:
        """Carry out one PBX command of call ``call_id`` (raises :class:`PbxError` when ARI refuses it).

        A ring command that cannot be originated also puts ``LegEnded(FAILED)`` on the queue.
        """
        try:
            await self.commands.execute(call_id, cmd)
            if isinstance(cmd, RingAgent | RingNumber):
                self.translator.confirm(cmd.leg)
        except PbxError as exc:
            log.warning("pbx.command_failed", call_id=call_id, command=type(cmd).__name__, status=exc.status,
                        error=exc.body, action=exc.action)  # fmt: skip
            raise

    def take_over(self, call: str, legs: Mapping[str, bool], *, bridge: str = "", recording: str = "") -> None:
        """Carry on a call a dead process made (a restart): follow its ``legs`` (channel id -> answered), hold the
        ``bridge`` it talks in (destroyed with the call) and expect the ``recording`` under way there."""
        for leg, answered in legs.items():
            self.translator.expect_leg(leg, call, answered=answered, confirmed=True)
        if recording:
            self.translator.expect_recording(recording, call)
        if bridge:
            joined = {call, *(leg for leg, answered in legs.items() if answered)}
            self.commands.calls[call] = CallMedia(bridge=bridge, joined=joined)

    async def channels(self) -> list[dict[str, Any]]:
        """``GET /channels``: every channel that exists now."""
        listed = await self.request("channels", "list")
        return [item for item in listed if isinstance(item, dict)] if isinstance(listed, list) else []

    async def fetch_recording(self, name: str) -> bytes | None:
        """The stored recording's file (``GET /recordings/stored/{name}/file``); None when there is none."""
        try:
            data = await self.request("recordings", "getStoredFile", recordingName=name)
        except PbxError as exc:
            if exc.status == 404:
                return None
            raise
        return data if isinstance(data, bytes) else None

    async def originate(
        self,
        endpoint: str,
        channel_id: str,
        app_args: Sequence[str] | str,
        caller_id: str = "",
        timeout: float = 30.0,
        variables: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Originate ``endpoint`` into our Stasis app with our own channel id (click-to-call, callbacks).

        A 409 (the channel id exists) means it is already under way and is not an error: returns ``{}``.
        """
        args = app_args if isinstance(app_args, str) else ",".join(app_args)
        try:
            made = await self.request("channels", "originateWithId", channelId=channel_id, endpoint=endpoint,
                                      app=self.settings.app, appArgs=args, callerId=caller_id or None,
                                      timeout=math.ceil(timeout) if timeout > 0 else -1,
                                      variables=dict(variables) if variables else None)  # fmt: skip
        except PbxError as exc:
            if exc.status == 409:
                return {}
            raise
        return made if isinstance(made, dict) else {}
