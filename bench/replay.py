"""Replay of journaled offline calls (Bitrix24 was away while they happened) by the daemon's own delivery.

The journal holds ``calls`` ended calls that went offline (``register`` + ``show`` + ``hide`` + ``finish`` each,
the cards settled as skipped), as an outage leaves them: every call's register was tried once; for every other
call the try timed out (it may have arrived: a statistics check is due before mirroring), for the rest the
connection was refused (it provably never left: no check). :class:`~bridge.delivery.Delivery` mirrors them
against the simulator: the checks, then ``register`` SHOW=0 + ``finish``. It runs in a child process
(``python -m bench.replay JOURNAL WEBHOOK RATE BURST SCALE MODE BUDGET``) so that the simulator's work is not
counted as the bridge's. The bound is what the bucket allows for the least work that can do it: two commands a
call (register, finish) plus one per doubtful call (its check), 50 to a request, the first ``burst`` requests at
once and then ``rate`` a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.naive import OneCommandPerRequest
from bench.portal_index import index_statistics
from bench.stack import ROOT, SCALED, Bucket
from bridge.config import Bitrix24Settings
from bridge.config.reader import Secret
from bridge.crm.client import MAX_BATCH, Bitrix24Client
from bridge.crm.pacing import make_limiter
from bridge.crm.telephony import Telephony
from bridge.delivery import Delivery, DeliveryObserver
from bridge.domain.commands import CallType, CrmFinish, CrmHide, CrmRegister, CrmShow
from bridge.journal import Journal
from bridge.sim.bitrix24 import Bitrix24Simulator

COMMANDS_PER_CALL = 2
"""``register`` SHOW=0 and ``finish``; a call whose register may have arrived needs a statistics check too."""
DOUBTFUL_EVERY = 2
"""Every second call's register timed out during the outage (the others were refused before they were sent)."""
CALLERS = 20
"""Distinct callers among the journaled calls (people call again); keeps the simulator's CRM search small."""
USERS = (11, 12, 13, 15, 16)
LINE = "74951112255"
MSK = timezone(timedelta(hours=3))
RETRY_BASE, RETRY_CAP = 2.0, 300.0
"""The daemon's delivery back-off (seconds on the real clock; divided by the bucket's scale here)."""
CHILD_GRACE = 60.0


def journal_offline_calls(journal: Journal, count: int, since: datetime) -> list[str]:
    """``count`` ended calls whose register never went through, as the daemon journals them during an outage
    (one commit): each register tried once, every :data:`DOUBTFUL_EVERY`-th with no answer, the rest refused."""
    legs = []
    with journal.transaction():
        for i in range(count):
            leg, user = f"offline-{i}", USERS[i % len(USERS)]
            answered = i % 4 != 0
            started = since + timedelta(seconds=7 * i)
            phone = f"7916{i % CALLERS:07d}"
            register = journal.append(CrmRegister(leg, user, phone, CallType.INCOMING, LINE, started, True))
            journal.mark_sent([register])
            journal.mark_failed(register, "outage", permanent=False, arrived=i % DOUBTFUL_EVERY == 0)
            journal.append(CrmShow(leg, (user,)))
            journal.append(CrmHide(leg, (user,)))
            journal.append(CrmFinish(leg, user, 30 + i % 90 if answered else 0, "200" if answered else "304"))
            journal.go_offline(leg)
            legs.append(leg)
    return legs


