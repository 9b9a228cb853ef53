"""One installation under load: both simulators in this process, the real daemon in a child process.

The config is the stage's (:func:`bridge.sim.stage.stage_config`: the built-in call centre, addresses pointing at
the simulators) with call recording off; see :mod:`bench.child` for the daemon's side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from bench.portal_index import index_statistics
from bridge.sim.asterisk import Answer, AsteriskSimulator, InboundCall
from bridge.sim.asterisk.parties import Party
from bridge.sim.bitrix24 import Bitrix24Simulator
from bridge.sim.stage import AMI_SECRET, APP_TOKEN, ARI_PASSWORD, set_up_portal, stage_config

log = structlog.get_logger(__name__)

ROOT = Path(__file__).resolve().parent.parent
LINE = "74951112255"
"""The built-in call centre's "everybody" line (queue ``support`` rings 1001, 1002, 1003 and 1006 at once): the
default workload's; the load phases give each call a group of its own instead (:mod:`bench.groups`)."""
AGENTS = ("1001", "1002", "1003", "1004", "1005", "1006")
ANSWER_AFTER = 0.2
CHILD_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
"""The daemon's own shutdown is not measured: a child that has not exited by then is killed."""


@dataclass(frozen=True)
class Bucket:
    """The portal's leaky bucket a phase runs against (the same numbers on the client's side)."""

    rate: float
    """Requests per second it drains, on the wall clock."""
    burst: int
    scale: float = 1.0
    """How much faster than the real plan's clock: rate = real rate x scale, burst unchanged."""

    @property
    def ceiling(self) -> float:
        """Commands per second the portal takes at most (every request a full batch)."""
        return self.rate * 50

    def describe(self) -> str:
        real = f"{self.rate / self.scale:g} req/s, burst {self.burst}"
        if self.scale == 1:
            return f"real bucket ({real})"
        return f"bucket x{self.scale:g} ({self.rate:g} req/s, burst {self.burst} = {real} on a {self.scale:g}x clock)"


STANDARD = Bucket(2.0, 50)
SCALED = Bucket(20.0, 50, scale=10.0)


@dataclass
class Workload:
    """What the installation looks like for a phase: its config, the portal's people and the PBX's parties.

    The default is the "everybody" load: line :data:`LINE`, the agents of :data:`AGENTS` answering after
    :data:`ANSWER_AFTER` s."""

    name: str = "everybody"
    auth: str = "webhook"
    watch_lag: bool = True
    """The child times its event loop's lag (a 10 ms timer: it costs the daemon's process some CPU)."""

    def tweak(self, data: dict[str, Any]) -> None:
        """Change the daemon's config (the stage's) before it is written."""

    def seed(self) -> dict[str, Any] | None:
        """The portal's users and CRM (None: the simulator's default)."""
        return None

    def parties(self) -> dict[str, Party]:
        return {ext: Answer(after=ANSWER_AFTER) for ext in AGENTS}


EVERYBODY = Workload()
PROFILE_ENV = "BENCH_PROFILE"
"""Set (to a directory) in the bench's environment, it makes each daemon child profile itself with cProfile from
ready to stop and write ``<phase>-<mode>.pstats`` there (see ``bench/README.md``)."""


