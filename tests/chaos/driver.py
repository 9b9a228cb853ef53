"""One chaos run: both simulators in this process, the daemon as a child, scripted calls on every lane while the
weather turns: Bitrix24 errors throughout, one Bitrix24 outage, ARI/AMI disconnects and one ``kill -9``.

Faults are triggered by progress (how many calls have been placed), not by the clock, so a slow machine gets the
same run. New calls wait while the daemon is not linked to the PBX: Asterisk refuses ``Stasis()`` for an
application nobody serves, so such a call never reaches any bridge. The calls already in progress live through
every fault.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.sim.asterisk import AsteriskSimulator
from bridge.sim.bitrix24 import Bitrix24Simulator
from bridge.sim.stage import AMI_SECRET, APP_TOKEN, ARI_PASSWORD
from tests.chaos.callcentre import Lane, Timings, chaos_config, make_lanes, seed_with, toml_text
from tests.chaos.daemon_process import DaemonProcess, journal_backlog, journal_failed, linked
from tests.chaos.scripts import CallScript, ScriptMaker, safety_hangup
from tests.chaos.witness import Conversation, PbxWitness
from tests.eventually import eventually

ERROR_KINDS = ("500", "503", "429")
CHANNEL_PATH = re.compile(r"/channels/([^/]+)")
RESYNC_SECONDS = 0.5
"""After ARI is back, the daemon's resynchronisation may still be settling calls the gap touched."""


@dataclass(frozen=True)
class ChaosPlan:
    calls: int
    lanes: int
    seed: int = 20240601
    ring_seconds: float = 0.5
    error_rate: float = 0.1
    outage_at: float = 0.15
    """Fraction of the calls placed when Bitrix24 goes away."""
    outage_seconds: float = 60.0
    disconnects: tuple[tuple[float, bool, bool], ...] = ((0.3, True, True), (0.6, True, False), (0.8, False, True))
    """(fraction placed, drop ARI, drop AMI)."""
    kill_at: float = 0.45
    drain_timeout: float = 300.0


@dataclass
class Placed:
    script: CallScript
    channel: str
    started: float
    entered_at: float
    """Wall-clock time the call entered the application (the PBX's request log is in wall-clock time)."""
    talks: list[Conversation]
    """What really happened on the PBX (filled in when the call has ended)."""
    ended: float | None = None
    cut: bool = False
    """In progress when the daemon was killed: its end is the restart's reconciliation (``bridge/recovery.py``)."""
    disturbed: bool = False
    """Alive while ARI was down: the PBX itself may have done other than the script (an agent who answers
    meanwhile cannot enter the application and is hung up), so only Bitrix24 against the PBX is checked."""
    seen: bool = False
    """The daemon logged the call's start (``call.started``)."""


@dataclass
class ChaosResult:
    plan: ChaosPlan
    placed: list[Placed]
    crm_state: dict[str, Any]
    daemon: DaemonProcess
    failed_ops: list[tuple[str, str, str]]
    exit_code: int
    seconds: float
    figures: dict[str, Any] = field(default_factory=dict)


