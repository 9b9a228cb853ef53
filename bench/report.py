"""The results table: both modes side by side, the targets and whether b24-bridge meets them (rich and Markdown)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.table import Table

from bench.core import CoreSpeed
from bench.load import Saturation, Steady
from bench.memory import Memory
from bench.replay import Replay
from bench.two_bridges import TwoBridges
from bench.walk import Idle

NOT_REACHED = "NOT REACHED"
OURS = "b24-bridge (batched, paced)"
NAIVE = "one command per request, no pacing"


@dataclass(frozen=True)
class Target:
    text: str
    holds: Callable[[float], bool]

    def check(self, value: float | None) -> bool | None:
        return None if value is None or math.isnan(value) else self.holds(value)


def at_least(limit: float, text: str) -> Target:
    return Target(text, lambda value: operator.ge(value, limit))


def at_most(limit: float, text: str) -> Target:
    return Target(text, lambda value: operator.le(value, limit))


@dataclass(frozen=True)
class Row:
    figure: str
    ours: str
    naive: str
    target: Target | None = None
    value: float | None = None
    """Our number the target is checked against."""
    reached: bool = True
    """Our phase reached the load it describes (False: its figures say nothing about the target)."""

    @property
    def verdict(self) -> str:
        if not self.reached:
            return NOT_REACHED
        met = self.target.check(self.value) if self.target is not None else None
        return "" if met is None else ("pass" if met else "FAIL")


@dataclass
class Results:
    sizes: str
    saturation: dict[str, Saturation] = field(default_factory=dict)
    steady: dict[str, Steady] = field(default_factory=dict)
    memory: dict[str, Memory] = field(default_factory=dict)
    replay: dict[str, Replay] = field(default_factory=dict)
    core: CoreSpeed | None = None
    walk: Steady | None = None
    idle: Idle | None = None
    two_bridges: TwoBridges | None = None
    notes: list[str] = field(default_factory=list)


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f} ms"


def _503s(results: Results, mode: str) -> int:
    """503 answers over every phase of ``mode`` that ran (whole phases, not only their measured windows)."""
    phases = (results.saturation, results.steady, results.memory, results.replay)
    refused = sum(phase[mode].refused_in_phase for phase in phases if mode in phase)  # type: ignore[attr-defined]
    return refused + (results.walk.refused_in_phase if results.walk is not None and mode == "paced" else 0)


def _short(cell: str, reached: bool, shortfall: str) -> str:
    """``cell``, or ``NOT REACHED (shortfall): cell`` for a phase short of its load."""
    return cell if reached else f"{NOT_REACHED} ({shortfall}): {cell}"


def _steady_cell(steady: Steady, cell: str) -> str:
    low = min(steady.active)
    return _short(cell, steady.reached, f"{low:,} of {steady.target_calls:,} calls in progress")


def _saturation_cell(sat: Saturation, cell: str) -> str:
    return _short(cell, sat.reached, "the portal's bucket never filled")


def _memory_cell(memory: Memory) -> str:
    cell = f"{memory.per_call_kib:.1f} KiB"
    if memory.active < memory.target_calls and memory.reached:
        cell += f" (with {memory.active:,} calls up)"
    return _short(cell, memory.reached, f"{memory.active:,} of {memory.target_calls:,} calls up")


def _replay_cell(replay: Replay) -> str:
    """Seconds on the bench's clock against the bound on the same clock (the notes give the scale)."""
    ratio = f"{replay.ratio:,.2f}x the {replay.bound_seconds:.1f} s bound"
    if replay.finished:
        return f"{replay.seconds:.1f} s = {ratio}"
    return (f"{replay.replayed:,} of {replay.calls:,} in {replay.seconds:.0f} s, "
            f"projected {replay.projected_seconds:,.0f} s = {ratio}")  # fmt: skip


def _two_bridges_value(two: TwoBridges) -> float:
    """Checked only at saturation (else no verdict: the target is about a full portal); any 503 fails it."""
    if two.refused_in_phase:
        return 0.0
    return two.commands_per_request if two.saturated else math.nan


