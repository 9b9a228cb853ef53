"""The real daemon as a child process (``python -m bridge run``), so that it can be ``kill -9``ed and restarted
on the same journal. Its JSON log lines go to one file per start."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.sim.asterisk import AsteriskSimulator
from tests.chaos.callcentre import APP

ROOT = Path(__file__).resolve().parents[2]
BAD_EVENTS = ("daemon.task_crashed", "dispatch.error", "delivery.error")
"""Log events that mean a bug in the daemon, whatever the weather."""


def linked(pbx: AsteriskSimulator) -> bool:
    """The Stasis application is served and an AMI session is logged in (what the daemon needs to take calls)."""
    return pbx.bus.is_active(APP) and any(s.authenticated for s in pbx.ami_server.sessions)


@dataclass
class DaemonProcess:
    config: Path
    workdir: Path
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    async def start(self, pbx: AsteriskSimulator, timeout: float = 20.0) -> None:
        """Spawn the daemon and wait until it has connected to ARI and AMI."""
        self.starts += 1
        log_path = self.workdir / f"daemon-{self.starts}.log"
        self.logs.append(log_path)
        with log_path.open("wb") as sink:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bridge", "--log-format", "json", "run", "--config", str(self.config),
                stdout=sink, stderr=asyncio.subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        await self.wait_until(lambda: linked(pbx) and self.logged("daemon.started"), timeout, "connect")

    async def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not ready():
            if self.process is not None and self.process.returncode is not None:
                code = self.process.returncode
                raise RuntimeError(f"the daemon exited ({code}) before it could {what}:\n{self.tail()}")
            if loop.time() > deadline:
                raise TimeoutError(f"the daemon did not {what} within {timeout} s:\n{self.tail()}")
            await asyncio.sleep(0.02)

    def cpu_seconds(self) -> float | None:
        """User + system CPU the running daemon has used (Linux ``/proc``; None elsewhere)."""
        if self.process is None or self.process.returncode is not None:
            return None
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush; whatever was in flight stays in the journal."""
        assert self.process is not None and self.process.returncode is None, "the daemon is not running"
        os.kill(self.process.pid, signal.SIGKILL)

    async def reap(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait (a clean exit is 0)."""
        process = self.process
        if process is None or process.returncode is not None:
            return process.returncode if process is not None and process.returncode is not None else 0
        process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise

    # --- what it said ----------------------------------------------------------------------------------

    def lines(self, paths: list[Path] | None = None) -> Iterator[dict[str, Any]]:
        for path in self.logs if paths is None else paths:
            if not path.exists():
                continue
            for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    entry = json.loads(raw)
                except ValueError:
                    entry = None
                yield entry if isinstance(entry, dict) else {"event": "log.not_json", "text": raw}

    def logged(self, event: str) -> bool:
        """``event`` appears in the current start's log."""
        return any(entry.get("event") == event for entry in self.lines(self.logs[-1:]))

    def count(self, event: str) -> int:
        return sum(1 for entry in self.lines() if entry.get("event") == event)

    def bad_lines(self) -> list[dict[str, Any]]:
        """Crashes of the daemon's own tasks, and anything that is not a structured log line."""
        return [e for e in self.lines() if e.get("event") in BAD_EVENTS or e.get("event") == "log.not_json"]

    def text(self) -> str:
        return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in self.logs if p.exists())

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.text().splitlines()[-lines:])


def journal_backlog(path: Path) -> tuple[int, int]:
    """(operations not yet done or failed, calls not yet ended) in the daemon's journal, read-only."""
    if not path.exists():
        return 0, 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    try:
        (ops,) = conn.execute("SELECT COUNT(*) FROM operations WHERE state IN ('pending', 'sent')").fetchone()
        (open_calls,) = conn.execute("SELECT COUNT(*) FROM calls WHERE state = 'open'").fetchone()
        return int(ops), int(open_calls)
    finally:
        conn.close()


def journal_failed(path: Path) -> list[tuple[str, str, str]]:
    """Operations the daemon parked as failed: (crm_leg, kind, last_error)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    try:
        rows = conn.execute("SELECT crm_leg, kind, last_error FROM operations WHERE state = 'failed'").fetchall()
        return [(str(leg), str(kind), str(error)) for leg, kind, error in rows]
    finally:
        conn.close()