class ChaosRun:
    def __init__(self, plan: ChaosPlan, workdir: Path, pbx: AsteriskSimulator, crm: Bitrix24Simulator) -> None:
        self.plan = plan
        self.workdir = workdir
        self.pbx, self.crm = pbx, crm
        self.timings = Timings(plan.ring_seconds)
        self.lanes = make_lanes(plan.lanes)
        maker = ScriptMaker(plan.seed, self.timings)
        self.scripts = [maker.make(seq, self.lanes[seq % plan.lanes]) for seq in range(plan.calls)]
        self.rng = random.Random(plan.seed + 1)
        self.placed: list[Placed] = []
        self.witness = PbxWitness(pbx)
        self.ari_gaps: list[tuple[float, float]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.journal = workdir / "journal.db"
        config = workdir / "bridge.toml"
        config.write_text(toml_text(chaos_config(pbx, crm, workdir, self.lanes, self.timings)), encoding="utf-8")
        self.daemon = DaemonProcess(config, workdir)
        self.max_backlog = 0
        self.notes: dict[str, Any] = {}

    # --- the run ---------------------------------------------------------------------------------------

    async def run(self) -> ChaosResult:
        started, cpu_started = time.monotonic(), time.process_time()
        self.crm.set_fault(error_rate=self.plan.error_rate, error_kinds=ERROR_KINDS, seed=self.plan.seed)
        await self.daemon.start(self.pbx)
        sampler = asyncio.create_task(self._sample_backlog())
        try:
            lanes = [self._lane(lane) for lane in self.lanes]
            await asyncio.gather(self._weather(), *lanes)
            calls_done = time.monotonic()
            await self._drain()
            drained = time.monotonic()
            started_calls = {e.get("call_id") for e in self.daemon.lines() if e.get("event") == "call.started"}
            for placed in self.placed:
                end = placed.ended or drained
                placed.disturbed = any(start <= end and placed.started <= stop for start, stop in self.ari_gaps)
                placed.seen = placed.channel in started_calls
        finally:
            sampler.cancel()
        cpu = self.daemon.cpu_seconds()
        if cpu is not None:
            self.notes["daemon_cpu_seconds_since_restart"] = round(cpu, 1)
        self.notes["test_process_cpu_seconds"] = round(time.process_time() - cpu_started, 1)
        exit_code = await self.daemon.stop()
        self.notes |= {"calls_seconds": round(calls_done - started, 1), "drain_seconds": round(drained - calls_done, 1)}
        return ChaosResult(
            self.plan, self.placed, self.crm.state(), self.daemon, journal_failed(self.journal), exit_code,
            time.monotonic() - started, self._figures(),
        )  # fmt: skip

    async def _lane(self, lane: Lane) -> None:
        await asyncio.sleep(self.rng.uniform(0.0, 2 * self.timings.ring_window))  # customers do not come all at once
        for script in (s for s in self.scripts if s.lane is lane):
            await self._until_ready(lane)
            for ext, party in script.parties.items():
                self.pbx.set_party(ext, party)
            call = await self.pbx.place_inbound_call(
                lane.line, script.caller, hangup_after=script.hangup_after,
                hangup_after_answer=script.hangup_after_answer,
            )  # fmt: skip
            self.witness.follow(call.channel_id)
            placed = Placed(script, call.channel_id, time.monotonic(), time.time(), [])
            self.placed.append(placed)
            await asyncio.wait_for(call.ended(), safety_hangup(self.timings) + 30)
            placed.ended = time.monotonic()
            placed.talks = self.witness.conversations(call.channel_id)
            await asyncio.sleep(self.rng.uniform(0.0, 0.3))  # the next customer's arrival

    async def _until_ready(self, lane: Lane, timeout: float = 30.0) -> None:
        """The daemon serves the app and the lane's agents have no channel left from the last call."""
        deadline = time.monotonic() + timeout
        prefixes = tuple(f"Local/{ext}@" for ext in lane.agents)
        while True:
            await self.gate.wait()
            busy = [c for c in self.pbx.pbx.channels.values() if c.name.startswith(prefixes)]
            if not busy and linked(self.pbx) and self.gate.is_set():
                return
            if time.monotonic() > deadline:
                left = [(c.id, c.name, c.state) for c in busy]
                raise AssertionError(f"lane {lane.index}: agent channels still up {timeout} s after the call: {left}")
            await asyncio.sleep(0.05)

    async def _weather(self) -> None:
        plan = self.plan
        events: list[tuple[float, str, tuple[bool, bool]]] = [(plan.outage_at, "outage", (False, False))]
        events += [(at, "disconnect", (ari, ami)) for at, ari, ami in plan.disconnects]
        events.append((plan.kill_at, "kill", (False, False)))
        for at, what, (ari, ami) in sorted(events):
            await self._placed_reaches(int(at * plan.calls))
            if what == "outage":
                self.crm.set_fault(
                    outage_seconds=plan.outage_seconds, error_rate=plan.error_rate, error_kinds=ERROR_KINDS,
                    seed=plan.seed + 2,
                )  # fmt: skip
                self.notes["outage_started_after_calls"] = len(self.placed)
            elif what == "disconnect":
                await self._disconnect(ari=ari, ami=ami)
            else:
                await self._kill_and_restart()

    async def _placed_reaches(self, count: int) -> None:
        await eventually(lambda: len(self.placed) >= count, timeout=3600.0, interval=0.05)

    async def _disconnect(self, *, ari: bool, ami: bool) -> None:
        self.gate.clear()
        dropped = time.monotonic()
        await self.pbx.drop_connections(ari=ari, ami=ami)
        await self.daemon.wait_until(lambda: linked(self.pbx), 20.0, "reconnect")
        if ari:
            self.ari_gaps.append((dropped, time.monotonic() + RESYNC_SECONDS))
        self.gate.set()
        self.notes["disconnects"] = self.notes.get("disconnects", 0) + 1

    async def _kill_and_restart(self) -> None:
        """Stop new calls, let the daemon journal every call in progress, then ``kill -9`` and start it again."""
        self.gate.clear()
        in_flight = [p for p in self.placed if p.ended is None]
        await eventually(lambda: self._journaled({p.channel for p in in_flight}), timeout=20.0)
        cpu = self.daemon.cpu_seconds()
        self.daemon.kill()
        killed_at = time.monotonic()
        if cpu is not None:
            self.notes["daemon_cpu_seconds_before_kill"] = round(cpu, 1)
        await self.daemon.reap()
        for placed in self.placed:
            # a call that ended just before the kill may have ended after the daemon last looked
            placed.cut = placed.ended is None or placed.ended > killed_at - 0.3
        await self.daemon.start(self.pbx)
        self.notes["cut_by_kill"] = sum(p.cut for p in self.placed)
        self.notes["restart_seconds"] = round(time.monotonic() - killed_at, 2)
        self.gate.set()

    def _journaled(self, channels: set[str]) -> bool:
        import sqlite3

        conn = sqlite3.connect(f"file:{self.journal}?mode=ro", uri=True, timeout=10.0)
        try:
            known = {row[0] for row in conn.execute("SELECT pbx_call FROM calls")}
        finally:
            conn.close()
        return channels <= known

    async def _drain(self) -> None:
        """Every call's operations delivered (or parked) and no call left open in the journal."""
        await eventually(lambda: journal_backlog(self.journal) == (0, 0), timeout=self.plan.drain_timeout,
                         interval=0.25)  # fmt: skip

    async def _sample_backlog(self) -> None:
        while True:
            self.max_backlog = max(self.max_backlog, journal_backlog(self.journal)[0])
            await asyncio.sleep(0.5)

    def _reaction_times(self) -> list[float]:
        """Per call: from entering the application to the daemon's first request about it (answering it)."""
        first: dict[str, float] = {}
        for request in self.pbx.requests:
            found = CHANNEL_PATH.search(request["path"])
            if found is not None:
                first.setdefault(found.group(1), request["at"])
        return sorted(first[p.channel] - p.entered_at for p in self.placed if p.channel in first)

    def _figures(self) -> dict[str, Any]:
        counters = self.crm.state()["counters"]
        reactions = self._reaction_times()
        return {
            "calls": len(self.placed),
            "lanes": self.plan.lanes,
            "errors_injected": counters.get("faults_injected", 0),
            "refused_in_outage": counters.get("outage_refused", 0),
            "rest_requests": counters.get("requests", 0),
            "rest_commands": counters.get("commands", 0),
            "offline_calls": self.daemon.count("crm.offline"),
            "reconciled": self.daemon.count("call.reconciled"),
            "max_journal_backlog": self.max_backlog,
            "answer_p50_ms": round(1000 * reactions[len(reactions) // 2]) if reactions else None,
            "answer_p99_ms": round(1000 * reactions[int(len(reactions) * 0.99)]) if reactions else None,
            "answer_max_ms": round(1000 * reactions[-1]) if reactions else None,
            **self.notes,
        }


async def chaos(plan: ChaosPlan, workdir: Path) -> ChaosResult:
    workdir.mkdir(parents=True, exist_ok=True)
    lanes = make_lanes(plan.lanes)
    async with (
        AsteriskSimulator(ari_password=ARI_PASSWORD, ami_secret=AMI_SECRET) as pbx,
        Bitrix24Simulator(
            seed=seed_with(lanes), rate=Timings(plan.ring_seconds).rate, burst=50, application_token=APP_TOKEN
        ) as crm,
    ):
        return await ChaosRun(plan, workdir, pbx, crm).run()