class Live:
    """The running installation: ``pbx`` and ``crm`` simulators and the daemon child's figures."""

    def __init__(self, pbx: AsteriskSimulator, crm: Bitrix24Simulator, child: asyncio.subprocess.Process) -> None:
        self.pbx = pbx
        self.crm = crm
        self.child = child
        self.calls: list[InboundCall] = []
        self.background: set[asyncio.Task[None]] = set()

    async def _ask(self, line: str) -> dict[str, Any]:
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write(line.encode() + b"\n")
        await self.child.stdin.drain()
        answer = await asyncio.wait_for(self.child.stdout.readline(), CHILD_TIMEOUT)
        if not answer:
            raise RuntimeError(f"the daemon child exited ({self.child.returncode}); see its log")
        data: dict[str, Any] = json.loads(answer)
        return data

    async def stats(self) -> dict[str, Any]:
        """The daemon's RSS (KiB), CPU seconds, active calls, journal depth and delivery client counters."""
        return await self._ask("stats")

    def portal_counters(self) -> dict[str, int]:
        counters = self.crm.core.counters
        return {name: counters[name] for name in ("requests", "commands", "query_limit_exceeded")}

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_TIMEOUT
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ask("stop"), STOP_TIMEOUT)
        try:
            await asyncio.wait_for(self.child.wait(), max(0.1, deadline - loop.time()))
        except TimeoutError:
            log.info("bench.child_killed", pid=self.child.pid, reason=f"still stopping after {STOP_TIMEOUT:g} s")
            with contextlib.suppress(ProcessLookupError):
                self.child.kill()
            await self.child.wait()


def add_lines(crm: Bitrix24Simulator, data: dict[str, Any]) -> None:
    """The portal already has the config's lines, as for an installation that ran before: the daemon's start-up
    asks once (``externalLine.get``) instead of adding them one request each while the load runs."""
    app_id = crm.core.identity.app_id if "oauth" in data["bitrix24"] else None
    for number, line in data["lines"].items():
        crm.core.lines.add(app_id, number, line.get("name", ""), "Y" if line.get("crm_create", True) else "N")


def config_data(
    pbx: AsteriskSimulator, crm: Bitrix24Simulator, workdir: Path, bucket: Bucket, workload: Workload = EVERYBODY
) -> dict[str, Any]:
    data = stage_config(pbx, crm, workdir, ring_seconds=5.0, rate=bucket.rate, burst=bucket.burst, register_timeout=5.0,
                        auth=workload.auth)  # fmt: skip
    workload.tweak(data)
    for line in data["lines"].values():
        line["record"] = False  # an upload is one request per file in any mode; the mirror is what is measured
    if workload.auth == "oauth":
        set_up_portal(crm, data)  # the local application's first tokens, as its administrator puts them in
    return data


@asynccontextmanager
async def live_stack(workdir: Path, mode: str, bucket: Bucket, workload: Workload = EVERYBODY) -> AsyncIterator[Live]:
    """Simulators here, the daemon (``mode`` ``paced`` or ``naive``) in a child; everything stopped at the end."""
    workdir.mkdir(parents=True, exist_ok=True)
    async with (
        AsteriskSimulator(ari_password=ARI_PASSWORD, ami_secret=AMI_SECRET) as pbx,
        Bitrix24Simulator(rate=bucket.rate, burst=bucket.burst, application_token=APP_TOKEN,
                          seed=workload.seed()) as crm,
    ):  # fmt: skip
        index_statistics(crm)
        for ext, party in workload.parties().items():
            pbx.set_party(ext, party)
        config = workdir / f"bridge-{mode}.json"
        data = config_data(pbx, crm, workdir, bucket, workload)
        add_lines(crm, data)
        config.write_text(json.dumps(data), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        env["BENCH_LAG"] = "on" if workload.watch_lag else "off"
        if env.get(PROFILE_ENV):
            env["BENCH_PROFILE_TO"] = str(Path(env[PROFILE_ENV]) / f"{workload.name}-{mode}.pstats")
        with (workdir / f"daemon-{mode}.stderr").open("wb") as stderr:
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.child", str(config), mode, str(workdir / f"daemon-{mode}.log"),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr, cwd=ROOT, env=env,
            )  # fmt: skip
        live = Live(pbx, crm, child)
        try:
            assert child.stdout is not None
            ready = await asyncio.wait_for(child.stdout.readline(), CHILD_TIMEOUT)
            if not ready:
                raise RuntimeError(f"the daemon child did not start; see {workdir}/daemon-{mode}.stderr")
            log.debug("bench.child_ready", mode=mode, **json.loads(ready))
            yield live
        finally:
            for task in live.background:
                task.cancel()
            await live.stop()
