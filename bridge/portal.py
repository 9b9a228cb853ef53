"""What the daemon keeps up with the Bitrix24 portal besides delivering calls.

* set-up: the configured external lines exist; in OAuth mode the click-to-call events are bound to our handler;
* pull mode: click-to-call events taken from ``event.offline.get``;
* the agents' day (absences, time tracking) read once per TTL and handed to the dispatcher;
* the portal's return after trouble: once delivery has had to retry and operations wait out a back-off,
  Bitrix24 is probed, 1 s after the trouble and then with a gap that doubles after each failed probe (jittered,
  at most ~30 s; each failure logs when the next probe is due); the first probe it answers makes every waiting
  operation due at once, so calls made during an outage are mirrored seconds after it ends rather than at their
  next back-off (up to minutes), and the next trouble starts again at 1 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential, wait_random

from bridge.config import Settings
from bridge.crm.client import Bitrix24Client
from bridge.crm.directory import Directory
from bridge.crm.errors import CrmError
from bridge.crm.inbound import EventGate, Parsed, nest_form
from bridge.crm.telephony import Telephony
from bridge.domain.scheme import Availability

log = structlog.get_logger(__name__)

PROBE_INTERVAL = 1.0
"""Seconds from trouble to the first probe, and the first gap after a failed one."""
PROBE_MAX_INTERVAL = 30.0
"""The gap between failed probes doubles up to this (plus up to ``PROBE_INTERVAL`` of jitter)."""
BOUND_EVENTS = ("ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART")
"""Bound to ``events_url`` (push) or to the offline queue (pull) at start and after each install (OAuth mode)."""
PROBE_METHOD = "profile"
"""A cheap method every webhook and application may call."""


class Backlog(Protocol):
    async def next_due(self, register_timeout: float) -> float | None: ...

    async def retry_now(self) -> int: ...


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
        probe_interval: float = PROBE_INTERVAL,
        probe_max_interval: float = PROBE_MAX_INTERVAL,
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
        self.probe_interval = probe_interval
        self.probe_max_interval = max(probe_interval, probe_max_interval)
        self._trouble_since: float | None = None
        self._troubled = asyncio.Event()

    async def set_up(self) -> None:
        """Create the configured lines that the portal does not have yet (another bridge of the portal, or this one
        before a restart, created the others: asking first costs one request, adding an existing line is an error);
        in OAuth mode bind the click-to-call events to our handler."""
        s = self.settings
        try:
            existing = {line.number for line in await self.telephony.external_line_get()}
        except CrmError as exc:
            log.warning("crm.line_failed", line="(all)", error=str(exc))
            existing = set()
        for number, line in s.plan.lines.items():
            if number in existing:
                continue
            try:
                await self.telephony.external_line_add(number, line.name, crm_auto_create=line.crm_create)
            except CrmError as exc:
                if "already exists" not in exc.description:
                    log.warning("crm.line_failed", line=number, error=str(exc))
        if s.bitrix24.oauth is not None and s.bitrix24.events != "off":
            offline = s.bitrix24.events == "pull"
            handler = "" if offline else s.bitrix24.events_url
            for event in BOUND_EVENTS:
                try:
                    await self.telephony.event_bind(event, handler, offline=offline)
                except CrmError as exc:
                    if "already" not in exc.description.lower():
                        log.warning("crm.event_bind_failed", event_name=event, error=str(exc))
                        continue
                log.info("crm.event_bound", event_name=event, handler=handler or "offline queue")

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
        self._troubled.set()

    def _calm(self) -> None:
        self._trouble_since = None
        self._troubled.clear()

    async def _waiting(self) -> float | None:
        """Seconds until delivery tries again by itself (negative: overdue), None when nothing waits."""
        due = await self.backlog.next_due(self.settings.bitrix24.register_timeout)
        return None if due is None else due - time.time()

    async def watch_for_return(self) -> None:
        """While operations wait out a back-off after trouble, probe the portal; when it answers, retry them now."""
        while True:
            await self._troubled.wait()
            await asyncio.sleep(self.probe_interval)
            waiting = await self._waiting()
            if waiting is None:
                self._calm()  # nothing is waiting any more
            elif waiting >= self.probe_interval:  # otherwise delivery tries again soon by itself
                await self._probe_until_back()

    async def _probe_until_back(self) -> None:
        """Probe until the portal answers (then make the backlog due) or nothing waits any more."""
        retrying = AsyncRetrying(
            wait=wait_exponential(multiplier=self.probe_interval, max=self.probe_max_interval)
            + wait_random(0, self.probe_interval),
            retry=retry_if_exception_type(CrmError),
            before_sleep=self._log_probe_failed,
        )
        async for attempt in retrying:
            with attempt:
                if await self._waiting() is None:
                    self._calm()
                    return
                await self.probe_client.call(PROBE_METHOD)
        moved = await self.backlog.retry_now()
        since = self._trouble_since
        log.info("crm.back", operations=moved, after=None if since is None else round(time.monotonic() - since, 1))
        self._calm()
        self.backlog_due()

    def _log_probe_failed(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.upcoming_sleep
        log.info(
            "crm.probe_failed", error=str(error), probes=state.attempt_number, next_probe_in=round(wait, 1),
            next_probe_at=datetime.fromtimestamp(time.time() + wait, UTC).isoformat(timespec="seconds"),
        )  # fmt: skip
