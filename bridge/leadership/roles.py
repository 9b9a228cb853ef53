"""What this bridge holds among the bridges of one PostgreSQL journal, as the daemon uses it.

* delivery: with a PostgreSQL journal, one bridge per portal drains the shared outbox (one leaky bucket for the
  portal's budget); the others only journal. On SQLite there is no one to share with: this bridge delivers.
* PBX: with ``[cluster] standby = true``, one bridge per ``pbx_id`` runs ARI, AMI and recovery; the others wait.
  Without it this bridge simply runs its PBX.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from bridge.config import Settings
from bridge.config.cluster import is_postgres
from bridge.leadership.lease import Lease, LeaseTiming, Role
from bridge.ops.status.model import LinkState


def portal_of(settings: Settings) -> str:
    """The portal whose budget the delivery leader guards: its host name."""
    b24 = settings.bitrix24
    if b24.oauth is not None:
        return urlsplit(b24.oauth.portal if "//" in b24.oauth.portal else f"//{b24.oauth.portal}").hostname or ""
    if b24.webhook_url is not None:
        return urlsplit(b24.webhook_url.reveal()).hostname or ""
    return ""


class ClusterRoles:
    def __init__(self, settings: Settings, *, timing: LeaseTiming | None = None) -> None:
        cluster, url = settings.cluster, settings.journal.url
        password = settings.journal.password.reveal() if settings.journal.password is not None else ""
        timing = timing or LeaseTiming()
        self.bridge_id = settings.journal.bridge_id
        shared = is_postgres(url)
        self.delivery: Lease | None = (
            Lease(url, Role.DELIVERY, portal_of(settings), self.bridge_id, password=password, timing=timing)
            if shared
            else None
        )
        self.pbx: Lease | None = (
            Lease(url, Role.PBX, cluster.pbx_id, self.bridge_id, password=password, timing=timing)
            if shared and cluster.standby
            else None
        )

    async def deliver(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` (delivery) whenever this bridge is the delivery leader (always, without a cluster)."""
        await (work() if self.delivery is None else self.delivery.run(work))

    async def hold_pbx(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` (the PBX side) whenever this bridge holds the PBX (at once, without a standby pair)."""
        await (work() if self.pbx is None else self.pbx.run(work))

    @property
    def delivers(self) -> bool:
        """This bridge drains the outbox now (it may flush at shutdown)."""
        return self.delivery is None or self.delivery.held

    def describe(self) -> dict[str, str]:
        """For logs: each role this bridge competes for and its state here (``leader``/``standby``)."""
        return {lease.role.value: lease.state for lease in (self.delivery, self.pbx) if lease is not None}

    def links(self) -> dict[str, LinkState]:
        """For /status: one row per role (up = the leadership connection is up; detail = who holds it)."""
        rows = {}
        for lease in (self.delivery, self.pbx):
            if lease is None:
                continue
            holder = lease.holder or "unknown"
            detail = f"{self.bridge_id}: leader" if lease.held else f"{self.bridge_id}: standby (held by {holder})"
            rows[f"{lease.role.value} role"] = LinkState(
                lease.reachable, lease.changed_at, lease.last_error, lease.error_at, detail
            )
        return rows
