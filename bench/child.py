"""The daemon under test, in its own process: ``python -m bench.child CONFIG.json MODE LOGFILE``.

Running it apart from the simulators makes its CPU time and RSS its own. It is the production
:class:`~bridge.daemon.Daemon` built from the config the parent wrote (the stage's, pointing at the parent's
simulators), logging JSON at ``info`` into ``LOGFILE`` as it would into journald. ``MODE`` ``naive`` swaps the
delivery's client for :class:`bench.naive.OneCommandPerRequest` before the first call arrives.

The daemon's start-up tunes the garbage collector (:mod:`bridge.ops.gc_tuning`); the environment variable
``BENCH_GC=default`` puts CPython's defaults back once connected, to compare. ``BENCH_LAG=off`` leaves the
event-loop lag watcher out (the idle phase: its 10 ms timer would be most of an idle daemon's CPU);
``BENCH_STALLS_TO=FILE`` appends what the event loop ran whenever it stalled over 20 ms (:mod:`bench.stall_sampler`);
``BENCH_PROFILE_TO=FILE`` runs cProfile from ready to stop and writes its stats to ``FILE`` (``bench/README.md``);
with ``BENCH_PROFILE_CPU=1`` it counts CPU time instead of wall time (on a loaded machine wall time charges a
socket write with the time the receiver ran).
The daemon runs on uvloop, as ``b24-bridge run`` does (:mod:`bridge.event_loop`); ``BENCH_UVLOOP=0`` runs it on
asyncio's own loop, to compare.

Protocol on stdin/stdout, one JSON object per line: the child prints ``{"ready": ...}`` once connected, then
answers each ``stats`` line with its figures; ``stop`` stops the daemon as SIGTERM does (``{"stopped": true}``).
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from bench.naive import OneCommandPerRequest
from bench.stall_sampler import StallSampler
from bridge import event_loop, logs
from bridge.config import parse_settings
from bridge.crm.client import Bitrix24Client
from bridge.crm.telephony import Telephony
from bridge.daemon import Daemon, Timing
from bridge.domain.commands import CrmCommand
from bridge.journal import Journal

MODES = ("paced", "naive")
CHILD_TIMING = Timing(grace=0.5, flush=0.5)
START_TIMEOUT = 30.0
CPYTHON_GC_THRESHOLD = (700, 10, 10)
"""CPython's own thresholds, for ``BENCH_GC=default``."""


