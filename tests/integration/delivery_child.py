"""Run :class:`Delivery` on a journal against a webhook until killed (for the kill -9 test).

``python -m tests.integration.delivery_child JOURNAL WEBHOOK_URL RATE BURST``
"""

from __future__ import annotations

import asyncio
import sys

import structlog

from bridge.config import Bitrix24Settings, Secret
from bridge.crm.client import Bitrix24Client
from bridge.crm.telephony import Telephony
from bridge.delivery import Delivery
from bridge.journal import Journal


async def main(journal_path: str, webhook: str, rate: float, burst: int) -> None:
    settings = Bitrix24Settings(
        webhook_url=Secret(webhook), rate=rate, burst=burst, register_timeout=30.0, request_timeout=5.0
    )
    journal = Journal.open(journal_path)
    async with Bitrix24Client(settings, retry_attempts=1) as client:
        delivery = Delivery(journal.aio, client, Telephony(client), settings, retry_base=0.05, retry_cap=0.5)
        await delivery.run()


if __name__ == "__main__":
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])))
