"""``b24-bridge demo``: both simulators and the real daemon in one process, playing a scripted stretch of a day.

The console tells each call's story, one line per step (who rings, who answers, what Bitrix24 holds), while the
daemon's JSON log lines go to a file (``--log``; a temporary file by default). At the end a table puts, for every
call, what the PBX did (as the daemon saw it) beside what Bitrix24 holds, with a verdict against the script; the
exit status is 1 when any call does not match. ``--keep DIR`` leaves the journal and a config for it in ``DIR``, so
that ``b24-bridge journal`` and ``replay --dry-run`` can be tried on it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO, cast

import structlog
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bridge import logs
from bridge.dispatch import CallSummary
from bridge.sim.scenarios import DAY, FAST, NORMAL, Act, Pace, Scenario
from bridge.sim.stage import AMI_SECRET, ARI_PASSWORD, Stage, stage
from bridge.sim.story import StoryStream
from bridge.sim.verdict import Expect, calls_of, crm_call, same_number, verdict

log = structlog.get_logger(__name__)

RATE, BURST = 10.0, 50
"""The simulated portal's leaky bucket: Bitrix24's 2 requests/s scaled by the same 5x as the rings; burst 50."""
REGISTER_TIMEOUT = 2.0
TABLE_WIDTH = 170
"""Columns of the final table when stdout is not a terminal (a log file, CI)."""
SETTLE_SECONDS = 30.0
"""After the last act, how long Bitrix24 may take to hold everything (replays after the outage included)."""


@dataclass(frozen=True)
class Played:
    scenario: Scenario
    expect: Expect
    error: str = ""


async def play_act(s: Stage, act: Act, pace: Pace) -> list[Played]:
    if act.outage:
        s.crm.set_fault(outage_seconds=pace.outage)
        log.warning("demo.outage", seconds=pace.outage, note="Bitrix24 unreachable: every request fails")
    started = time.monotonic()

    async def one(index: int, scenario: Scenario) -> Played:
        await asyncio.sleep(index * pace.stagger)
        log.info("demo.scenario", scenario=scenario.name, story=scenario.story)
        expect = scenario.expect(pace)
        try:
            crm_call_id = await scenario.play(s, pace)
        except Exception as exc:  # a scenario that could not be played is reported, not fatal to the day
            log.error("demo.scenario_failed", scenario=scenario.name, error=repr(exc))
            return Played(scenario, expect, f"could not be played: {exc!r}")
        return Played(scenario, replace(expect, crm_call_id=crm_call_id) if crm_call_id else expect)

    played = list(await asyncio.gather(*(one(i, sc) for i, sc in enumerate(act.scenarios))))
    if act.outage:
        await asyncio.sleep(max(0.0, started + pace.outage - time.monotonic()))
        log.warning("demo.outage_over", note="Bitrix24 answers again: the journal replays what it missed")
    if act.tidy is not None:
        await act.tidy(s)
    return played


async def settle(s: Stage, played: Sequence[Played], seconds: float) -> None:
    """Wait until Bitrix24 holds what every played call expects, or ``seconds`` pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        state = s.crm.state()
        if all(not p.error and not verdict(p.expect, state) for p in played):
            return
        await asyncio.sleep(0.2)


def _summary(ended: Sequence[CallSummary], phone: str) -> CallSummary | None:
    return next((c for c in reversed(ended) if same_number(c.number, phone)), None)


def build_table(s: Stage, played: Sequence[Played]) -> tuple[Table, int]:
    """The table of every call and the number of calls that do not match."""
    state = s.crm.state()
    table = Table(title="Every call: what the PBX did (as the bridge saw it) beside what Bitrix24 holds")
    for header in ("#", "scenario", "PBX: answered by", "talk s", "outcome", "B24 CALL_ID", "USER_ID", "DURATION",
                   "STATUS_CODE", "record", "cards left shown", "verdict"):  # fmt: skip
        table.add_column(header, overflow="fold")
    mismatches = 0
    for number, p in enumerate(played, 1):
        summary = _summary(s.daemon.dispatcher.ended, p.expect.phone)
        pbx = ("-", "-", "not seen")
        if summary is not None:
            outcome = "answered" if summary.status == "200" else "not answered"
            pbx = (summary.handled_by or "-", str(summary.duration), outcome)
        found = calls_of(state, p.expect.phone)
        crm: tuple[str, ...] = ("none", "-", "-", "-", "-", "-")
        if found:
            c = crm_call(state, found[-1])
            record = f"{c.record_size // 1024} kB" if c.record else "-"
            crm = (_short(c.call_id), str(c.user), str(c.duration), c.status, record, str(c.left_shown or "none"))
        problems = [p.error] if p.error else verdict(p.expect, state)
        mismatches += bool(problems)
        judged = Text("match", style="green") if not problems else Text("; ".join(problems), style="bold red")
        table.add_row(str(number), p.scenario.name, *pbx, *crm, judged)
    return table, mismatches


