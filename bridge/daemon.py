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
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from bridge import event_loop, logs
from bridge.clicktocall import ClickToCallDesk
from bridge.config import EXIT_CONFIG, ConfigError, Settings, config_warnings, file_problems, load_config
from bridge.config.checks import unmapped
from bridge.crm.client import Bitrix24Client
from bridge.crm.directory import Directory
from bridge.crm.errors import CrmError
from bridge.crm.inbound import EventGate
from bridge.crm.install import Installer, stored_application_token
from bridge.crm.lookup import CrmLookup
from bridge.crm.telephony import Telephony
from bridge.crm.workload import Workload
from bridge.delivery.loop import Delivery
from bridge.delivery.recordings import recording_loader
from bridge.dispatch import Dispatcher, StampedQueue
from bridge.dispatch.dispatcher import Outbox
from bridge.dispatch.tallies import Tallies
from bridge.domain.scheme import Employee, Plan
from bridge.journal import AsyncJournal, Journal, JournalError
from bridge.journal.behind import WriteBehind
from bridge.journal.cached import CachedReads
from bridge.journal.lock import JournalBusy, exclusive
from bridge.journal.per_pbx import OwnCalls, PbxJournal
from bridge.journal.shared_tallies import SharedTallies
from bridge.journal.tallies import JournalTallies
from bridge.leadership.budget import SharedBudget
from bridge.leadership.claims import ClickToCallClaims
from bridge.leadership.lease import DB_ERRORS
from bridge.leadership.roles import ClusterRoles, portal_of
from bridge.ops.gc_tuning import tune_after_startup
from bridge.ops.http_api import Health, Probes, build_app, event_routes, events_app
from bridge.ops.metrics import Metrics
from bridge.ops.status.sources import DeliveryWatch, JournalReads, StatusSources
from bridge.ops.status.web import status_routes
from bridge.ops.systemd import Notifier
from bridge.pbx.ami import AmiLink
from bridge.pbx.ari import AriLink
from bridge.pbx.outcomes import EndpointTemplate
from bridge.portal import PortalUpkeep
from bridge.recovery import Journalish, Recovery, pbx_view
from bridge.recovery.fallback import FallbackMirror

log = structlog.get_logger(__name__)

VITAL_TASKS = frozenset({"dispatcher", "delivery", "ari", "ami", "journal-writer"})
PBX_SIDE = frozenset({"dispatcher", "pbx", "ari", "ami", "recovery", "fallback"})
"""What stops at once when the bridge steps down from its PBX (the core too: its timers would act on calls that
another bridge adopts)."""
STOP_ROUNDS = 3
STOP_ROUND_SECONDS = 1.0
"""At shutdown the tasks are cancelled up to ``STOP_ROUNDS`` times, each time waited for this long."""
STUCK_QUEUE_SECONDS = 30.0
"""``/livez`` fails when an input has waited this long in the dispatcher's queue (the consumer is stuck)."""


@dataclass(frozen=True)
class Timing:
    """How long shutdown may take, in seconds."""

    grace: float = 20.0
    """Calls in progress are mirrored this long after SIGTERM before the daemon stops anyway."""
    flush: float = 10.0
    """Then Bitrix24 gets this long to take what is still in the journal."""
    recovery_poll: float = 1.0
    """After a restart, how often calls adopted from the journal are checked on the PBX (their talk time is
    counted between looks, so at most this much is lost at the end)."""
    fallback_poll: float = 60.0
    """Besides each AMI connect, how often AstDB is read for calls the fallback dialplan handled."""


