"""How each figure was measured (printed under the table) and ``BENCHMARKS.md`` (``python -m bench --write``)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

from bench.chaos_section import chaos_section
from bench.core import CoreSpeed
from bench.load import REACHED, SATURATION_LEAD, SATURATION_TALK, Saturation, Steady
from bench.memory import SETTLE_TIMEOUT, Memory
from bench.replay import Replay
from bench.report import NAIVE, NOT_REACHED, OURS, Results, markdown_table
from bench.stack import ANSWER_AFTER
from bench.two_bridges import TwoBridges
from bench.walk import WALK_RING, Idle

SETUP = (
    "The daemon is the production one (`bridge.daemon.Daemon`, the stage's config: the built-in call centre with "
    "call recording off, `register_timeout` 5 s, JSON logs at info into a file) in a child process of its own, so "
    "its CPU time and RSS are its own; both simulators run in the bench's process and speak the real protocols over "
    "127.0.0.1. The bench's process pauses its own garbage collector during a phase so that the load generator's "
    "pauses do not count against the daemon. A real agent takes one call at a time (a phone in use is busy for "
    "every other call), so each call in progress has agents of its own: the config gets a line per group of agents, "
    "routed to the group's queue (no CRM lookup), and a call goes to a group with no call in progress; the agents "
    f"answer after {ANSWER_AFTER:g} s. A phase that falls short of the load it describes (calls in progress below "
    f"{REACHED:.0%} of its target, or a saturation whose portal bucket never filled) reads {NOT_REACHED} instead of "
    "a verdict. "
    f"*{NAIVE}* is the same client with a limiter that never waits and one `call()` per command instead of "
    "`batch()` (a call's commands in order, different calls concurrently), inside the same delivery loop; the "
    "client's pause after a 503 stays on."
)


def _saturation_note(sat: dict[str, Saturation]) -> str:
    first = next(iter(sat.values()))
    details = "; ".join(
        f"{mode}: {s.commands:,} commands in {s.requests:,} requests, {s.placed:,} calls placed (at most "
        f"{s.peak:,} in progress)"
        + (f", {s.skipped:,} not placed for want of a free group" if s.skipped else "")
        + ("" if s.saturated else " (the bucket never filled: not saturated)")
        for mode, s in sat.items()
    )
    return (
        f"**Saturation** ({first.bucket.describe()}): {first.offered_rate:g} calls/s offered, each to a pair of "
        f"agents of its own ringing at once (`everybody`), talking {SATURATION_TALK:g} s (about 4 commands each "
        "while a call's register goes out within 5 s, 2 when it is mirrored offline after its end, plus a "
        "statistics check if its register may have arrived; a pair makes the same commands as four agents, and "
        "fewer agents leave more of the bucket to the calls: the directory's pages and the availability checks, a "
        "batch per 250 agents (49 with time tracking) every 30 s, are requests of their own and count here), "
        f"{first.window:.0f} s counted "
        f"from the moment the load had the portal's bucket full (not before {SATURATION_LEAD:g} s of load: the "
        "daemon's start-up requests fill it alone); the ceiling is rate x 50 = "
        f"{first.bucket.ceiling:g} commands/s; commands are those the portal carried out, statistics checks "
        f"included. {details}."
    )


def _nth_worst(count: int) -> str:
    """Which sample the nearest-rank p99 of ``count`` samples is, counted from the worst."""
    nth = count - math.ceil(0.99 * count) + 1
    return "the worst" if nth <= 1 else f"the {nth}{'nd' if nth == 2 else 'rd' if nth == 3 else 'th'}-worst"


def _steady_note(steady: dict[str, Steady]) -> str:
    first = next(iter(steady.values()))
    details = "; ".join(
        f"{mode}: {len(s.samples_ms):,} pairs ({s.unmatched} unmatched), {s.calls_ended} calls ended, daemon "
        f"active {s.active[0]}..{s.active[1]}"
        + (f", {s.skipped:,} calls not placed for want of a free group" if s.skipped else "")
        + f", {s.requests:,} requests, event-loop lag p99 "
        f"{s.stalls.get('lag_p99_ms', 0):.0f} ms / max {s.stalls.get('lag_max_ms', 0):.0f} ms, longest GC "
        f"{s.stalls.get('gc_max_ms', 0):.0f} ms, slowest journal append {s.stalls.get('append_max_ms', 0):.0f} ms, "
        f"slowest journal fsync {s.stalls.get('sync_max_ms', 0):.0f} ms"
        for mode, s in steady.items()
    )
    return (
        f"**Latency and CPU** ({first.bucket.describe()}, so that the portal is not the limit): "
        f"{first.target_calls} calls in progress, each to a group of four agents of its own ringing at once "
        "(`everybody`: the first to answer takes the call) and lasting about the hold time; after a ramp of one hold "
        "time, "
        "one hold time is measured. Pairs: a caller entering Stasis -> that call's `register`, its hang-up -> its "
        "`finish`, stamped when the PBX simulator hands the event to the ARI socket and when the portal simulator "
        f"starts the command. With {len(first.samples_ms):,} pairs, p99 is {_nth_worst(len(first.samples_ms))}: one "
        "stall of the daemon's event loop (a garbage collection, a slow commit of the journal) delays every pair in "
        "flight, so this figure moves from run to run with the machine's other load; the loop's lag, the longest GC "
        "pause (the daemon freezes its start-up objects out of collection: `bridge.ops.gc_tuning`), the slowest "
        "journal append and the slowest journal fsync (in the journal's worker thread; nothing waits for it) over the "
        "window are given below (the lag is timed by the bench's watcher in the daemon's process, a 100 Hz timer whose "
        "own CPU, about 7 ms a second measured alone on uvloop, counts in this phase's CPU figure: about 1.5 ms a call "
        "at 200 calls of 45 s). CPU "
        f"is the daemon process's user+system time over the window divided by the calls that ended in it. {details}."
    )


def _walk_note(walk: Steady) -> str:
    return (
        f"**CPU per call, walk** ({walk.bucket.describe()}): {walk.target_calls} calls in progress into `in_order` "
        f"queues of two (each call its own pair of agents, as a real agent takes one call at a time): the first "
        f"member rings one ring ({WALK_RING:g} s) and does not answer, the second answers after {ANSWER_AFTER:g} s "
        "and talks until the call has lasted about the hold time; a ramp of one hold time, then one hold time "
        "measured. CPU is the daemon process's user+system time over the window divided by the calls that ended in "
        "it, with the bench's event-loop lag watcher off (its 100 Hz timer, about 7 ms CPU a second, would count in "
        f"the daemon's CPU; so this phase gives no loop lag): {walk.cpu_seconds:.2f} s for {walk.calls_ended} calls, "
        f"daemon active {walk.active[0]}..{walk.active[1]}, "
        f"{walk.requests:,} requests, p99 PBX event -> request {walk.p99:.1f} ms; of the {walk.placed} calls placed "
        f"over the phase, {walk.answered_second} were finished in Bitrix24 as answered by the second member"
        + (f", {walk.skipped} calls not placed for want of a free pair" if walk.skipped else "")
        + f". Cross-check: from before the first call until every call ended and the journal was empty, "
        f"{walk.whole_cpu_seconds:.2f} s for {walk.placed} calls = {walk.whole_cpu_ms_per_call:.1f} ms a call (the "
        "window's figure leaves out work a loaded machine pushed past its end). The anchor: the Python peer AsterX "
        "costs about 28 ms a call on this workload (issue 14)."
    )


def _idle_note(idle: Idle) -> str:
    return (
        f"**Idle CPU**: the daemon connected to both simulators with no call for {idle.seconds:.0f} s, its Bitrix24 "
        f"events pulled (`event.offline.get` every {idle.poll_interval:g} s: {idle.requests} requests in the "
        "window), the production defaults for AMI/ARI pings and the directory's refresh, the bench's event-loop "
        f"watcher off: {idle.cpu_seconds * 1000:.1f} CPU ms in all."
    )


def _memory_note(memory: dict[str, Memory]) -> str:
    first = next(iter(memory.values()))
    details = "; ".join(
        f"{mode}: {m.baseline_kib / 1024:.1f} MiB idle -> {m.loaded_kib / 1024:.1f} MiB with {m.active:,} calls"
        + ("" if m.active >= m.target_calls else f" (the daemon had not taken them all in {SETTLE_TIMEOUT:g} s)")
        + (f", {m.skipped:,} calls not placed for want of a free agent" if m.skipped else "")
        + ("" if m.settled else " (sampled with a backlog still in the journal)")
        for mode, m in memory.items()
    )
    return (
        f"**Memory** ({first.bucket.describe()}): RSS of the daemon process with {first.target_calls:,} calls "
        "connected, minus its RSS after 20 warm-up calls with none in progress, divided by the calls in progress. "
        f"So many calls talking at once need as many agents: each call has one agent of its own (a queue of one; at "
        "the sample a call of a larger group would hold the same two channels, the caller's and the one agent's who "
        "answered), and the portal and the config have them all, also at the baseline. "
        f"{details}."
    )


def _replay_note(replay: dict[str, Replay]) -> str:
    first = next(iter(replay.values()))
    details = "; ".join(
        f"{mode}: {r.replayed:,}/{r.calls:,} calls in {r.seconds:.1f} s with {r.requests:,} requests "
        f"({r.query_limit_exceeded:,} answered 503); the bucket alone needs {r.paced_seconds:.1f} s for the "
        f"requests it took, {r.paced_seconds / r.bound_seconds if r.bound_seconds else float('nan'):.2f}x the bound"
        for mode, r in replay.items()
    )
    return (
        f"**Replay** ({first.bucket.describe()}): {first.calls:,} ended calls journaled offline as an outage "
        f"leaves them (each register tried once: {first.doubtful:,} timed out, so they may have arrived and are "
        "checked with `voximplant.statistic.get` first; the others were refused before they were sent), mirrored "
        "by the daemon's `Delivery` in a child process (the checks, then `register` SHOW=0 + `finish`). Bound: at "
        f"least {first.min_requests:,} requests ({first.min_commands:,} commands: two a call and the checks, 50 a "
        f"request), the first {first.bucket.burst} at "
        f"once, then {first.bucket.rate:g}/s = {first.bound_seconds:.1f} s on this clock "
        f"({first.bound_seconds * first.bucket.scale:.0f} s on the real portal). The bridge's own CPU does not "
        "speed up with the clock, so on the real portal the ratio lies between what the requests taken need from "
        "the bucket alone and the ratio measured here. A replay still running after its budget is cut short and "
        f"projected at its pace so far. {details}."
    )


def _core_note(core: CoreSpeed) -> str:
    return (
        f"**Core**: `bridge.domain.call.step` alone, one thread, stepping the recorded inputs of {core.calls} whole "
        f"calls of the built-in call centre ({core.steps_per_call:.1f} steps a call) for {core.seconds:.1f} CPU "
        f"seconds: {core.events:,} events."
    )


def notes(results: Results) -> list[str]:
    """One paragraph per phase that ran, with the parameters and the figures behind the table's cells."""
    out = [SETUP]
    if results.saturation:
        out.append(_saturation_note(results.saturation))
    if results.steady:
        out.append(_steady_note(results.steady))
    if results.walk is not None:
        out.append(_walk_note(results.walk))
    if results.idle is not None:
        out.append(_idle_note(results.idle))
    if results.memory:
        out.append(_memory_note(results.memory))
    if results.replay:
        out.append(_replay_note(results.replay))
    if results.core is not None:
        out.append(_core_note(results.core))
    if results.two_bridges is not None:
        out.append(_two_bridges_note(results.two_bridges))
    return [*out, *results.notes]


