"""The AMI link (panoramisk 1.4): watch calls the dialplan handles, device states, commands and originates.

What this adds to panoramisk, one gap each (``/work/shared/reference/asterisk.md`` section 3):

* an incremental UTF-8 decoder in our protocol subclass (a read may split a character of a caller name);
* ``Command`` output normalised to a list of lines (:func:`bridge.pbx.ami_stream.command_output`);
* Async ``Originate`` run as its own task: panoramisk returns only once ``OriginateResponse`` arrives;
* a watchdog: panoramisk pings but never checks the Pong, so a silent half-open connection is never noticed;
* our own reconnect loop with exponential backoff (capped at ``reconnect_max_delay``) instead of panoramisk's
  fixed delay, and actions pending at a disconnect fail instead of being resent (an Originate must not run twice);
* the login asks only for the event classes the bridge reads, and ``Filter`` actions narrow them to the events it
  reads (:mod:`bridge.pbx.ami_events`; refused unless the AMI user has ``write = system``: then the mask alone);
* events no action of ours waits for go from the frame parser straight to the translator
  (:class:`bridge.pbx.ami_protocol.Utf8AmiProtocol`), past panoramisk's per-event dispatch;
* after each (re)connect a resync: ``CoreShowChannels`` and ``DeviceStateList`` -> ``Resynced``;
* events are translated and queued from plain sync callbacks (panoramisk schedules coroutine callbacks with
  ``ensure_future``: no ordering);
* when each channel hung up, as AMI saw it (:meth:`AmiLink.hung_up_at`): an end the ARI link only learns from
  its resync after a gap gets its real time from here.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from panoramisk.actions import Action

from bridge.config import AsteriskSettings
from bridge.dialplan.trace import UNIQUEID_RE
from bridge.logs import register_secrets
from bridge.pbx.ami_events import event_filter, event_mask
from bridge.pbx.ami_protocol import LinkManager, Utf8AmiProtocol
from bridge.pbx.ami_stream import command_output
from bridge.pbx.events import BadInput, PbxError, PbxEvent
from bridge.pbx.observe import AmiTranslator
from bridge.pbx.outcomes import EndpointTemplate
from bridge.pbx.reconnect import ReconnectingLink

log = structlog.get_logger(__name__)

ACTION_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
HANGUPS_KEPT = 20_000
"""Hang-up times remembered (the most recent; far more channels than end during any reconnect)."""


def action_ids() -> str:
    """How panoramisk's ActionIDs of this process start (``action/<uuid>/``): ``OriginateResponse`` to others' is
    left out by the filter."""
    generator = Action.action_id_generator
    return f"{generator.prefix}/{generator.uid}/"


@dataclass(frozen=True)
class OriginateResult:
    """What ``OriginateResponse`` said: ``reason`` 4 = answered, 5 = busy, 3 = no answer, 1/8 = failed."""

    success: bool
    reason: int
    channel: str = ""
    uniqueid: str = ""


class AmiLink(ReconnectingLink):
    """Keeps one AMI session up and puts what it sees on ``out`` as :class:`PbxEvent`."""

    link = "ami"
    action_timeout = ACTION_TIMEOUT
    """Longest wait for an answer to an action (the login included)."""

    def __init__(self, settings: AsteriskSettings, out: asyncio.Queue[PbxEvent]) -> None:
        super().__init__(settings.reconnect_max_delay)
        self.settings = settings
        self.out = out
        self.translator = AmiTranslator(
            EndpointTemplate(settings.device), settings.outbound_contexts, settings.monitor_lines
        )
        self._manager: LinkManager | None = None
        self._hangups: OrderedDict[str, datetime] = OrderedDict()
        self.on_connected: list[Callable[[], None]] = []
        """Called after each (re)connect's resync (e.g. to read what the dialplan did meanwhile)."""
        register_secrets([settings.ami_secret.reveal()])

    def hung_up_at(self, channel: str) -> datetime | None:
        """When AMI saw channel ``channel`` (a Uniqueid, which is the ARI channel id) hang up; None if it did not."""
        return self._hangups.get(channel)

    # --- lifecycle -----------------------------------------------------------------------------------

    async def _session(self) -> bool:
        manager = await self._connect()
        self._manager = manager
        self.connected = True
        log.info("pbx.connected", link="ami", version=manager.protocol.version or "")
        watchdog = asyncio.create_task(self._watchdog(manager))
        try:
            await self._add_filters()
            await self._resync()
            for hook in self.on_connected:
                hook()
            await manager.lost.wait()
            return True
        finally:
            watchdog.cancel()
            self.connected = False
            self._manager = None
            manager.close()
            manager.fail_pending()
            log.info("pbx.disconnected", link="ami")

    async def _connect(self) -> LinkManager:
        loop = asyncio.get_running_loop()
        s = self.settings
        manager = LinkManager(
            asyncio.Event(),
            host=s.ami_host,
            port=s.ami_port,
            username=s.ami_user,
            secret=s.ami_secret.reveal(),
            events=event_mask(),
            encoding="utf8",
            loop=loop,
            protocol_factory=Utf8AmiProtocol,
            ping_delay=3600,
        )
        manager.register_event("*", self._on_event)  # events with another client's ActionID, and Shutdown
        connecting = loop.create_connection(Utf8AmiProtocol, s.ami_host, s.ami_port)
        async with asyncio.timeout(CONNECT_TIMEOUT):
            transport, protocol = await connecting
        protocol.on_event = self._on_frame
        made: asyncio.Future[tuple[asyncio.BaseTransport, Utf8AmiProtocol]] = loop.create_future()
        made.set_result((transport, protocol))
        manager.connection_made(made)
        login = manager.authenticated_future
        try:
            async with asyncio.timeout(self.action_timeout):
                answer = await asyncio.shield(login)
        except BaseException:
            manager.close()
            raise
        if not answer.success:
            manager.close()
            raise PbxError(0, "AMI login refused (check ami_user / ami_secret)", action="Login")
        return manager  # type: ignore[no-any-return]

    async def _watchdog(self, manager: LinkManager) -> None:
        """Ping every ``ping_interval``; no answer within it -> drop the connection (the run loop reconnects)."""
        interval = self.settings.ping_interval
        while True:
            await asyncio.sleep(interval)
            try:
                async with asyncio.timeout(interval):
                    await manager.send_action({"Action": "Ping"})
            except TimeoutError:
                log.warning("pbx.pong_missing", link="ami", waited=interval)
                transport = getattr(manager.protocol, "transport", None)
                if transport is not None:
                    transport.abort()
                manager.lost.set()
                return
            except PbxError:
                return

    async def _add_filters(self) -> None:
        patterns = event_filter(self.settings, action_ids())
        log.info("pbx.ami_filters", link="ami", filters=patterns)
        for pattern in patterns:
            answer = await self.action({"Action": "Filter", "Operation": "Add", "Filter": pattern})
            first = answer[0] if isinstance(answer, list) else answer
            if first.response != "Success":
                log.info("pbx.ami_filter_refused", link="ami", error=str(first.message or first.response))
                return

    async def _resync(self) -> None:
        channels = await self.core_show_channels()
        try:
            devices = await self._list("DeviceStateList", "DeviceStateChange")
        except PbxError as exc:
            log.info("pbx.device_states_unavailable", link="ami", error=str(exc))
            devices = []
        for event in self.translator.resync(channels, devices):
            self._emit(event)

    # --- events --------------------------------------------------------------------------------------

    def _on_event(self, _manager: Any, message: Any) -> None:
        self._on_frame(message)

    def _on_frame(self, message: Any) -> None:
        """An event: the protocol hands nearly all of them here directly, panoramisk the rest (:meth:`_on_event`)."""
        uniqueid = message.get("Uniqueid") if message.get("Event") == "Hangup" else None
        if isinstance(uniqueid, str) and uniqueid:
            self._hangups[uniqueid] = datetime.now(UTC)
            if len(self._hangups) > HANGUPS_KEPT:
                self._hangups.popitem(last=False)
        for event in self.translator.feed(message):
            self._emit(event)

    def _emit(self, event: PbxEvent) -> None:
        if isinstance(event.event, BadInput):
            log.warning("pbx.bad_input", link="ami", reason=event.event.reason)
        else:
            self.out.put_nowait(event)

    # --- actions -------------------------------------------------------------------------------------

    async def action(self, fields: Mapping[str, str | list[str]], wait: float | None = None) -> Any:
        """Send one action and wait for its answer (a Message, or a list for multi-message answers)."""
        manager = self._manager
        if manager is None or not self.connected:
            raise PbxError(0, "AMI not connected", action=str(fields.get("Action", "")))
        for key, value in fields.items():
            for item in value if isinstance(value, list) else [value]:
                if "\r" in item or "\n" in item or "\r" in key or "\n" in key:
                    raise PbxError(0, f"line break in {key}", action=str(fields.get("Action", "")))
        try:
            async with asyncio.timeout(wait or self.action_timeout):
                return await manager.send_action(dict(fields))  # type: ignore[no-any-return]
        except TimeoutError as exc:
            raise PbxError(0, "no answer from AMI", action=str(fields.get("Action", ""))) from exc

    async def command(self, cmd: str) -> list[str]:
        """A CLI command; its output as lines."""
        answer = await self.action({"Action": "Command", "Command": cmd})
        first = answer[0] if isinstance(answer, list) else answer
        if first.response not in ("Success", "Follows"):
            raise PbxError(0, str(first.message or first.response), action="Command")
        return command_output(first)

    async def core_show_channels(self) -> list[dict[str, str]]:
        """Every channel that exists now, as ``CoreShowChannel`` header dicts."""
        return await self._list("CoreShowChannels", "CoreShowChannel")

    async def _list(self, action: str, item_event: str) -> list[dict[str, str]]:
        answer = await self.action({"Action": action})
        messages = answer if isinstance(answer, list) else [answer]
        if messages[0].response == "Error":
            raise PbxError(0, str(messages[0].message), action=action)
        return [dict(m.items()) for m in messages if m.event == item_event]

    async def db_tree(self, family: str) -> list[tuple[str, str]]:
        """``DBGetTree``: the AstDB entries under ``/family`` as (key, value); none is an empty list."""
        answer = await self.action({"Action": "DBGetTree", "Family": family})
        messages = answer if isinstance(answer, list) else [answer]
        if messages[0].response == "Error":
            raise PbxError(0, str(messages[0].message), action="DBGetTree")
        return [(str(m.key), str(m.val)) for m in messages if m.event == "DBGetTreeResponse"]

    async def forget_trace(self, uniqueid: str, context: str, timeout: float) -> bool:
        """Run ``Local/<uniqueid>@<context>`` (a dialplan that deletes that call's trace); True when it ran."""
        if not UNIQUEID_RE.fullmatch(uniqueid):
            return False
        try:
            result = await self.originate_async(
                f"Local/{uniqueid}@{context}", application="NoOp", data="b24-bridge", timeout=timeout
            )
        except PbxError as exc:
            log.warning("pbx.trace_delete_failed", link="ami", error=str(exc))
            return False
        return result.success

    def originate_async(
        self,
        channel: str,
        *,
        context: str = "",
        exten: str = "",
        priority: int = 1,
        application: str = "",
        data: str = "",
        caller_id: str = "",
        timeout: float = 30.0,
        variables: Mapping[str, str] | None = None,
    ) -> asyncio.Task[OriginateResult]:
        """Start an Async Originate in its own task; the task ends with the ``OriginateResponse``."""
        fields: dict[str, str | list[str]] = {
            "Action": "Originate",
            "Channel": channel,
            "Async": "true",
            "Timeout": str(int(timeout * 1000)),
        }
        if application:
            fields.update(Application=application, Data=data)
        else:
            fields.update(Context=context, Exten=exten, Priority=str(priority))
        if caller_id:
            fields["CallerID"] = caller_id
        if variables:
            fields["Variable"] = [f"{name}={value}" for name, value in variables.items()]
        return asyncio.create_task(self._originate(fields, timeout))

    async def _originate(self, fields: dict[str, str | list[str]], ring_for: float) -> OriginateResult:
        answer = await self.action(fields, wait=ring_for + self.action_timeout)
        messages = answer if isinstance(answer, list) else [answer]
        if messages[0].response == "Error":
            raise PbxError(0, str(messages[0].message), action="Originate")
        for message in messages:
            if message.event == "OriginateResponse":
                reason = message.reason
                return OriginateResult(
                    success=message.response == "Success",
                    reason=int(reason) if str(reason).isdigit() else 0,
                    channel=str(message.channel),
                    uniqueid=str(message.uniqueid),
                )
        raise PbxError(0, "no OriginateResponse", action="Originate")
