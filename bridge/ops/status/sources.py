"""The shell side of the status page: reads the daemon's parts into :class:`bridge.ops.status.model.Sources`.

Also keeps what the parts do not keep themselves: the delivery link's ups and downs (:class:`DeliveryWatch`, the
daemon's delivery observer), the request rates over the last minute, and the finished calls' journal rows (read
once a call is settled: what Bitrix24 took does not change after that).
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from bridge.crm.pacing import CrmStats
from bridge.dispatch import CallSummary, Dispatcher
from bridge.domain.scheme import Plan
from bridge.journal.marks import JournalError
from bridge.journal.rows import CallRow, OpRow
from bridge.logs import redact_text
from bridge.ops.metrics import DeliveryMetrics, Metrics
from bridge.ops.status.model import DeliveryFigures, Finished, HeldLeg, LinkState, ParkedOp, Sources, status_data

RATE_WINDOW = 60.0
SETTLED = frozenset({"done", "failed"})
FRESH_SECONDS = 0.2
"""Pages open at the same moment share one look at the daemon (each live page asks several times a second)."""
PARKED_SHOWN = 50
"""The most recent parked calls shown (``b24-bridge journal --status failed`` lists them all)."""


class JournalReads(Protocol):
    """What the page reads of the journal: the SQLite journal itself, or a PostgreSQL journal's cached figures
    (:class:`bridge.journal.cached.CachedReads`)."""

    @property
    def path(self) -> object: ...
    def depth(self) -> int: ...
    def oldest_pending_age(self, now: float) -> float: ...
    def calls(self, status: str | None = None, *, crm_leg: str | None = None) -> list[CallRow]: ...
    def operations(self, crm_leg: str) -> list[OpRow]: ...


class Link(Protocol):
    connected: bool
    changed_at: datetime
    last_error: str
    error_at: datetime | None


class DeliveryWatch(DeliveryMetrics):
    """The daemon's delivery metrics, plus the link's state for the status page: down after a batch request
    failed whole, up again after one went through."""

    def __init__(self, metrics: Metrics, on_retry: Callable[[], None] | None = None) -> None:
        super().__init__(metrics, on_retry)
        self.state = LinkState(up=True, since=datetime.now(UTC), detail="")

    def _set(self, up: bool, error: str = "") -> None:
        if up is self.state.up and not error:
            return  # nothing changes (the usual batch that went through while the link is up)
        now = datetime.now(UTC)
        since = self.state.since if up is self.state.up else now
        last, at = (redact_text(error)[:300], now) if error else (self.state.last_error, self.state.error_at)
        self.state = LinkState(up=up, since=since, last_error=last, error_at=at)

    def batch_sent(self, commands: int, seconds: float, ok: bool) -> None:
        super().batch_sent(commands, seconds, ok)
        self._set(ok, "" if ok else f"a batch of {commands} command(s) failed (network or Bitrix24 error)")

    def retried(self, kind: str, method: str, code: str) -> None:
        super().retried(kind, method, code)
        self._set(self.state.up, f"{method}: {code or 'network'} (retried)")

    def failed(self, kind: str, method: str, reason: str) -> None:
        super().failed(kind, method, reason)
        self._set(self.state.up, f"{method} parked: {reason}")


@dataclass
class Rates:
    """Requests and commands sent in the last minute, from the clients' counters sampled at each look."""

    samples: deque[tuple[float, float, float]]

    @classmethod
    def new(cls) -> Rates:
        return cls(deque())

    def per_minute(self, requests: float, commands: float, now: float) -> tuple[float, float]:
        self.samples.append((now, requests, commands))
        while len(self.samples) > 1 and self.samples[1][0] <= now - RATE_WINDOW:
            self.samples.popleft()
        _t0, r0, c0 = self.samples[0]
        return requests - r0, commands - c0


