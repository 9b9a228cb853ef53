"""The composition root: the one place that builds real adapters and runs them.

``serve()`` -> startup -> run -> shutdown (the uvicorn habit): signals only set a flag. On SIGTERM or SIGINT the
daemon stops taking new calls, keeps mirroring the calls in progress for a grace period, flushes what Bitrix24
will take, leaves the rest in the journal and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from bridge import logs
from bridge.clicktocall import ClickToCallDesk
from bridge.config import Settings, load_config
from bridge.crm.client import Bitrix24Client
from bridge.crm.directory import Directory
from bridge.crm.errors import CrmError
from bridge.crm.inbound import EventGate, nest_form
from bridge.crm.lookup import CrmLookup
from bridge.crm.telephony import Telephony
from bridge.delivery.hooks import DeliveryObserver
from bridge.delivery.loop import Delivery
from bridge.delivery.recordings import recording_loader
from bridge.dispatch import Dispatcher, StampedQueue
from bridge.domain.scheme import Availability, Plan
from bridge.http_api import EVENTS_PATH, Health, build_app
from bridge.journal.lock import JournalBusy, exclusive
from bridge.journal.store import Journal
from bridge.metrics import Metrics
from bridge.pbx.ami import AmiLink
from bridge.pbx.ari import AriLink
from bridge.recovery import recover_open_calls
from bridge.systemd import Notifier

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Timing:
    """How long shutdown may take, in seconds."""

    grace: float = 20.0
    """Calls in progress are mirrored this long after SIGTERM before the daemon stops anyway."""
    flush: float = 10.0
    """Then Bitrix24 gets this long to take what is still in the journal."""
    recovery_poll: float = 2.0
    """After a restart, how often calls adopted from the journal are checked on the PBX."""


class _MetricsObserver(DeliveryObserver):
    def __init__(self, metrics: Metrics) -> None:
        from prometheus_client import Counter

        r = metrics.registry
        self.requests = Counter("b24bridge_crm_requests", "batch requests sent to Bitrix24", ["ok"], registry=r)
        self.commands = Counter("b24bridge_crm_commands", "operations confirmed by Bitrix24", ["method"], registry=r)
        self.problems = Counter("b24bridge_crm_problems", "operations retried or failed", ["kind", "code"], registry=r)
        self.offline_calls = Counter("b24bridge_crm_offline_calls", "calls mirrored offline", registry=r)

    def batch_sent(self, commands: int, seconds: float, ok: bool) -> None:
        self.requests.labels(ok=str(ok).lower()).inc()

    def delivered(self, kind: str, method: str) -> None:
        self.commands.labels(method=method).inc()

    def retried(self, kind: str, method: str, code: str) -> None:
        self.problems.labels(kind="retry", code=code or "network").inc()

    def failed(self, kind: str, method: str, reason: str) -> None:
        self.problems.labels(kind="failed", code=method).inc()

    def offline(self, crm_leg: str) -> None:
        self.offline_calls.inc()


class Daemon:
    def __init__(self, settings: Settings, *, timing: Timing = Timing(), notifier: Notifier | None = None) -> None:
        self.settings = settings
        self.timing = timing
        self.notifier = notifier or Notifier()
        self.metrics = Metrics()
        self.stop_requested = asyncio.Event()
        self.started = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._runner: web.AppRunner | None = None
        self._held = contextlib.ExitStack()
        self.http_port = 0
        logs.register_secrets(_secret_values(settings))

    # -- startup ----------------------------------------------------------------------------------------

    async def startup(self) -> None:
        s = self.settings
        # one writer per journal: a second daemon or a replay on it would send the same calls twice
        self._held.enter_context(exclusive(s.journal.path, holder="b24-bridge run"))
        self.journal = Journal.open(s.journal.path)
        # Delivery retries through the journal (with a statistics check), never by resending a batch blindly.
        self.delivery_client = Bitrix24Client(s.bitrix24, retry_attempts=1)
        self.client = Bitrix24Client(s.bitrix24, retry_attempts=3, retry_max_wait=2.0)
        self.telephony = Telephony(self.client)
        self.directory = Directory(
            self.telephony,
            s.plan.employees,
            auto_map=s.employees.auto_map,
            refresh=s.bitrix24.directory_refresh,
            availability_ttl=s.bitrix24.availability_ttl,
            time_tracking=s.employees.time_tracking,
        )
        self.delivery = Delivery(
            self.journal,
            self.delivery_client,
            Telephony(self.delivery_client),
            s.bitrix24,
            recording_loader=recording_loader(s.asterisk),
            observer=_MetricsObserver(self.metrics),
        )
        pbx_queue = StampedQueue()
        self.ari = AriLink(s.asterisk, pbx_queue)
        self.ami = AmiLink(s.asterisk, pbx_queue)
        self.desk = ClickToCallDesk(s, self.ari, self.directory)
        self.dispatcher = Dispatcher(
            plan=self.current_plan,
            pbx=self.ari,
            outbox=self.journal,
            outbox_changed=self.delivery.notify,
            lookup=CrmLookup(self.telephony).lookup_caller,
            metrics=self.metrics,
            on_stasis=self.desk.on_stasis,
            queue=pbx_queue,
        )
        self.desk.attach(self.dispatcher)
        self.gate = EventGate(s.bitrix24.application_token.reveal())
        self._metrics_samples()
        await self._start_http()
        await self._refresh_directory()
        self._spawn(self.dispatcher.run(), "dispatcher")
        self._spawn(self.delivery.run(), "delivery")
        self._spawn(self.ari.run(), "ari")
        self._spawn(self.ami.run(), "ami")
        self._spawn(self.directory.run(), "directory")
        self._spawn(self._availability_loop(), "availability")
        self._spawn(self._setup_portal(), "portal-setup")
        if s.bitrix24.events == "pull":
            self._spawn(self._poll_events(), "event-poll")
        self._spawn(
            recover_open_calls(
                self.journal,
                lambda: self.ari.connected,
                self._live_view,
                self.dispatcher.knows,
                self.delivery.notify,
                poll=self.timing.recovery_poll,
            ),
            "recovery",
        )
        self._spawn(self.notifier.watchdog(self.healthy), "watchdog")
        self.notifier.ready()
        self.started.set()
        log.info("daemon.started", http=f"{s.http.host}:{self.http_port}", lines=sorted(s.plan.lines))

    def current_plan(self) -> Plan:
        """The configured plan with the directory's current employees (configured entries win)."""
        return replace(self.settings.plan, employees=self.directory.employees())

    async def _start_http(self) -> None:
        app = build_app(health=self.health, metrics=self.metrics, gate=self.gate, on_event=self.desk.on_event)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http.host, self.settings.http.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else self.settings.http.port

    async def _refresh_directory(self) -> None:
        try:
            await asyncio.wait_for(self.directory.refresh(), 10.0)
        except (TimeoutError, CrmError) as exc:
            log.warning("directory.stale", error=str(exc), note="using the configured employees only")

    async def _setup_portal(self) -> None:
        """Create the configured lines; in OAuth mode bind the click-to-call events to our handler."""
        s = self.settings
        for number, line in s.plan.lines.items():
            try:
                await self.telephony.external_line_add(number, line.name, crm_auto_create=line.crm_create)
            except CrmError as exc:
                if "already exists" not in exc.description:
                    log.warning("crm.line_failed", line=number, error=str(exc))
        if s.bitrix24.oauth is not None and s.bitrix24.events != "off":
            offline = s.bitrix24.events == "pull"
            handler = s.bitrix24.events_url or f"http://{s.http.host}:{self.http_port}{EVENTS_PATH}"
            for event in ("ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART"):
                try:
                    await self.telephony.event_bind(event, handler, offline=offline)
                except CrmError as exc:
                    if "already" not in exc.description.lower():
                        log.warning("crm.event_bind_failed", event_name=event, error=str(exc))

    async def _poll_events(self) -> None:
        """Pull mode: take click-to-call events from ``event.offline.get`` (no public handler needed)."""
        while True:
            try:
                events = await self.telephony.event_offline_get(limit=50)
            except CrmError as exc:
                log.warning("crm.event_poll_failed", error=str(exc))
                events = []
            for item in events:
                payload = {"event": item.get("EVENT_NAME", ""), "data": item.get("EVENT_DATA") or {}}
                parsed = self.gate.accept(nest_form(payload) | payload, check_token=False)
                await self.desk.on_parsed(parsed)
            await asyncio.sleep(self.settings.bitrix24.poll_interval)

    async def _availability_loop(self) -> None:
        """Absence and time tracking from Bitrix24, for every known extension, once per TTL."""
        while True:
            exts = list(self.directory.employees())
            try:
                found = await self.directory.availability(exts)
            except CrmError as exc:
                log.debug("directory.availability_failed", error=str(exc))
            else:
                if not self.settings.employees.skip_absent:
                    found = {e: a for e, a in found.items() if a is not Availability.ABSENT}
                self.dispatcher.crm_availability(found)
            await asyncio.sleep(self.settings.bitrix24.availability_ttl)

    async def _live_view(self) -> tuple[set[str], set[str]]:
        """What exists on the PBX now, for recovery: channel ids and Linkedids, and who is in a conversation."""
        live: set[str] = set()
        talking: set[str] = set()
        for channel in await self.ari.channels():
            live.add(str(channel.get("id")))
        bridges = await self.ari.request("bridges", "list")
        for bridge in bridges if isinstance(bridges, list) else []:
            members = [str(c) for c in bridge.get("channels", [])] if isinstance(bridge, dict) else []
            if len(members) >= 2:
                talking.update(members)
        if self.ami.connected:
            for row in await self.ami.core_show_channels():
                linkedid = row.get("Linkedid", "")
                live.update(x for x in (row.get("Uniqueid", ""), linkedid) if x)
                if row.get("BridgeId") and linkedid:
                    talking.add(linkedid)
        return live, talking

    # -- health and metrics -----------------------------------------------------------------------------

    def health(self) -> dict[str, Health]:
        pending_age = self.journal.oldest_pending_age(time.time())
        limit = max(60.0, self.settings.bitrix24.register_timeout * 12)
        return {
            "ari": Health(self.ari.connected, "connected" if self.ari.connected else "not connected"),
            "ami": Health(self.ami.connected, "connected" if self.ami.connected else "not connected"),
            "bitrix24": Health(
                pending_age < limit,
                f"oldest pending operation {pending_age:.0f} s old" if pending_age else "nothing pending",
            ),
            "journal": Health(True, f"{self.journal.depth()} pending operation(s)"),
        }

    def healthy(self) -> bool:
        return all(h.ok for h in self.health().values())

    def _metrics_samples(self) -> None:
        m = self.metrics
        m.sample("b24bridge_journal_depth", "Pending Bitrix24 operations in the journal", self.journal.depth)
        m.sample(
            "b24bridge_journal_oldest_pending_seconds",
            "Age of the oldest pending operation",
            lambda: self.journal.oldest_pending_age(time.time()),
        )
        m.sample("b24bridge_crm_bucket_level", "Client-side leaky bucket fill", self.delivery_client.bucket_level)
        m.sample("b24bridge_crm_http_requests", "HTTP requests to Bitrix24", lambda: _stat(self, "requests"))
        m.sample("b24bridge_crm_http_commands", "Commands sent to Bitrix24", lambda: _stat(self, "commands"))
        m.sample(
            "b24bridge_crm_query_limit_exceeded",
            "503 QUERY_LIMIT_EXCEEDED answers",
            lambda: _stat(self, "query_limit_exceeded"),
        )

    # -- run and shutdown --------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self.stop_requested.set()

    async def serve(self, *, install_signals: bool = True) -> int:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if install_signals else ()
        for sig in signals:
            loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.startup()
            await self.stop_requested.wait()
        finally:
            await self.shutdown()
            for sig in signals:
                loop.remove_signal_handler(sig)
        return 0

    async def shutdown(self) -> None:
        log.info("daemon.stopping", active_calls=getattr(self, "dispatcher", None) and self.dispatcher.active)
        self.notifier.stopping()
        dispatcher: Dispatcher | None = getattr(self, "dispatcher", None)
        if dispatcher is not None:
            dispatcher.accepting = False
            deadline = time.monotonic() + self.timing.grace
            while dispatcher.active and time.monotonic() < deadline:  # noqa: ASYNC110 - calls end one by one
                await asyncio.sleep(0.05)
            if dispatcher.active:
                log.warning("daemon.calls_left", calls=dispatcher.active, note="their operations stay in the journal")
            await dispatcher.close()
        delivery: Delivery | None = getattr(self, "delivery", None)
        if delivery is not None:
            flushed = await delivery.flush(self.timing.flush)
            if not flushed:
                log.warning("daemon.unflushed", pending=self.journal.depth(), note="sent after the next start")
        for task in reversed(self._tasks):
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for link in (getattr(self, "ari", None), getattr(self, "ami", None)):
            if link is not None:
                with contextlib.suppress(Exception):
                    await link.stop()
        for client in (getattr(self, "client", None), getattr(self, "delivery_client", None)):
            if client is not None:
                await client.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if getattr(self, "journal", None) is not None:
            self.journal.close()
        self._held.close()
        log.info("daemon.stopped")

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        task.add_done_callback(_report_crash)
        self._tasks.append(task)


def _stat(daemon: Daemon, name: str) -> float:
    return float(getattr(daemon.delivery_client.stats, name, 0)) + float(getattr(daemon.client.stats, name, 0))


def _report_crash(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("daemon.task_crashed", task=task.get_name(), error=repr(exc))


def _secret_values(settings: Settings) -> list[str]:
    s = settings
    values = [s.asterisk.ari_password.reveal(), s.asterisk.ami_secret.reveal(), s.bitrix24.application_token.reveal()]
    if s.bitrix24.webhook_url is not None:
        values.append(s.bitrix24.webhook_url.reveal())
    if s.bitrix24.oauth is not None:
        values.append(s.bitrix24.oauth.client_secret.reveal())
    return values


def run_main(args: argparse.Namespace) -> int:
    settings = load_config(Path(args.config))
    try:
        return asyncio.run(Daemon(settings).serve())
    except JournalBusy as exc:
        log.error("daemon.refused", reason=str(exc))
        return 1


def check_main(args: argparse.Namespace) -> int:
    from bridge.check import check

    settings = load_config(Path(args.config))
    logs.register_secrets(_secret_values(settings))
    return asyncio.run(check(settings))
