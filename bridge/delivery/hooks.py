"""Hooks through which delivery reports what it does (the daemon's metrics subclass :class:`DeliveryObserver`).

Every method is a no-op here; they are called synchronously from the delivery task and must not block.
Queue depth and the age of the oldest pending operation are read from the journal (``depth()``,
``oldest_pending_age(now)``) at scrape time rather than pushed.
"""

from __future__ import annotations


class DeliveryObserver:
    def batch_sent(self, commands: int, seconds: float, ok: bool) -> None:
        """One ``batch`` request with ``commands`` commands took ``seconds``; ``ok`` is False when it failed whole."""

    def delivered(self, kind: str, method: str) -> None:
        """Bitrix24 confirmed an operation (or it was found already there)."""

    def retried(self, kind: str, method: str, code: str) -> None:
        """A transient failure; the operation will be tried again."""

    def failed(self, kind: str, method: str, reason: str) -> None:
        """A permanent failure; the operation is parked."""

    def skipped(self, kind: str, reason: str) -> None:
        """An operation settled without sending (a card for a call that is over, ...)."""

    def offline(self, crm_leg: str) -> None:
        """A call went offline (its register did not go through in time)."""

    def replayed(self, crm_leg: str, already_present: bool) -> None:
        """An offline call was mirrored (or found already mirrored)."""
