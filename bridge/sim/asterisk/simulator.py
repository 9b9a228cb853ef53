"""``AsteriskSimulator``: AMI and ARI servers on 127.0.0.1 plus the controls tests and demos use."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

if TYPE_CHECKING:
    from bridge.config import Settings

from bridge.sim.asterisk.ami import AmiServer
from bridge.sim.asterisk.ami_actions import AmiActions
from bridge.sim.asterisk.ari import EventSocket, build_app
from bridge.sim.asterisk.bus import EventBus
from bridge.sim.asterisk.calls import CallHandle
from bridge.sim.asterisk.causes import DEVICE_STATES, NORMAL_CLEARING
from bridge.sim.asterisk.devices import ORDERS
from bridge.sim.asterisk.fallback import FallbackDialplan
from bridge.sim.asterisk.inbound import CallerScript, InboundCall, place_inbound
from bridge.sim.asterisk.model import CallerId, Channel, Headers
from bridge.sim.asterisk.originate import Originator
from bridge.sim.asterisk.outbound import Phone, dial_out, enter_by_code, start_phone
from bridge.sim.asterisk.parties import Answer, Party, PartyBook
from bridge.sim.asterisk.pbx import Pbx
from bridge.sim.asterisk.transfers import TransferError, attended_transfer, blind_transfer

log = structlog.get_logger(__name__)

_REDACTED = ("secret", "password", "api_key")


class AsteriskSimulator:
    """A protocol-level Asterisk 20: AMI over TCP, ARI over HTTP + WebSocket, scripted parties."""

    def __init__(
        self,
        *,
        ari_user: str = "b24bridge",
        ari_password: str = "ari-secret",
        ami_user: str = "b24bridge",
        ami_secret: str = "ami-secret",
        ami_read: str = "all",
        ami_write: str = "all",
        ami_eventfilters: Sequence[str] = (),
        dialplan_context: str = "from-trunk",
        stasis_app: str = "b24bridge",
        outbound_context: str = "from-agents",
        phone_template: str = "Local/{ext}@phones",
        trunk_template: str = "Local/{number}@external",
        default_party: Party | None = None,
        media_seconds: float = 0.3,
        recordings_dir: Path | None = None,
        endpoints: Iterable[str] = (),
        asterisk_id: str = "02:fc:00:00:00:01",
        system_name: str = "",
    ) -> None:
        self.ari_user, self.ari_password = ari_user, ari_password
        self.dialplan_context, self.stasis_app = dialplan_context, stasis_app
        self.outbound_context = outbound_context
        self.phone_template, self.trunk_template = phone_template, trunk_template
        self.bus = EventBus(asterisk_id)
        self.pbx = Pbx(self.bus, PartyBook(default_party or Answer(after=1.0)))
        self.pbx.ids.system_name = system_name
        self.pbx.media.media_seconds = media_seconds
        self.originator = Originator(self.pbx)
        self.ami_server = AmiServer(
            username=ami_user,
            secret=ami_secret,
            handler=AmiActions(self).handle,
            read=ami_read,
            write=ami_write,
            eventfilters=ami_eventfilters,
        )
        self.bus.ami_sinks.append(self.ami_server.broadcast)
        self.requests: list[dict[str, Any]] = []
        self.global_variables: dict[str, str] = {}
        self.sockets: set[EventSocket] = set()
        self.ari_silent = False
        self.ari_rest_over_websocket = True
        """False: a PBX older than 20.14, which ignores REST requests sent on the events WebSocket."""
        self._awake = asyncio.Event()
        self._awake.set()
        self._recordings_dir, self._own_dir = recordings_dir, recordings_dir is None
        self._runner: web.AppRunner | None = None
        self.started_at = time.time()
        self.host, self.ari_port, self.ami_port = "127.0.0.1", 0, 0
        for endpoint in endpoints:
            self.pbx.devices.endpoints[endpoint] = "online"

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", ari_port: int = 0, ami_port: int = 0) -> None:
        if self._recordings_dir is None:
            self._recordings_dir = Path(tempfile.mkdtemp(prefix="asterisk-sim-"))
        self.pbx.media.recordings_dir = self._recordings_dir
        self.host = host
        self._runner = web.AppRunner(build_app(self), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, ari_port)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.ari_port = server.sockets[0].getsockname()[1]
        self.ami_port = await self.ami_server.start(host, ami_port)
        self.started_at = time.time()
        log.info("sim.started", ari_url=self.ari_url, ami_port=self.ami_port)

    async def stop(self) -> None:
        self.wake()
        for channel in list(self.pbx.channels.values()):
            channel.cancel_timers()
        for socket in list(self.sockets):
            socket.abort()
        await self.ami_server.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._own_dir and self._recordings_dir is not None:
            shutil.rmtree(self._recordings_dir, ignore_errors=True)
        log.info("sim.stopped")

    async def __aenter__(self) -> AsteriskSimulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def ari_url(self) -> str:
        return f"http://{self.host}:{self.ari_port}"

    @property
    def ami_host(self) -> str:
        return self.host

    @property
    def ami_chunk_size(self) -> int | None:
        return self.ami_server.chunk_size

    @ami_chunk_size.setter
    def ami_chunk_size(self, size: int | None) -> None:
        self.ami_server.chunk_size = size

    # --- parties and devices ---------------------------------------------------------------
    def set_party(self, extension: str, party: Party) -> None:
        self.pbx.parties.set(extension, party)

    def set_device_state(self, device: str, state: str) -> None:
        """AMI ``DeviceStateChange``; ARI ``DeviceStateChanged`` to apps subscribed to the device."""
        if state not in DEVICE_STATES:
            raise ValueError(f"unknown device state {state!r}; one of {', '.join(DEVICE_STATES)}")
        self.pbx.devices.set_state(device, state)

    def set_device_state_order(self, order: str, lag: float | None = None) -> None:
        """How a phone's device state races its channel events (``devices.py``): ``device-first``,
        ``device-last`` or ``random`` (default), ``lag`` seconds apart."""
        if order not in ORDERS:
            raise ValueError(f"unknown device state order {order!r}; one of {', '.join(ORDERS)}")
        self.pbx.devices.order = order  # type: ignore[assignment]
        if lag is not None:
            self.pbx.devices.lag = lag

    def pick_up(self, channel_id: str) -> None:
        """The phone of ringing channel ``channel_id`` answers it (a person choosing one of several calls); its
        device state races the answer as ``set_device_state_order`` says."""
        channel = self._channel(channel_id)
        if self.pbx.devices.answer_leads(channel):
            self.pbx.later(channel, self.pbx.devices.lag, lambda: self.pbx.answer(channel))
        else:
            self.pbx.answer(channel)

    def hang_up(self, channel_id: str) -> None:
        """The phone of channel ``channel_id`` (or the far end behind the trunk) hangs up: cause 16, as its BYE."""
        self.pbx.hangup(self._channel(channel_id), NORMAL_CLEARING, "remote")

    def hold(self, channel_id: str, held: bool = True) -> None:
        """The phone of channel ``channel_id`` puts its call on hold (``held=False``: takes it back)."""
        self.pbx.set_hold(self._channel(channel_id), held)

    def configure_devices(self, devices: Iterable[str] | None) -> None:
        """The devices this PBX has (its pjsip.conf endpoints, its agents' dialplan extensions): any other reads
        ``INVALID`` (``GET /deviceStates/{device}``) as on a real Asterisk. None: every device."""
        self.pbx.devices.configure(devices)

    def device_state(self, device: str) -> str:
        return self.pbx.devices.state_of(device)

    def set_endpoint_state(self, endpoint: str, state: str) -> None:
        """``online``/``offline``: ContactStatus + PeerStatus on AMI, EndpointStateChange on ARI.
        An offline endpoint is UNAVAILABLE and dialing it gives CHANUNAVAIL."""
        if state not in ("online", "offline") or "/" not in endpoint:
            raise ValueError(f"need an endpoint like PJSIP/1001 and 'online' or 'offline', not {endpoint!r} {state!r}")
        self.pbx.devices.set_endpoint_state(endpoint, state)

    def load_fallback(self, settings: Settings) -> None:
        """Load the dialplan ``b24-bridge dialplan`` generates for ``settings``: a line whose ``Stasis()`` fails
        (no application connected) then runs its fallback and leaves its trace in AstDB."""
        self.pbx.fallback_dialplan = FallbackDialplan.from_settings(settings)

    @property
    def astdb(self) -> dict[str, str]:
        """AstDB as the PBX holds it now (full key -> value)."""
        return self.pbx.astdb

    # --- scripted calls --------------------------------------------------------------------
    async def place_inbound_call(
        self,
        did: str,
        caller: str,
        caller_name: str = "",
        *,
        hangup_after: float | None = None,
        dtmf: Sequence[tuple[float, str]] = (),
        hangup_after_answer: float | None = None,
    ) -> InboundCall:
        script = CallerScript(hangup_after=hangup_after, dtmf=list(dtmf), hangup_after_answer=hangup_after_answer)
        return place_inbound(
            self.pbx, app=self.stasis_app, context=self.dialplan_context, did=did,
            caller=CallerId(caller_name, caller), script=script,
        )  # fmt: skip

    async def place_outbound_call(
        self,
        from_ext: str,
        number: str,
        answer_after: float = 4.0,
        talk: float | None = 8.0,
        *,
        caller_name: str | None = None,
        device: str | None = None,
        dial_timeout: float = 60.0,
        hangup_after: float | None = None,
    ) -> CallHandle:
        """A phone dials ``number`` through the dialplan (AMI only). ``set_party(number, ...)``
        overrides ``answer_after``/``talk``; ``hangup_after`` makes the phone give up first."""
        phone = Phone(
            device=device or self.phone_template.format(ext=from_ext),
            caller=CallerId(f"Agent {from_ext}" if caller_name is None else caller_name, from_ext),
            context=self.outbound_context,
            party=Answer(after=0.0),
            originated=False,
        )
        party = self.pbx.parties.get(number) or Answer(after=answer_after, talk=talk)

        def then(channel: Channel, handle: CallHandle) -> None:
            dial_out(self.pbx, channel, handle, number=number, trunk=self.trunk_template, party=party,
                     timeout=dial_timeout)  # fmt: skip

        handle = start_phone(self.pbx, phone, number, then)
        if hangup_after is not None:
            quitter = handle.members[-1]  # the phone robot (";2") or the phone itself
            self.pbx.later(quitter, hangup_after, lambda: self.pbx.hangup(quitter, 16, "dialplan"))
        return handle

    async def intercept(
        self, ext: str, code: str = "*8", args: Sequence[str] = (), *, device: str | None = None
    ) -> CallHandle:
        """A phone dials a feature code that enters Stasis with ``args``."""
        phone = Phone(
            device=device or self.phone_template.format(ext=ext), caller=CallerId(f"Agent {ext}", ext),
            context=self.outbound_context, party=Answer(after=0.0), originated=False,
        )  # fmt: skip
        app, stasis_args = self.stasis_app, list(args) or ["intercept", ext, code]
        return start_phone(
            self.pbx, phone, code,
            lambda channel, _handle: enter_by_code(self.pbx, channel, app=app, code=code, args=stasis_args),
        )  # fmt: skip

    async def blind_transfer(self, channel_id: str, exten: str, context: str | None = None) -> str:
        """The phone on ``channel_id`` (in a Stasis bridge) blind-transfers its peer to ``exten``.
        Returns the id of the Local ``;1`` that replaces it in the bridge."""
        return blind_transfer(self.pbx, self._channel(channel_id), exten, context or self.outbound_context).id

    async def attended_transfer(self, first_leg_id: str, second_leg_id: str) -> None:
        """Join the peer of ``first_leg_id`` with the peer of ``second_leg_id``; both legs hang up."""
        attended_transfer(self.pbx, self._channel(first_leg_id), self._channel(second_leg_id))

    def _channel(self, channel_id: str) -> Channel:
        if channel_id not in self.pbx.channels:
            raise TransferError(f"no channel {channel_id!r}")
        return self.pbx.channels[channel_id]

    # --- faults and injection --------------------------------------------------------------
    async def drop_connections(self, *, ari: bool = True, ami: bool = True) -> None:
        if ami:
            self.ami_server.drop_all()
        if ari:
            for socket in list(self.sockets):
                socket.abort()
            server = self._runner.server if self._runner is not None else None
            for connection in list(server.connections if server is not None else []):
                if connection.transport is not None:
                    connection.transport.abort()
        await asyncio.sleep(0)

    def go_silent(self, *, ami: bool = True, ari: bool = False) -> None:
        """Keep the sockets open but stop answering and sending (a half-open connection)."""
        if ami:
            self.ami_server.silent = True
        if ari:
            self.ari_silent = True
            self._awake.clear()

    def wake(self) -> None:
        self.ami_server.silent = False
        self.ari_silent = False
        self._awake.set()

    async def wait_awake_ari(self) -> None:
        await self._awake.wait()

    async def inject_ami_event(self, event: dict[str, str] | Headers) -> None:
        headers = list(event.items()) if isinstance(event, dict) else list(event)
        self.ami_server.broadcast(headers)
        await asyncio.sleep(0)

    async def inject_ami_bytes(self, data: bytes) -> None:
        """Raw bytes to every logged-in AMI session (malformed frames, partial messages)."""
        self.ami_server.broadcast_bytes(data)
        await asyncio.sleep(0)

    async def inject_ari_event(self, event: dict[str, Any]) -> None:
        self.bus.broadcast_ari(event)
        await asyncio.sleep(0)

    async def inject_ari_text(self, text: str) -> None:
        """A raw text frame to every events WebSocket (bad JSON, wrong shapes)."""
        for socket in list(self.sockets):
            socket.push_text(text)
        await asyncio.sleep(0)

    # --- inspection ------------------------------------------------------------------------
    def record_request(self, proto: str, method: str, path: str, params: dict[str, Any], via: str = "http") -> None:
        """Keep one request for inspection; ``via`` is ``websocket`` for an ARI RESTRequest."""
        clean = {k: ("***" if k.lower() in _REDACTED else v) for k, v in params.items()}
        self.requests.append(
            {"proto": proto, "method": method, "path": path, "params": clean, "at": time.time(), "via": via}
        )

    def channels(self) -> list[dict[str, Any]]:
        return [channel.as_json() for channel in self.pbx.channels.values()]

    @property
    def recordings(self) -> dict[str, dict[str, Any]]:
        return dict(self.pbx.media.stored)

    def set_global_variable(self, name: str, value: str) -> None:
        """``Set(GLOBAL(name)=value)``, AMI ``Setvar`` or ARI ``POST /asterisk/variable``: AMI ``VarSet`` with no
        channel (``Channel``/``Uniqueid`` ``none``, no ``Linkedid``), ARI ``ChannelVarset`` without ``channel``."""
        self.global_variables[name] = value
        fields: Headers = [("Channel", "none"), ("Uniqueid", "none"), ("Variable", name), ("Value", value)]
        self.pbx.ami("VarSet", fields, "dialplan")
        self.pbx.ari("ChannelVarset", after={"variable": name, "value": value})

    def channel_variable(self, channel: Channel, name: str) -> str | None:
        """A channel variable or one of the dialplan functions clients read (``CHANNEL(linkedid)``)."""
        return channel.read_variable(name)