class StatusSources:
    """Everything the page reads, wired once by the daemon; :meth:`data` is the page's data now."""

    def __init__(
        self,
        *,
        plan: Callable[[], Plan],
        dispatcher: Dispatcher,
        journal: JournalReads,
        links: dict[str, Link],
        delivery: DeliveryWatch,
        stats: list[CrmStats],
        bucket_size: float,
        started_at: datetime | None = None,
        roles: Callable[[], dict[str, LinkState]] = dict,
    ) -> None:
        self.plan = plan
        self.dispatcher = dispatcher
        self.journal = journal
        self.links = links
        self.delivery = delivery
        self.stats = stats
        self.bucket_size = bucket_size
        self.roles = roles
        """The cluster roles this bridge competes for, as rows of the links table."""
        self.rates = Rates.new()
        self.started_at = started_at or datetime.now(UTC)
        self._journal_error = ""
        self._journal_error_at: datetime | None = None
        self._held: dict[str, CallRow] = {}
        """Settled legs' journal rows, by crm_leg."""
        self._recorded: set[str] = set()
        self._last: tuple[float, dict[str, Any]] | None = None

    def data(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._last is None or now - self._last[0] >= FRESH_SECONDS:
            self._last = (now, status_data(self.sources()))
        return self._last[1]

    def sources(self) -> Sources:
        now = datetime.now(UTC)
        d = self.dispatcher
        figures, finished = self._from_journal(list(d.ended))
        links = {
            name: LinkState(link.connected, link.changed_at, link.last_error, link.error_at)
            for name, link in self.links.items()
        }
        links["bitrix24"] = self.delivery.state
        links["journal"] = LinkState(
            not self._journal_error, self._journal_error_at if self._journal_error else self.started_at,
            self._journal_error, self._journal_error_at, str(self.journal.path),
        )  # fmt: skip
        links.update(self.roles())
        return Sources(
            now=now, plan=self.plan(), links=links, calls=list(d.calls.values()), observed=list(d.observed.values()),
            caller_names=dict(d.caller_names), devices=dict(d.availability.devices), crm_day=dict(d.availability.crm),
            answered_today=d.answered_today(), delivery=figures, finished=finished,
        )  # fmt: skip

    def _from_journal(self, ended: list[CallSummary]) -> tuple[DeliveryFigures, list[Finished]]:
        requests = sum(s.requests for s in self.stats)
        commands = sum(s.commands for s in self.stats)
        per_min = self.rates.per_minute(requests, commands, time.monotonic())
        level = sum(s.bucket_level() for s in self.stats[:1])
        try:
            depth, age = self.journal.depth(), self.journal.oldest_pending_age(time.time())
            parked = self._parked()
            finished = [self._finished(summary) for summary in ended[-100:]]
        except (sqlite3.Error, JournalError) as exc:
            self._journal_error, self._journal_error_at = f"unreadable: {exc}", datetime.now(UTC)
            figures = DeliveryFigures(0, 0.0, level, self.bucket_size, *per_min)
            return figures, [_finished(s, ()) for s in ended[-100:]]
        self._journal_error = ""
        return DeliveryFigures(depth, age, level, self.bucket_size, *per_min, parked=tuple(parked)), finished

    def _parked(self) -> list[ParkedOp]:
        parked = []
        for call in self.journal.calls(status="failed")[-PARKED_SHOWN:]:
            for op in self.journal.operations(call.crm_leg):
                if op.state == "failed" and op.kind not in ("show", "hide"):
                    at = datetime.fromtimestamp(op.done_at, UTC) if op.done_at else None
                    parked.append(ParkedOp(call.crm_leg, op.kind, op.last_error or op.note, at))
        return parked

    def _finished(self, summary: CallSummary) -> Finished:
        legs = []
        for leg in summary.crm_legs:
            row = self._held.get(leg)
            if row is None:
                rows = self.journal.calls(crm_leg=leg)
                if not rows:
                    continue
                row = rows[0]
                recorded = any(op.kind == "attachRecord" and op.state == "done" for op in self.journal.operations(leg))
                if row.state in SETTLED:
                    self._held[leg] = row
                    if recorded:
                        self._recorded.add(leg)
            else:
                recorded = leg in self._recorded
            legs.append(
                HeldLeg(leg, row.call_id or "", row.user_id or 0, row.duration or 0, row.status_code or "", recorded,
                        "pending" if row.state in ("open", "ended") else row.state)
            )  # fmt: skip
        self._forget(summary)
        return _finished(summary, tuple(legs))

    def _forget(self, _summary: CallSummary) -> None:
        """Keep the settled rows of the calls still in the history only."""
        if len(self._held) > 400:
            keep = {leg for s in list(self.dispatcher.ended)[-100:] for leg in s.crm_legs}
            self._held = {k: v for k, v in self._held.items() if k in keep}
            self._recorded &= keep


def _finished(s: CallSummary, legs: tuple[HeldLeg, ...]) -> Finished:
    return Finished(
        s.key, s.kind, s.line, s.number, s.caller_name, s.handled_by, s.status, s.duration, s.ended_at, legs
    )