def rows(results: Results) -> list[Row]:
    """Every figure measured, in the tracker's order; a phase that did not run leaves its rows out."""
    out: list[Row] = []
    sat_ours, sat_naive = results.saturation.get("paced"), results.saturation.get("naive")
    if sat_ours and sat_naive:
        out += [
            Row("commands per request (portal saturated)",
                _saturation_cell(sat_ours, f"{sat_ours.commands_per_request:.1f}"),
                _saturation_cell(sat_naive, f"{sat_naive.commands_per_request:.2f}"), at_least(45, ">= 45"),
                sat_ours.commands_per_request, sat_ours.reached),
            Row(f"requests in {sat_ours.window:.0f} s saturated (of them 503)",
                f"{sat_ours.requests:,} ({sat_ours.query_limit_exceeded:,})",
                f"{sat_naive.requests:,} ({sat_naive.query_limit_exceeded:,})"),
            Row("mirror throughput / portal ceiling (rate x 50)", f"{sat_ours.throughput:.0%}",
                f"{sat_naive.throughput:.1%}"),
        ]  # fmt: skip
    if results.saturation or results.steady or results.replay or results.walk:
        ours, naive = _503s(results, "paced"), _503s(results, "naive")
        out.append(Row("QUERY_LIMIT_EXCEEDED, all phases", f"{ours:,}", f"{naive:,}", at_most(0, "0"), ours))
    st_ours, st_naive = results.steady.get("paced"), results.steady.get("naive")
    if st_ours and st_naive:
        calls = st_ours.target_calls
        out += [
            Row(f"p50 PBX event -> request on the wire, {calls} calls", _steady_cell(st_ours, _ms(st_ours.p50)),
                _steady_cell(st_naive, _ms(st_naive.p50)), reached=st_ours.reached),
            Row(f"p99 PBX event -> request on the wire, {calls} calls", _steady_cell(st_ours, _ms(st_ours.p99)),
                _steady_cell(st_naive, _ms(st_naive.p99)), at_most(20, "<= 20 ms"), st_ours.p99, st_ours.reached),
        ]  # fmt: skip
    if results.core is not None:
        eps = results.core.events_per_second
        out.append(Row("events per second through the core", f"{eps:,.0f}", "(same core)", at_least(5000, ">= 5,000"),
                       eps))  # fmt: skip
    if results.walk is not None:
        walk = results.walk.cpu_ms_per_call
        cell = _steady_cell(results.walk, f"{_ms(walk)} (first call to drained: "
                            f"{_ms(results.walk.whole_cpu_ms_per_call)})")  # fmt: skip
        out.append(Row("CPU per call, walk", cell, "not measured", at_most(10, "<= 10 ms (AsterX ~28 ms)"), walk,
                       results.walk.reached))  # fmt: skip
    if st_ours and st_naive:
        out.append(Row("CPU per call, everybody", _steady_cell(st_ours, _ms(st_ours.cpu_ms_per_call)),
                       _steady_cell(st_naive, _ms(st_naive.cpu_ms_per_call)), reached=st_ours.reached))  # fmt: skip
    if results.idle is not None:
        idle = results.idle.ms_per_second
        out.append(Row("idle CPU (no calls, pull mode)", f"{idle:.2f} ms/s", "not measured", at_most(1, "<= 1 ms/s"),
                       idle))  # fmt: skip
    mem_ours, mem_naive = results.memory.get("paced"), results.memory.get("naive")
    if mem_ours:
        naive_cell = _memory_cell(mem_naive) if mem_naive else "not measured"
        out.append(Row(f"RSS per active call at {mem_ours.target_calls:,} calls", _memory_cell(mem_ours), naive_cell,
                       at_most(20, "<= 20 KiB"), mem_ours.per_call_kib, mem_ours.reached))  # fmt: skip
    rp_ours, rp_naive = results.replay.get("paced"), results.replay.get("naive")
    if rp_ours:
        naive_cell = _replay_cell(rp_naive) if rp_naive else "not measured"
        out.append(Row(f"replay of {rp_ours.calls:,} journaled calls", _replay_cell(rp_ours), naive_cell,
                       at_most(1.1, "<= 1.1x bound"), rp_ours.ratio))  # fmt: skip
    two = results.two_bridges
    if two is not None:
        cell = f"{two.commands_per_request:.1f} ({two.query_limit_exceeded:,} x 503)"
        if not two.saturated:
            cell += ", portal not saturated"
        out.append(Row("two bridges, one PostgreSQL: commands per request (503s)", cell, "(not measured)",
                       at_least(45, ">= 45, 0 x 503"),
                       _two_bridges_value(two)))  # fmt: skip
    return out


def rich_table(results: Results) -> Table:
    table = Table(title=f"b24-bridge benchmarks ({results.sizes} run)", show_lines=False)
    for name, justify in (("figure", "left"), (OURS, "right"), (NAIVE, "right"), ("target", "right"),
                          ("", "center")):  # fmt: skip
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows(results):
        verdict = {"pass": "[green]pass", "FAIL": "[bold red]FAIL", NOT_REACHED: f"[bold yellow]{NOT_REACHED}"}.get(
            row.verdict, ""
        )
        table.add_row(row.figure, row.ours, row.naive, row.target.text if row.target else "", verdict)
    return table


def markdown_table(results: Results) -> str:
    lines = [f"| figure | {OURS} | {NAIVE} | target | |", "|---|--:|--:|--:|:-:|"]
    for row in rows(results):
        target = row.target.text if row.target else ""
        lines.append(f"| {row.figure} | {row.ours} | {row.naive} | {target} | {row.verdict} |")
    return "\n".join(lines)
