"""What the daemon keeps up with the Bitrix24 portal besides delivering calls.

* set-up: the configured external lines exist; in OAuth mode the click-to-call events are bound to our handler;
* pull mode: click-to-call events taken from ``event.offline.get``;
* the agents' day (absences, time tracking) read once per TTL and handed to the dispatcher;
* the portal's return after trouble: once delivery has had to retry and operations wait out a back-off,
  Bitrix24 is probed every few seconds; when it answers, every waiting operation is made due at once, so calls
  made during an outage are mirrored seconds after it ends rather than at their next back-off (up to minutes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from bridge.config import Settings
from bridge.crm.client import Bitrix24Client
from bridge.crm.directory import Directory
from bridge.crm.errors import CrmError
from bridge.crm.inbound import EventGate, Parsed, nest_form
from bridge.crm.telephony import Telephony
from bridge.domain.scheme import Availability
from bridge.http_api import EVENTS_PATH

log = structlog.get_logger(__name__)

PROBE_INTERVAL = 1.0
"""Seconds between probes of a portal that operations are waiting for."""
PROBE_METHOD = "profile"
"""A cheap method every webhook and application may call."""


class Backlog(Protocol):
    def next_due(self, register_timeout: float) -> float | None: ...

    def retry_now(self) -> int: ...


class PortalUpkeep:
    def __init__(
        self,
        settings: Settings,
        client: Bitrix24Client,
        probe_client: Bitrix24Client,
        directory: Directory,
        gate: EventGate,
        *,
        on_event: Callable[[Parsed], Awaitable[None]],
        on_availability: Callable[[dict[str, Availability]], None],
        backlog: Backlog,
        backlog_due: Callable[[], None],
        handler_url: Callable[[], str],
        probe_interval: float = PROBE_INTERVAL,
    ) -> None:
        self.settings = settings
        self.client = client
        self.telephony = Telephony(client)
        self.probe_client = probe_client
        """Tries once: a probe that fails is the answer, not something to retry."""
        self.directory = directory
        self.gate = gate
        self.on_event = on_event
        self.on_availability = on_availability
        self.backlog = backlog
        self.backlog_due = backlog_due
        self.handler_url = handler_url
        self.probe_interval = probe_interval
        self._trouble_since: float | None = None

    async def set_up(self) -> None:
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
            handler = s.bitrix24.events_url or f"{self.handler_url()}{EVENTS_PATH}"
            for event in ("ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART"):
                try:
                    await self.telephony.event_bind(event, handler, offline=offline)
                except CrmError as exc:
                    if "already" not in exc.description.lower():
                        log.warning("crm.event_bind_failed", event_name=event, error=str(exc))

    async def poll_events(self) -> None:
        """Pull mode: take click-to-call events from ``event.offline.get`` (no public handler needed)."""
        while True:
            try:
                events = await self.telephony.event_offline_get(limit=50)
            except CrmError as exc:
                log.warning("crm.event_poll_failed", error=str(exc))
                events = []
            for item in events:
                payload = {"event": item.get("EVENT_NAME", ""), "data": item.get("EVENT_DATA") or {}}
                await self.on_event(self.gate.accept(nest_form(payload) | payload, check_token=False))
            await asyncio.sleep(self.settings.bitrix24.poll_interval)

    async def follow_availability(self) -> None:
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
                self.on_availability(found)
            await asyncio.sleep(self.settings.bitrix24.availability_ttl)

    def trouble(self) -> None:
        """Delivery had to retry something: from now on, watch for the portal's return."""
        if self._trouble_since is None:
            self._trouble_since = time.monotonic()

    async def watch_for_return(self) -> None:
        """While operations wait out a back-off after trouble, probe the portal; when it answers, retry them now."""
        while True:
            await asyncio.sleep(self.probe_interval)
            if self._trouble_since is None:
                continue
            due = self.backlog.next_due(self.settings.bitrix24.register_timeout)
            if due is None:
                self._trouble_since = None  # nothing is waiting any more
                continue
            if due - time.time() < self.probe_interval:
                continue  # delivery tries again soon by itself
            try:
                await self.probe_client.call(PROBE_METHOD)
            except CrmError as exc:
                log.debug("crm.probe_failed", error=str(exc))
                continue
            moved = self.backlog.retry_now()
            log.info("crm.back", operations=moved, after=round(time.monotonic() - self._trouble_since, 1))
            self._trouble_since = None
            self.backlog_due()