class Daemon:
    def __init__(self, settings: Settings, *, timing: Timing = Timing(), notifier: Notifier | None = None) -> None:
        self.settings = settings
        self._plan_from: tuple[Plan, Mapping[str, Employee]] | None = None
        self._plan: Plan = settings.plan
        self.timing = timing
        self.notifier = notifier or Notifier()
        self.metrics = Metrics()
        self.stop_requested = asyncio.Event()
        self.started = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._runners: list[web.AppRunner] = []
        self._held = contextlib.ExitStack()
        self.exit_code = 0
        self.pbx_lost = False
        """This bridge stepped down from its PBX (another client took the ARI application, or its lease was lost)."""
        self.http_port = 0
        self.events_port = 0
        """The port of ``http.events_listen`` (0: ``/b24/events`` is on the main listener)."""
        logs.register_secrets(secret_values(settings))

    # -- startup ----------------------------------------------------------------------------------------

    async def startup(self) -> None:
        s = self.settings
        await self._open_journal()
        self.budget = self._shared_budget()
        # Delivery retries through the journal (with a statistics check), never by resending a batch blindly.
        self.delivery_client = Bitrix24Client(s.bitrix24, retry_attempts=1, budget=self.budget)
        self.client = Bitrix24Client(s.bitrix24, retry_attempts=3, retry_max_wait=2.0, budget=self.budget)
        self.telephony = Telephony(self.client)
        self.directory = Directory(
            self.telephony,
            s.plan.employees,
            auto_map=s.employees.auto_map,
            refresh=s.bitrix24.directory_refresh,
            availability_ttl=s.bitrix24.availability_ttl,
            time_tracking=s.employees.time_tracking,
            wanted=unmapped(s.plan) if s.employees.auto_map else None,
            require_online=s.employees.require_online,
            online_minutes=s.employees.online_minutes,
        )
        self.delivery = Delivery(
            self.store,
            self.delivery_client,
            Telephony(self.delivery_client),
            s.bitrix24,
            recording_loader=recording_loader(s.asterisk),
            observer=DeliveryWatch(self.metrics, on_retry=lambda: self.portal.trouble()),
        )
        self.roles = ClusterRoles(s)
        pbx_queue = StampedQueue()
        self.ari = AriLink(s.asterisk, pbx_queue)
        self.ami = AmiLink(s.asterisk, pbx_queue)
        self.desk = ClickToCallDesk(s, self.ari, self.directory)
        if isinstance(self.store, PbxJournal):
            self.ari.vet = self._distinct_system_name
        if isinstance(self.store, PbxJournal):  # other bridges get the portal's click-to-calls too: one acts
            pbx_lease = self.roles.pbx
            self.desk.claims = ClickToCallClaims(
                self.store, self.ari, EndpointTemplate(s.asterisk.device).format, lambda: set(self.settings.plan.lines),
                holds_pbx=lambda: pbx_lease is None or pbx_lease.held,
            )  # fmt: skip
        self.workload = Workload(self.client, self.current_plan, ttl=s.bitrix24.workload_ttl)
        self.dispatcher = Dispatcher(
            plan=self.current_plan,
            pbx=self.ari,
            outbox=self.outbox,
            outbox_changed=self.delivery.notify,
            outbox_soon=self.delivery.notify_soon,
            lookup=CrmLookup(self.telephony).lookup_caller,
            metrics=self.metrics,
            on_stasis=self.desk.on_stasis,
            queue=pbx_queue,
            tallies=Tallies(await self._tally_store()),
            workload=self.workload,
        )
        self.desk.attach(self.dispatcher)
        self.dispatcher.hung_up_at = self.ami.hung_up_at
        # built before the links run: the first resync's callers wait for its first look at the PBX
        self.recovery = Recovery(
            self.recovery_journal,
            self.dispatcher.restart,
            app=s.asterisk.app,
            agents=EndpointTemplate(s.asterisk.agent_endpoint),
            device=EndpointTemplate(s.asterisk.device),
            user_of=self._user_of,
            notify=self.delivery.notify,
            owner_of=lambda line: self.current_plan().line_owner(line),
            chat_of=lambda line: self.current_plan().line_chat(line),
            resume=self.desk.resume,
            poll=self.timing.recovery_poll,
            written=self._written,
        )
        self.fallback = FallbackMirror(
            self.store,
            self.ami,
            self.current_plan,
            EndpointTemplate(s.asterisk.agent_endpoint),
            self.delivery.notify,
            poll=self.timing.fallback_poll,
        )
        self.ami.on_connected.append(self.fallback.connected)
        self.gate = EventGate(self._application_token())
        self.portal = PortalUpkeep(
            s,
            self.client,
            self.delivery_client,
            self.directory,
            self.gate,
            on_event=self.desk.on_parsed,
            on_availability=self.dispatcher.crm_availability,
            backlog=self.store,
            backlog_due=self.delivery.notify,
        )
        self.installer = (
            Installer(s.bitrix24, self.client, self.gate, on_installed=self._after_install)
            if s.bitrix24.oauth is not None
            else None
        )
        for warning in config_warnings(s):
            log.warning("daemon.config_warning", warning=warning)
        self._metrics_samples()
        await self._start_http()
        await self._refresh_directory()
        await self._learn_statistics_access()
        if self.behind is not None:
            self._spawn(self.behind.run(), "journal-writer")
        if isinstance(self.reads, CachedReads):
            self._spawn(self.reads.run(), "journal-figures")
        self._spawn(self.dispatcher.run(), "dispatcher")
        # a bridge alone runs delivery at once; a delivery leader (shared journal) takes over from the one before it
        self._spawn(self.roles.deliver(self.delivery.run if self.roles.delivery is None else self.delivery.lead),
                    "delivery")  # fmt: skip
        self._spawn(self.roles.hold_pbx(self._pbx_side), "pbx")
        self._spawn(self.directory.run(), "directory")
        self._spawn(self.workload.refresh(), "workload")  # the first calls find counts already
        self._spawn(self.portal.follow_availability(), "availability")
        self._spawn(self.portal.set_up(), "portal-setup")
        self._spawn(self.portal.watch_for_return(), "portal-watch")
        if s.bitrix24.events == "pull":
            self._spawn(self.portal.poll_events(), "event-poll")
        self._spawn(self.notifier.watchdog(self.alive), "watchdog")
        tune_after_startup()
        self.notifier.ready()
        self.started.set()
        log.info(
            "daemon.started", http=f"{s.http.host}:{self.http_port}", lines=sorted(s.plan.lines), loop=event_loop.name()
        )

    async def _open_journal(self) -> None:
        """SQLite: the file, held by this process alone (a second daemon or a replay on it would send the same calls
        twice). PostgreSQL: shared with the other bridges (the delivery leader is the one sender), no file lock; its
        figures for the status page and health are read by a task (:class:`CachedReads`)."""
        j = self.settings.journal
        self.journal: Journal | None = None
        self.behind: WriteBehind | None = None
        if j.backend == "sqlite":
            self._held.enter_context(exclusive(j.path, holder="b24-bridge run"))
            self.journal = Journal.open(j.path)
            self.store: AsyncJournal = self.journal.aio
            self.reads: JournalReads = self.journal
            self.recovery_journal: Journalish = self.store
            self.outbox: Outbox = self.journal
            return
        password = j.password.reveal() if j.password is not None else None
        shared = await PbxJournal.open_postgres(j.url, password=password, bridge=j.bridge_id)
        assert isinstance(shared, PbxJournal)
        shared.pbx = self.settings.cluster.pbx_id
        self.store = shared
        self.recovery_journal = OwnCalls(shared)
        cached = CachedReads(self.store, self._recent_legs)
        await cached.refresh()
        self.reads = cached
        # a call's step cannot wait for a commit: its appends go through an ordered queue (see WriteBehind)
        self.behind = self.outbox = WriteBehind(self.store, lambda: self.delivery.notify())
        log.info("daemon.journal_shared", journal=shared.where, bridge_id=j.bridge_id, pbx_id=shared.pbx)

    def _shared_budget(self) -> SharedBudget | None:
        """With a PostgreSQL journal every request to the portal, of every bridge, takes its slot from one bucket."""
        j, b24 = self.settings.journal, self.settings.bitrix24
        if j.backend == "sqlite":
            return None
        password = j.password.reveal() if j.password is not None else None
        return SharedBudget(j.url, password=password, portal=portal_of(self.settings), bridge_id=j.bridge_id,
                            rate=b24.rate, burst=b24.burst)  # fmt: skip

    def _recent_legs(self) -> list[str]:
        """The legs of the finished calls the status page shows."""
        dispatcher: Dispatcher | None = getattr(self, "dispatcher", None)
        return [leg for s in list(dispatcher.ended)[-100:] for leg in s.crm_legs] if dispatcher is not None else []

    async def _tally_store(self) -> JournalTallies | SharedTallies:
        if self.journal is not None:
            return JournalTallies(self.journal)
        assert self.behind is not None
        shared = SharedTallies(self.store, self.behind, self.settings.cluster.pbx_id)
        await shared.load()
        return shared

    def _written(self, leg: str) -> bool:
        """This process journaled ``leg`` (recovery: a call that began after its first look is not the journal's)."""
        if self.behind is not None:
            return self.behind.wrote(leg)
        assert self.journal is not None
        return self.journal.has_call(leg)  # at every call's start: the leg's index alone, no row read

    async def _pbx_side(self) -> None:
        """ARI, AMI, recovery (as after a restart: calls in progress are adopted) and the fallback mirror, while this
        bridge holds its PBX. Another client taking the ARI application, or the PBX's lease lost, makes the bridge
        step down (see :meth:`_step_down`)."""
        # read now, not at the start: a standby adopts what the bridge before it journaled until it died
        await self.recovery.load()
        self._spawn(self.ari.run(), "ari")
        self._spawn(self.ami.run(), "ami")
        self._spawn(self.fallback.run(), "fallback")
        self._spawn(
            self.recovery.run(
                lambda: self.ari.connected, lambda: pbx_view(self.ari, self.ami), self.ari, self.dispatcher.knows
            ),
            "recovery",
        )
        try:
            await self.ari.replaced.wait()
        except asyncio.CancelledError:
            if not self.stop_requested.is_set():
                self._step_down("this bridge lost the PBX's leadership (its database connection failed)")
            raise
        self._step_down("another client took the ARI application")

    async def _distinct_system_name(self, info: dict[str, Any]) -> bool:
        """On a shared journal each PBX needs its own asterisk.conf ``systemname`` (its channel ids carry it): False
        (and the bridge stops, exit 78) when a live bridge of another PBX reports the same one, or either has none."""
        assert isinstance(self.store, PbxJournal)
        config = info.get("config")
        name = str(config.get("name") or "") if isinstance(config, dict) else ""
        try:
            clashes = await self.store.system_name_clashes(name)
        except (*DB_ERRORS, JournalError) as exc:  # cannot tell now: the next connect asks again
            log.warning("daemon.systemname_unchecked", systemname=name or "none", error=type(exc).__name__)
            return True
        if not clashes:
            return True
        others = ", ".join(f"bridge {b} (pbx {p}, systemname {n or 'none'})" for b, p, n in clashes)
        log.error("daemon.systemname_clash", systemname=name or "none", pbx_id=self.store.pbx, others=others,
                  note="two PBXs on one journal would give colliding channel ids: set a distinct systemname in each "
                  "Asterisk's asterisk.conf [options] and restart it; this bridge stops (exit 78)")  # fmt: skip
        self.exit_code = EXIT_CONFIG
        self.request_stop()
        return False

    def _step_down(self, reason: str) -> None:
        """Stop routing at once and exit 1: the service manager starts the bridge again, as a standby; the bridge
        that holds the PBX now adopts the calls from the shared journal. Nothing here acts on the PBX any more."""
        if self.pbx_lost:
            return
        self.pbx_lost, self.exit_code = True, 1
        log.error("daemon.pbx_lost", reason=reason, active_calls=self.dispatcher.active,
                  note="stopping at once (exit 1); restarted, the bridge waits as a standby")  # fmt: skip
        self.dispatcher.accepting = False
        for task in self._tasks:
            if task.get_name() in PBX_SIDE:
                task.cancel()
        self.request_stop()

    def _application_token(self) -> str:
        """The configured one, else (OAuth) the one the last install left in the token file."""
        b24 = self.settings.bitrix24
        if b24.application_token or b24.oauth is None:
            return b24.application_token.reveal()
        stored = stored_application_token(b24.oauth.token_file)
        logs.register_secrets([stored])
        return stored

    async def _after_install(self) -> None:
        """A verified install: bind the events again (a reinstall dropped them) and read the directory."""
        self._spawn(self.portal.set_up(), "portal-setup")
        self._spawn(self._refresh_directory(), "directory-refresh")

    def _user_of(self, ext: str) -> int:
        employee = self.current_plan().employees.get(ext)
        return employee.user_id if employee is not None else 0

    def current_plan(self) -> Plan:
        """The configured plan with the directory's current employees (configured entries win): one plan until a
        refresh replaces the map, shared by the calls started meanwhile (a copy a call was about 25 KiB of RAM a
        call with 2,000 employees)."""
        base, employees = self.settings.plan, self.directory.employee_map()
        built_from = self._plan_from
        if built_from is None or built_from[0] is not base or built_from[1] is not employees:
            self._plan = replace(base, employees=dict(employees))
            self._plan_from = (base, employees)
        return self._plan

    async def _start_http(self) -> None:
        installer, http = self.installer, self.settings.http
        events = event_routes(
            metrics=self.metrics,
            gate=self.gate,
            on_event=self.desk.on_event,
            on_install=installer.accept if installer is not None else None,
        )
        own_listener = http.events_host is not None
        app = build_app(
            probes=Probes(live=self.liveness, ready=self.readiness, health=self.health),
            metrics=self.metrics,
            events=[] if own_listener else events,
        )
        app.add_routes(status_routes(http, self.status_sources().data))
        self.http_port = await self._listen(app, http.host, http.port)
        if http.events_host is not None:
            self.events_port = await self._listen(events_app(events), http.events_host, http.events_port)

    async def _listen(self, app: web.Application, host: str, port: int) -> int:
        """Serve ``app`` on ``host:port``; the port it got (``port`` 0: any free one)."""
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else port

    def status_sources(self) -> StatusSources:
        observer = self.delivery.observer
        assert isinstance(observer, DeliveryWatch)
        return StatusSources(
            plan=self.current_plan, dispatcher=self.dispatcher, journal=self.reads,
            links={"ari": self.ari, "ami": self.ami}, delivery=observer,
            stats=[self.delivery_client.stats, self.client.stats], bucket_size=float(self.settings.bitrix24.burst),
            roles=self.roles.links,
        )  # fmt: skip

    async def _refresh_directory(self) -> None:
        try:
            async with asyncio.timeout(10.0):
                await self.directory.refresh()
        except (TimeoutError, CrmError) as exc:
            log.warning("directory.stale", error=str(exc), note="using the configured employees only")

    async def _learn_statistics_access(self) -> None:
        """Log once what the statistics show the app user (``crm.statistics_access``); if Bitrix24 does not answer
        now, delivery learns it before its first check."""
        try:
            async with asyncio.timeout(10.0):
                await self.delivery.access.learn(self.delivery_client)
        except (TimeoutError, CrmError) as exc:
            log.warning("crm.statistics_access", level="unknown", error=str(exc), note="learned before the first check")

    # -- health and metrics -----------------------------------------------------------------------------

    def health(self) -> dict[str, Health]:
        """Each component's state for ``/healthz`` (any not ok: 503 with the reasons)."""
        try:
            depth, pending_age = self.reads.depth(), self.reads.oldest_pending_age(time.time())
        except (sqlite3.Error, JournalError) as exc:
            journal, depth, pending_age = Health(False, f"unreadable: {exc}"), 0, 0.0
        else:
            journal = Health(True, f"{depth} pending operation(s)")
        limit = max(60.0, self.settings.bitrix24.register_timeout * 12)
        waiting = f"oldest pending operation {pending_age:.0f} s old" if pending_age else "nothing pending"
        links = {name: Health(link.connected, "connected" if link.connected else "not connected")
                 for name, link in (("ari", self.ari), ("ami", self.ami))}  # fmt: skip
        pbx = self.roles.pbx
        if pbx is not None and not pbx.held and not self.pbx_lost:
            links = {
                name: Health(True, f"standby: the PBX is held by {pbx.holder or 'another bridge'}") for name in links
            }
        roles = {name: Health(row.up, row.detail if row.up else f"database unreachable: {row.last_error}")
                 for name, row in self.roles.links().items()}  # fmt: skip
        return {**links, "bitrix24": Health(pending_age < limit, waiting), "journal": journal, **roles}

    def liveness(self) -> dict[str, Health]:
        """For ``/livez``: the process works. PBX and Bitrix24 outages never fail it (see :meth:`alive`)."""
        crashed = sorted(t.get_name() for t in self._tasks if t.get_name() in VITAL_TASKS and t.done())
        waited = self.dispatcher.queue.oldest_wait() if hasattr(self, "dispatcher") else 0.0
        return {
            "tasks": Health(not crashed, f"stopped: {', '.join(crashed)}" if crashed else "running"),
            "events": Health(
                waited < STUCK_QUEUE_SECONDS,
                f"oldest queued input waited {waited:.1f} s" if waited else "queue empty",
            ),
        }

    def readiness(self) -> dict[str, Health]:
        """For ``/readyz``: the links are up, calls can be taken (a Bitrix24 backlog does not matter: the journal
        holds it)."""
        parts = self.health()
        return {name: parts[name] for name in ("ari", "ami", "journal")} | {
            "started": Health(self.started.is_set() and not self.stop_requested.is_set(),
                              "running" if not self.stop_requested.is_set() else "stopping")
        }  # fmt: skip

    def alive(self) -> bool:
        """For the systemd watchdog: the vital tasks still run. A PBX or Bitrix24 outage is no reason to be
        restarted (the links reconnect, the journal waits); a crashed dispatcher or delivery is."""
        return all(not task.done() for task in self._tasks if task.get_name() in VITAL_TASKS)

    def _metrics_samples(self) -> None:
        m = self.metrics
        depth = lambda: _figure(self.reads.depth)  # noqa: E731
        m.sample("b24bridge_journal_depth", "Pending Bitrix24 operations in the journal", depth)
        m.sample(
            "b24bridge_journal_oldest_pending_seconds",
            "Age of the oldest pending operation",
            lambda: _figure(lambda: self.reads.oldest_pending_age(time.time())),
        )
        m.sample("b24bridge_crm_bucket_level", "Client-side leaky bucket fill", self.delivery_client.bucket_level)
        budget = self.budget
        if budget is not None:
            m.sample("b24bridge_crm_budget_shared", "1: requests take their slots from the bucket shared in PostgreSQL;"
                     " 0: paced locally at this bridge's share", lambda: float(budget.shared))  # fmt: skip
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
        return self.exit_code

    async def _stop_tasks(self) -> None:
        """Cancel the daemon's tasks and wait for them, a bounded time. On Python 3.11 a cancellation that meets a
        result in ``asyncio.wait_for`` is lost (the task goes on, e.g. recovery's next look), so a task still running
        after a round is cancelled again; one that outlives every round is logged and left behind."""
        pending = set(self._tasks)
        for _round in range(STOP_ROUNDS):
            if not pending:
                break
            for task in reversed(self._tasks):
                if task in pending:
                    task.cancel()
            _done, pending = await asyncio.wait(pending, timeout=STOP_ROUND_SECONDS)
        for task in self._tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: _report_crash logged it already
        if pending:
            log.error("daemon.tasks_stuck", tasks=sorted(t.get_name() for t in pending))

    async def shutdown(self) -> None:
        log.info("daemon.stopping", active_calls=getattr(self, "dispatcher", None) and self.dispatcher.active)
        self.notifier.stopping()
        dispatcher: Dispatcher | None = getattr(self, "dispatcher", None)
        if dispatcher is not None:
            dispatcher.accepting = False
            deadline = time.monotonic() + (0.0 if self.pbx_lost else self.timing.grace)
            while dispatcher.active and time.monotonic() < deadline:  # noqa: ASYNC110 - calls end one by one
                await asyncio.sleep(0.05)
            if dispatcher.active:
                log.warning("daemon.calls_left", calls=dispatcher.active, note="their operations stay in the journal")
            await dispatcher.close()
        behind: WriteBehind | None = getattr(self, "behind", None)
        if behind is not None and not await behind.drain(self.timing.flush):
            log.error("daemon.unwritten", queued=behind.queued, note="the journal's database took none of them in time")
        delivery: Delivery | None = getattr(self, "delivery", None)
        if delivery is not None and self.roles.delivers:  # only the delivery leader drains the shared outbox
            flushed = await delivery.flush(self.timing.flush)
            if not flushed:
                log.warning("daemon.unflushed", pending=_figure(self.reads.depth), note="sent after the next start")
        await self._stop_tasks()
        workload: Workload | None = getattr(self, "workload", None)
        if workload is not None:
            await workload.close()
        for link in (getattr(self, "ari", None), getattr(self, "ami", None)):
            if link is not None:
                with contextlib.suppress(Exception):
                    await link.stop()
        for client in (getattr(self, "client", None), getattr(self, "delivery_client", None)):
            if client is not None:
                await client.close()
        budget: SharedBudget | None = getattr(self, "budget", None)
        if budget is not None:
            await budget.close()
        for runner in self._runners:
            await runner.cleanup()
        journal: Journal | None = getattr(self, "journal", None)
        if journal is not None:
            journal.close()
        elif getattr(self, "store", None) is not None:
            await self.store.close()
        self._held.close()
        log.info("daemon.stopped")

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        task.add_done_callback(_report_crash)
        self._tasks.append(task)