def rss_kib() -> int:
    """Resident set size now (Linux ``/proc``); the peak from ``getrusage`` elsewhere."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Stalls:
    """How long the daemon's event loop was kept from running (a 10 ms timer's overshoot), its longest GC pause, its
    slowest journal append (a SQLite commit, made on the event loop) and its slowest journal fsync (made in the
    journal's worker thread: a request waits for it, the event loop does not).

    Lags go into a fixed histogram of 1 ms buckets, so watching costs the same memory however long it runs.
    """

    PERIOD = 0.01
    BUCKETS = 1000

    def __init__(self) -> None:
        self.histogram = [0] * (self.BUCKETS + 1)
        self.lag_max_ms = 0.0
        self.gc_max_ms = 0.0
        self.append_max_ms = 0.0
        self.journal: Journal | None = None
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)

    def time_appends(self, journal: Journal) -> None:
        """Time every ``append`` the dispatcher makes (the same journal object is its outbox)."""
        self.journal = journal
        append = journal.append

        def timed(cmd: CrmCommand, *, linkedid: str = "", pbx_call: str = "", line: str = "") -> int:
            started = time.perf_counter()
            try:
                return append(cmd, linkedid=linkedid, pbx_call=pbx_call, line=line)
            finally:
                self.append_max_ms = max(self.append_max_ms, (time.perf_counter() - started) * 1000)

        journal.append = timed  # type: ignore[method-assign]

    def _on_gc(self, phase: str, _info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._gc_started = now
        else:
            self.gc_max_ms = max(self.gc_max_ms, (now - self._gc_started) * 1000)

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.PERIOD)
            lag = max(0.0, (loop.time() - started - self.PERIOD) * 1000)
            self.histogram[min(int(lag), self.BUCKETS)] += 1
            self.lag_max_ms = max(self.lag_max_ms, lag)

    def take(self) -> dict[str, float]:
        """p99 (to the 1 ms bucket's upper edge) and max loop lag, and the longest GC pause since the last take."""
        total, seen, p99 = sum(self.histogram), 0, 0.0
        for bucket, count in enumerate(self.histogram):
            seen += count
            if seen >= 0.99 * total:
                p99 = float(bucket + 1)
                break
        sync_ms = self.journal.wal.longest * 1000 if self.journal is not None else 0.0
        taken = {"lag_p99_ms": p99 if total else 0.0, "lag_max_ms": self.lag_max_ms, "gc_max_ms": self.gc_max_ms,
                 "append_max_ms": self.append_max_ms, "sync_max_ms": sync_ms}  # fmt: skip
        if self.journal is not None:
            self.journal.wal.longest = 0.0
        self.histogram = [0] * (self.BUCKETS + 1)
        self.lag_max_ms = self.gc_max_ms = self.append_max_ms = 0.0
        return taken


def figures(daemon: Daemon, client: Bitrix24Client, stalls: Stalls) -> dict[str, Any]:
    stats = client.stats
    return {
        **stalls.take(),
        "rss_kib": rss_kib(),
        "cpu_s": cpu_seconds(),
        "active": daemon.dispatcher.active,
        "depth": daemon.reads.depth(),
        "requests": stats.requests,
        "commands": stats.commands,
        "query_limit_exceeded": stats.query_limit_exceeded,
        "poll_interval": daemon.settings.bitrix24.poll_interval,
    }


def use_naive_client(daemon: Daemon) -> Bitrix24Client:
    """Give the delivery a one-command-per-request client (its journal is empty: nothing is in flight yet)."""
    naive = OneCommandPerRequest(daemon.settings.bitrix24, retry_attempts=1)
    daemon.delivery.client = naive
    daemon.delivery.telephony = Telephony(naive)
    return naive


async def _until_connected(daemon: Daemon, serving: asyncio.Task[int]) -> None:
    async with asyncio.timeout(START_TIMEOUT):
        while not (daemon.started.is_set() and daemon.ari.connected and daemon.ami.connected):
            if serving.done():
                serving.result()
                raise RuntimeError("the daemon stopped during start-up")
            await asyncio.sleep(0.02)


def _say(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


async def main(config: Path, mode: str) -> int:
    settings = parse_settings(json.loads(config.read_text(encoding="utf-8")), path=config, env={})
    daemon = Daemon(settings, timing=CHILD_TIMING)
    serving = asyncio.create_task(daemon.serve(install_signals=False))
    await _until_connected(daemon, serving)
    if os.environ.get("BENCH_GC") == "default":
        gc.unfreeze()
        gc.set_threshold(*CPYTHON_GC_THRESHOLD)
    client = use_naive_client(daemon) if mode == "naive" else daemon.delivery_client
    stalls = Stalls()
    assert daemon.journal is not None, "the bench runs on an SQLite journal"
    stalls.time_appends(daemon.journal)
    watching = asyncio.create_task(stalls.watch() if os.environ.get("BENCH_LAG") != "off" else asyncio.sleep(0))
    stalls_to = os.environ.get("BENCH_STALLS_TO")
    sampling = asyncio.create_task(StallSampler(Path(stalls_to)).beat() if stalls_to else asyncio.sleep(0))
    profile_to = os.environ.get("BENCH_PROFILE_TO")
    profiler = (
        (cProfile.Profile(time.process_time) if os.environ.get("BENCH_PROFILE_CPU") else cProfile.Profile())
        if profile_to
        else None
    )
    if profiler is not None:
        profiler.enable()
    _say({"ready": True, "pid": os.getpid(), **figures(daemon, client, stalls)})
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "stop":
            break
        _say(figures(daemon, client, stalls))
    watching.cancel()
    sampling.cancel()
    if profiler is not None and profile_to:
        profiler.disable()
        profiler.dump_stats(profile_to)
    daemon.request_stop()
    await serving
    if client is not daemon.delivery_client:
        await client.close()
    _say({"stopped": True})
    return 0


if __name__ == "__main__":
    config_path, run_mode, log_path = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    if run_mode not in MODES:
        raise SystemExit(f"mode must be one of {', '.join(MODES)}")
    with log_path.open("w", encoding="utf-8") as log_file:
        logs.configure(json=True, level="info", stream=log_file)
        if os.environ.get("BENCH_UVLOOP") == "0":  # asyncio's own loop, to compare
            raise SystemExit(asyncio.run(main(config_path, run_mode)))
        raise SystemExit(event_loop.run(main(config_path, run_mode)))
