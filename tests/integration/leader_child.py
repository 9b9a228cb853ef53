"""A bridge's delivery side in its own process (for the kill -9 test): it competes for the portal's delivery
leadership on a shared PostgreSQL journal and, while it leads, drains the outbox.

``python -m tests.integration.leader_child PG_URL BRIDGE_ID WEBHOOK_URL RATE BURST`` (the journal's password in
``B24_TEST_PG_PASSWORD``). Prints ``leading`` on stdout when it takes the role.
"""

from __future__ import annotations

import asyncio
import os
import sys

import structlog

from bridge.config import Bitrix24Settings
from bridge.config.reader import Secret
from bridge.crm.client import Bitrix24Client
from bridge.crm.telephony import Telephony
from bridge.delivery import Delivery
from bridge.journal import AsyncJournal
from bridge.leadership import Lease, LeaseTiming, Role


async def main(url: str, bridge: str, webhook: str, rate: float, burst: int) -> None:
    password = os.environ["B24_TEST_PG_PASSWORD"]
    settings = Bitrix24Settings(webhook_url=Secret(webhook), rate=rate, burst=burst, register_timeout=30.0,
                                request_timeout=5.0)  # fmt: skip
    journal = await AsyncJournal.open_postgres(url, password=password, bridge=bridge)
    async with Bitrix24Client(settings, retry_attempts=1) as client:
        delivery = Delivery(journal, client, Telephony(client), settings, retry_base=0.05, retry_cap=0.5)

        async def lead() -> None:
            print("leading", flush=True)
            await delivery.lead()

        lease = Lease(url, Role.DELIVERY, client.portal, bridge, password=password,
                      timing=LeaseTiming(retry=0.2, probe=0.5))  # fmt: skip
        await lease.run(lead)


if __name__ == "__main__":
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])))