HISTORY = Path(__file__).with_name("history.md")
"""What each optimisation changed, by hand, newest first: kept in ``bench/`` so that ``--write`` carries it over."""


def history_section(path: Path = HISTORY) -> list[str]:
    """``## History``: the hand-kept list of what changed the figures (nothing when the file is missing)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return []
    return ["## History", "", text, ""] if text else []


def _two_bridges_note(two: TwoBridges) -> str:
    filled = (
        "counted from the moment the portal's bucket was full"
        if two.saturated
        else "the portal's bucket never filled (the delivery leader sent less than the bucket drains), counted "
        "after the wait for it"
    )
    return (
        f"**Two bridges** ({two.bucket.describe()}): two bridges share one PostgreSQL journal (a real server started "
        f"for the run); each journals {two.offered_rate:g} ended calls/s (register + finish: together "
        f"{2 * 2 * two.offered_rate:g} commands/s against a ceiling of {two.bucket.ceiling:g}) and runs its delivery "
        "in a process of its own, competing for the portal's delivery leadership; only the leader sends. "
        f"{two.window:.0f} s {filled}: {two.commands:,} commands in {two.requests:,} requests, "
        f"{two.query_limit_exceeded:,} answered 503 ({two.refused_in_phase:,} over the whole phase), "
        f"{two.journaled:,} calls journaled."
    )


def document(results: Results, machine: dict[str, str], elapsed: float, command: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{command}` on {when}; this {results.sizes} run took {elapsed / 60:.1f} minutes. "
        "`make bench` runs the same and prints the table; `python -m bench --quick` is a smaller run (under two "
        f"minutes). The targets apply to *{OURS}*; the other column is the comparison.",
        "",
        "## Machine",
        "",
        *(f"- {label}: {value}" for label, value in machine.items()),
        "",
        "## Results",
        "",
        markdown_table(results),
        "",
        "## How each figure is measured",
        "",
    ]
    for paragraph in notes(results):
        lines += [paragraph, ""]
    lines += history_section()
    lines += chaos_section()
    return "\n".join(lines)
