"""``b24-bridge demo``: the scripted day in ``--fast`` mode ends with every call matching, and a call that does not
match what Bitrix24 holds turns the exit status to 1."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from bridge.sim.demo import run_demo
from bridge.sim.scenarios import ANSWERED_AT_ONCE, DAY, FAST, Act


def quiet_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=220), out


async def test_the_fast_day_ends_with_every_call_matching(tmp_path: Path) -> None:
    console, out = quiet_console()
    assert await run_demo(FAST, console=console, workdir=tmp_path) == 0
    text = out.getvalue()
    scenarios = [sc for act in DAY for sc in act.scenarios]
    assert len(scenarios) >= 12
    for number, scenario in enumerate(scenarios, 1):
        row = next(line for line in text.splitlines() if line.startswith(f"│ {number:<2} │ {scenario.name} "))
        assert row.rstrip(" │").endswith("match"), row
    assert "every call matches" in text


async def test_a_call_that_does_not_match_is_shown_and_fails_the_demo(tmp_path: Path) -> None:
    wrong = replace(ANSWERED_AT_ONCE, expect=lambda p: replace(ANSWERED_AT_ONCE.expect(p), user=12))
    console, out = quiet_console()
    assert await run_demo(FAST, day=(Act((wrong,)),), console=console, workdir=tmp_path, settle_seconds=1) == 1
    text = out.getvalue()
    assert "USER_ID 11, expected 12" in text and "1 call(s) do not match" in text
