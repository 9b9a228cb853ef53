"""The full chaos run's figures (``make chaos`` leaves them in ``bench/chaos-figures.json``) as a section of
``BENCHMARKS.md``. The chaos suite itself lives in ``tests/chaos``; this only reports its last run that held."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHAOS_FIGURES = Path(__file__).with_name("chaos-figures.json")

LABELS = {
    "calls": "calls placed",
    "lanes": "lines (each its own queue and owner)",
    "errors_injected": "Bitrix24 requests failed on purpose (500, 503, 429)",
    "refused_in_outage": "requests refused during the outage",
    "rest_requests": "REST requests Bitrix24 answered",
    "rest_commands": "commands they carried",
    "offline_calls": "calls mirrored offline (register not through within `register_timeout`)",
    "reconciled": "calls reconciled after the `kill -9`",
    "max_journal_backlog": "largest journal backlog (operations)",
    "answer_p50_ms": "caller entering Stasis -> answered, p50 (ms)",
    "answer_p99_ms": "caller entering Stasis -> answered, p99 (ms)",
    "answer_max_ms": "caller entering Stasis -> answered, max (ms)",
    "outage_started_after_calls": "the outage began after this many calls",
    "disconnects": "AMI/ARI disconnects",
    "cut_by_kill": "calls in progress when the daemon was killed",
    "restart_seconds": "restart: process start -> connected (s)",
    "daemon_cpu_seconds_before_kill": "daemon CPU seconds before the kill",
    "daemon_cpu_seconds_since_restart": "daemon CPU seconds after the restart",
    "calls_seconds": "seconds placing calls",
    "drain_seconds": "seconds for the journal to drain after the last call",
    "seconds": "seconds in all",
}


def chaos_section(path: Path = CHAOS_FIGURES) -> list[str]:
    """Markdown lines; a note to run ``make chaos`` when there is no recorded run."""
    lines = ["## Chaos suite, full run", ""]
    try:
        run: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        figures: dict[str, Any] = run["figures"]
    except (OSError, ValueError, KeyError, TypeError):
        return [*lines, "No full run recorded: `make chaos` records one in `bench/chaos-figures.json`.", ""]
    plan, machine = run.get("plan", {}), run.get("machine", {})
    broken = figures.get("broken_invariants") or {}
    verdict = "every invariant held" if not broken else f"broken invariants: {broken}"
    lines += [
        f"`make chaos` (`tests/chaos/test_chaos.py::test_chaos_full`) on {run.get('run_at', '?')}, "
        f"{machine.get('cores', '?')} cores, Python {machine.get('python', '?')}: {verdict} (each call in Bitrix24 "
        "exactly once with the right employee, status and duration within 1 s; no finish twice; no card left "
        f"shown). Plan: {_value(plan.get('calls', '?'))} calls on {plan.get('lanes', '?')} lines, "
        f"{plan.get('error_rate', 0) * 100:g} % of Bitrix24 requests failed on purpose, one "
        f"{plan.get('outage_seconds', '?'):g} s outage, {len(plan.get('disconnects', []))} AMI/ARI disconnects, one "
        f"`kill -9` and restart; one ring is {plan.get('ring_seconds', '?'):g} s and the portal's rate is scaled to "
        "match (the call centre runs faster than life, the bucket in proportion).",
        "",
        "| figure | value |",
        "|---|--:|",
        *(f"| {LABELS.get(key, key)} | {_value(value)} |" for key, value in figures.items() if key in LABELS),
        "",
    ]
    return lines


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