def _short(call_id: str) -> str:
    """``externalCall.0123abcd....1795306061`` -> ``0123abcd…`` (enough to find it in the logs)."""
    head, _, rest = call_id.partition(".")
    return f"{rest[:8]}…" if head == "externalCall" and rest else call_id


KEPT_CONFIG = """# Written by `b24-bridge demo --keep`: enough for `b24-bridge journal` and
# `b24-bridge replay --dry-run` on the demo's journal. The simulated PBX and portal
# are gone: a replay finds Bitrix24 unreachable.
[asterisk]
ari_password = "{ari}"
ami_secret = "{ami}"

[bitrix24]
webhook_url = "{webhook}"
events = "off"

[journal]
path = "journal.db"
"""


def keep_config(s: Stage, directory: Path) -> Path:
    path = directory / "bridge.toml"
    text = KEPT_CONFIG.format(ari=ARI_PASSWORD, ami=AMI_SECRET, webhook=s.crm.webhook_url)
    path.write_text(text, encoding="utf-8")
    return path


async def run_demo(
    pace: Pace,
    *,
    day: Sequence[Act] = DAY,
    console: Console | None = None,
    workdir: Path | None = None,
    settle_seconds: float = SETTLE_SECONDS,
    keep: bool = False,
) -> int:
    """Play ``day``; ``keep``: ``workdir`` is the operator's and gets a config for the journal left in it."""
    console = console or Console(width=None if Console().is_terminal else TABLE_WIDTH)
    with tempfile.TemporaryDirectory(prefix="b24-bridge-demo-") as tmp:
        root = workdir or Path(tmp)
        started = time.monotonic()
        async with stage(root, ring_seconds=pace.ring, rate=RATE, burst=BURST, register_timeout=REGISTER_TIMEOUT) as s:
            log.info("demo.started", ring_seconds=pace.ring, talk_seconds=pace.talk, outage_seconds=pace.outage,
                     bucket=f"{RATE:g} requests/s, burst {BURST} (Bitrix24's 2/s scaled 5x like the rings)",
                     journal=str(s.settings.journal.path))  # fmt: skip
            played: list[Played] = []
            for act in day:
                played += await play_act(s, act, pace)
            await settle(s, played, settle_seconds)
            table, mismatches = build_table(s, played)
            if keep:
                keep_config(s, root)
        elapsed = time.monotonic() - started
    console.print(table)
    console.print(
        f"{len(played)} calls in {elapsed:.0f} s; rings {pace.ring:g} s, talk {pace.talk:g} s, Bitrix24 outage "
        f"{pace.outage:g} s; simulated portal limit {RATE:g} requests/s, burst {BURST}"
    )
    if mismatches:
        console.print(Text(f"{mismatches} call(s) do not match what Bitrix24 should hold", style="bold red"))
        return 1
    console.print(Text("every call matches", style="bold green"))
    return 0


def callers(day: Sequence[Act], pace: Pace) -> dict[str, str]:
    """The scripted callers' digits -> their scenario's name (the story names calls by it)."""
    return {"".join(ch for ch in sc.expect(pace).phone if ch.isdigit()): sc.name for act in day for sc in act.scenarios}


def main(args: argparse.Namespace) -> int:
    pace = FAST if getattr(args, "fast", False) else NORMAL
    keep = Path(args.keep).resolve() if getattr(args, "keep", None) else None
    if keep is not None:
        if (keep / "journal.db").exists():
            print(f"error: {keep} already holds a demo's journal; give --keep an empty or new directory",
                  file=sys.stderr)  # fmt: skip
            return 2
        keep.mkdir(parents=True, exist_ok=True)
    if getattr(args, "log", None):
        log_path = Path(args.log)
    elif keep is not None:
        log_path = keep / "bridge.log"
    else:
        handle, name = tempfile.mkstemp(prefix="b24-bridge-demo-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    with log_path.open("w", encoding="utf-8") as log_file:
        story = StoryStream(log_file, sys.stdout, callers(DAY, pace))
        logs.configure(json=True, level=getattr(args, "log_level", "info"), stream=cast(TextIO, story))
        code = asyncio.run(run_demo(pace, workdir=keep, keep=keep is not None))
    print(f"The daemon's JSON log lines: {log_path} (follow one call: jq 'select(.call_id == \"...\")' {log_path})")
    if keep is not None:
        config = keep / "bridge.toml"
        print(f"Kept the journal in {keep}; try: b24-bridge journal --config {config}")
        print(f"                          and: b24-bridge replay --dry-run --config {config}")
    return code
