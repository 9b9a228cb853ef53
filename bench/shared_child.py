"""One bridge's delivery side for the two-bridge bench, in a process of its own (so that its client-side bucket is
its own, as on two machines): it competes for the portal's delivery leadership on the shared PostgreSQL journal and
drains the outbox while it leads.

``python -m bench.shared_child PG_URL BRIDGE_ID WEBHOOK_URL RATE BURST`` (the journal's password in
``B24_BENCH_PG_PASSWORD``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import structlog

from bridge.config import Bitrix24Settings
from bridge.config.reader import Secret
from bridge.crm.client import Bitrix24Client
from bridge.crm.telephony import Telephony
from bridge.delivery import Delivery
from bridge.journal import AsyncJournal
from bridge.leadership import Lease, Role


async def main(url: str, bridge: str, webhook: str, rate: float, burst: int) -> None:
    password = os.environ["B24_BENCH_PG_PASSWORD"]
    settings = Bitrix24Settings(webhook_url=Secret(webhook), rate=rate, burst=burst, register_timeout=5.0)
    journal = await AsyncJournal.open_postgres(url, password=password, bridge=bridge)
    async with Bitrix24Client(settings, retry_attempts=1) as client:
        delivery = Delivery(journal, client, Telephony(client), settings)
        await Lease(url, Role.DELIVERY, client.portal, bridge, password=password).run(delivery.lead)


if __name__ == "__main__":
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])))