class ReplayCounter(DeliveryObserver):
    """Counts the calls the delivery reports mirrored; ``all_done`` once there are ``expected``."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.all_done = asyncio.Event()

    def replayed(self, crm_leg: str, already_present: bool) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.all_done.set()


@dataclass
class Replay:
    mode: str
    bucket: Bucket
    calls: int
    replayed: int
    seconds: float
    requests: int
    query_limit_exceeded: int

    @property
    def refused_in_phase(self) -> int:
        return self.query_limit_exceeded

    @property
    def finished(self) -> bool:
        return self.replayed >= self.calls

    @property
    def doubtful(self) -> int:
        """Calls whose register may have arrived (each needs a statistics check)."""
        return math.ceil(self.calls / DOUBTFUL_EVERY)

    @property
    def min_commands(self) -> int:
        return self.calls * COMMANDS_PER_CALL + self.doubtful

    @property
    def min_requests(self) -> int:
        return math.ceil(self.min_commands / MAX_BATCH)

    @property
    def bound_seconds(self) -> float:
        """The least time the bucket allows for the least work (on the bench's clock)."""
        return max(0, self.min_requests - self.bucket.burst) / self.bucket.rate

    @property
    def paced_seconds(self) -> float:
        """The least time the bucket allows for the requests it took (those it refused with a 503 add nothing)."""
        return max(0, self.requests - self.query_limit_exceeded - self.bucket.burst) / self.bucket.rate

    @property
    def projected_seconds(self) -> float:
        """The measured time, or for a replay cut short, its pace so far carried to the end."""
        if self.finished:
            return self.seconds
        return self.seconds * self.calls / self.replayed if self.replayed else float("inf")

    @property
    def ratio(self) -> float:
        return self.projected_seconds / self.bound_seconds if self.bound_seconds else float("nan")


async def deliver(journal_path: Path, settings: Bitrix24Settings, scale: float, mode: str, budget: float) -> None:
    """The child's side: mirror everything offline in the journal; print how many and how long it took."""
    with Journal.open(journal_path) as journal:
        expected = sum(1 for call in journal.calls() if call.state != "done")
        client: Bitrix24Client = (
            OneCommandPerRequest(settings, retry_attempts=1)
            if mode == "naive"
            else Bitrix24Client(settings, retry_attempts=1, limiter=make_limiter(settings.rate, settings.burst))
        )
        counter = ReplayCounter(expected)
        delivery = Delivery(
            journal.aio, client, Telephony(client), settings, observer=counter,
            retry_base=RETRY_BASE / scale, retry_cap=RETRY_CAP / scale,
        )  # fmt: skip
        started = time.monotonic()
        running = asyncio.create_task(delivery.run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(counter.all_done.wait(), budget)
        seconds = time.monotonic() - started
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await client.close()
    print(json.dumps({"replayed": counter.count, "seconds": seconds}), flush=True)


async def replay(workdir: Path, mode: str, calls: int, budget: float, bucket: Bucket = SCALED) -> Replay:
    """Journal ``calls`` offline calls, then let a delivery in a child process mirror them (at most ``budget`` s)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"replay-{mode}.db"
    path.unlink(missing_ok=True)
    with Journal.open(path) as journal:
        journal_offline_calls(journal, calls, datetime.now(MSK).replace(microsecond=0) - timedelta(days=1))
    async with Bitrix24Simulator(rate=bucket.rate, burst=bucket.burst) as sim:
        index_statistics(sim)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        args = [str(path), sim.webhook_url, str(bucket.rate), str(bucket.burst), str(bucket.scale), mode, str(budget)]
        with (workdir / f"replay-{mode}.stderr").open("wb") as stderr:
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.replay", *args,
                stdout=asyncio.subprocess.PIPE, stderr=stderr, cwd=ROOT, env=env,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(child.communicate(), budget + CHILD_GRACE)
        if child.returncode != 0 or not out:
            raise RuntimeError(f"the replay child failed ({child.returncode}); see {workdir}/replay-{mode}.stderr")
        result = json.loads(out.decode().strip().splitlines()[-1])
        counters = sim.core.counters
        return Replay(
            mode=mode,
            bucket=bucket,
            calls=calls,
            replayed=int(result["replayed"]),
            seconds=float(result["seconds"]),
            requests=counters["requests"],
            query_limit_exceeded=counters["query_limit_exceeded"],
        )


def main(argv: list[str]) -> int:
    journal, webhook, rate, burst, scale, mode, budget = argv
    settings = Bitrix24Settings(webhook_url=Secret(webhook), rate=float(rate), burst=int(burst), register_timeout=5.0)
    asyncio.run(deliver(Path(journal), settings, float(scale), mode, float(budget)))
    return 0


if __name__ == "__main__":
    from bridge import logs

    logs.configure(json=True, level="info", stream=sys.stderr)  # as the daemon logs into journald
    raise SystemExit(main(sys.argv[1:]))
