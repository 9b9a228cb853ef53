"""One bridge's side of the two-bridge bench, in a process of its own (as on two machines).

``python -m bench.shared_child deliver PG_URL BRIDGE_ID WEBHOOK_URL RATE BURST``: the bridge's delivery. It
competes for the portal's delivery leadership on the shared PostgreSQL journal and drains the outbox while it
leads, its requests taking their slots from the portal's budget shared in PostgreSQL, as the daemon's do.

``python -m bench.shared_child journal PG_URL BRIDGE_ID RATE``: the bridge's calls, journaled (register + finish
of an ended call in one commit each) at RATE calls a second until SIGTERM; then it prints how many.

The journal's password is in ``B24_BENCH_PG_PASSWORD``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import structlog

from bridge.config import Bitrix24Settings
from bridge.config.reader import Secret
from bridge.crm.client import Bitrix24Client
from bridge.crm.telephony import Telephony
from bridge.delivery import Delivery
from bridge.domain.commands import CallType, CrmFinish, CrmRegister
from bridge.journal import AsyncJournal
from bridge.leadership import Lease, Role
from bridge.leadership.budget import SharedBudget


async def deliver(url: str, bridge: str, webhook: str, rate: float, burst: int) -> None:
    password = os.environ["B24_BENCH_PG_PASSWORD"]
    settings = Bitrix24Settings(webhook_url=Secret(webhook), rate=rate, burst=burst, register_timeout=5.0)
    portal = urlsplit(webhook).hostname or ""
    budget = SharedBudget(url, password=password, portal=portal, bridge_id=bridge, rate=rate, burst=burst)
    journal = await AsyncJournal.open_postgres(url, password=password, bridge=bridge)
    try:
        async with Bitrix24Client(settings, retry_attempts=1, budget=budget) as client:
            delivery = Delivery(journal, client, Telephony(client), settings)
            await Lease(url, Role.DELIVERY, portal, bridge, password=password).run(delivery.lead)
    finally:
        await budget.close()


async def journal_steadily(journal: AsyncJournal, prefix: str, rate: float) -> int:
    """Ended calls at ``rate`` per second until cancelled; returns how many."""
    count, started = 0, time.monotonic()
    try:
        while True:
            leg = f"{prefix}-{count}"
            begun = datetime.now(UTC) - timedelta(seconds=30)
            async with journal.transaction():
                await journal.append(CrmRegister(leg, 11, f"79{count:09d}", CallType.INCOMING, "74951112255", begun,
                                                 False))  # fmt: skip
                await journal.append(CrmFinish(leg, 11, 20, "200"))
            count += 1
            await asyncio.sleep(max(0.0, started + count / rate - time.monotonic()))
    except asyncio.CancelledError:
        return count


async def journal_calls(url: str, bridge: str, rate: float) -> None:
    journal = await AsyncJournal.open_postgres(url, password=os.environ["B24_BENCH_PG_PASSWORD"], bridge=bridge)
    writing = asyncio.create_task(journal_steadily(journal, bridge, rate))
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, writing.cancel)
    count = await writing
    with contextlib.suppress(Exception):
        await journal.close()
    print(count, flush=True)


if __name__ == "__main__":
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "deliver":
        asyncio.run(deliver(args[0], args[1], args[2], float(args[3]), int(args[4])))
    else:
        asyncio.run(journal_calls(args[0], args[1], float(args[2])))
