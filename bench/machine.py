"""What the numbers were measured on: CPU model, cores, RAM, Python, OS."""

from __future__ import annotations

import os
import platform
import resource
import sqlite3
import sys
import time
from pathlib import Path


def _cpu_model() -> str:
    model, virtual = "", False
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and " hypervisor" in line:
                virtual = True
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown"
    return f"{model} (virtual machine)" if virtual else model


def _ram() -> str:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"


def _os() -> str:
    try:
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip().strip(chr(34))}, Linux {platform.release()}"
    except OSError:
        pass
    return platform.platform()


def commit_latency(directory: Path, commits: int = 200) -> str:
    """p50/p99 of one small durable SQLite commit (WAL, ``synchronous=FULL``, as the journal does) in ``directory``."""
    path = directory / "fsync-probe.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS probe (payload TEXT)")
        took = []
        for _ in range(commits):
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO probe VALUES (?)", ("x" * 300,))
            conn.execute("COMMIT")
            took.append((time.perf_counter() - started) * 1000)
    finally:
        conn.close()
    took.sort()
    return f"p50 {took[len(took) // 2]:.2f} ms, p99 {took[int(len(took) * 0.99)]:.2f} ms"


def _machine_busy_seconds() -> float | None:
    """CPU seconds all processes have used since boot (``/proc/stat``), or None where there is no such file."""
    try:
        fields = Path("/proc/stat").read_text(encoding="utf-8").splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the daemon and replay children, once reaped
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class OtherLoad:
    """How much CPU the rest of the machine took while the bench ran (it competes for the same cores)."""

    def __init__(self) -> None:
        self.machine = _machine_busy_seconds()
        self.own = _own_seconds()
        self.started = time.monotonic()

    def describe(self) -> str:
        now = _machine_busy_seconds()
        if now is None or self.machine is None:
            return "unknown"
        elapsed = time.monotonic() - self.started
        others = max(0.0, (now - self.machine) - (_own_seconds() - self.own))
        share = others / (elapsed * (os.cpu_count() or 1)) if elapsed else 0.0
        return f"{others:.0f} CPU seconds ({share:.0%} of the machine)"


def busy() -> bool:
    """Something else is using the CPUs (the 1-minute load is over a quarter of the cores)."""
    return hasattr(os, "getloadavg") and os.getloadavg()[0] > 0.25 * (os.cpu_count() or 1)


def machine(workdir: Path | None = None) -> dict[str, str]:
    """The machine's details as label -> text, in the order BENCHMARKS.md lists them."""
    details = {
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count() or "unknown"),
        "RAM": _ram(),
        "Python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "OS": _os(),
    }
    if hasattr(os, "getloadavg"):
        details["load average when the run started"] = " / ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1/5/15 min)"
    if workdir is not None:
        details["durable SQLite commit (journal disk)"] = commit_latency(workdir)
    return details