def _figure(read: Callable[[], float]) -> float:
    """A journal figure for the metrics and logs; NaN when the journal cannot be read (the health says why)."""
    try:
        return read()
    except (sqlite3.Error, JournalError):
        return float("nan")


def _stat(daemon: Daemon, name: str) -> float:
    return float(getattr(daemon.delivery_client.stats, name, 0)) + float(getattr(daemon.client.stats, name, 0))


def _report_crash(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("daemon.task_crashed", task=task.get_name(), error=repr(exc))


def secret_values(settings: Settings) -> list[str]:
    s = settings
    values = [s.asterisk.ari_password.reveal(), s.asterisk.ami_secret.reveal(), s.bitrix24.application_token.reveal(),
              s.http.status_token.reveal()]  # fmt: skip
    if s.bitrix24.webhook_url is not None:
        values.append(s.bitrix24.webhook_url.reveal())
    if s.bitrix24.oauth is not None:
        values.append(s.bitrix24.oauth.client_secret.reveal())
    if s.journal.password is not None:
        values.append(s.journal.password.reveal())
    return values


def run_main(args: argparse.Namespace) -> int:
    settings = load_config(Path(args.config))
    problems = file_problems(settings)
    if problems:
        raise ConfigError(settings.path, problems)
    try:
        return event_loop.run(Daemon(settings).serve())
    except (JournalBusy, JournalError) as exc:
        log.error("daemon.refused", reason=str(exc))
        return 1


def check_main(args: argparse.Namespace) -> int:
    from bridge.check import check

    settings = load_config(Path(args.config))
    logs.register_secrets(secret_values(settings))
    return asyncio.run(check(settings))
