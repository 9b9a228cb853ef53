"""``python -m bench [--quick] [--write BENCHMARKS.md] [--only PHASE,...] [--profile DIR]``: measure, print one
table, optionally write it with the machine's details into a Markdown file. Not part of ``make test``.

``--only cpu`` runs the CPU phases alone (``steady``: the everybody load, ``walk``, ``idle``), ``--only load`` the
live load phases (``saturation``, ``steady``); ``--profile DIR``
makes each daemon child write a cProfile of itself from ready to stop into ``DIR/<workload>-<mode>.pstats``
(``bench/README.md`` shows how to read it, and how to sample a child with py-spy instead)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TypeVar

import structlog
from rich.console import Console

from bench.core import core_speed
from bench.document import document, notes
from bench.load import saturation, steady
from bench.machine import OtherLoad, busy, machine
from bench.memory import memory
from bench.replay import replay
from bench.report import Results, rich_table
from bench.sizes import FULL, QUICK, Sizes
from bench.stack import PROFILE_ENV
from bench.two_bridges import two_bridges
from bench.walk import idle, walk

PHASES = ("core", "saturation", "steady", "walk", "idle", "memory", "replay", "two-bridges")
GROUPS = {"cpu": ("steady", "walk", "idle"), "load": ("saturation", "steady")}
SLOW_PHASES = {"two-bridges"}
"""Left out of ``--quick`` unless asked for with ``--only`` (a real PostgreSQL and a real bucket: minutes)."""
MODES = ("paced", "naive")
T = TypeVar("T")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (under two minutes)")
    parser.add_argument("--write", metavar="PATH", help="also write the results and the machine into PATH (Markdown)")
    parser.add_argument(
        "--only",
        metavar="PHASES",
        help=f"comma-separated subset of {','.join(PHASES)}; "
        + "; ".join(f"{group} = {','.join(members)}" for group, members in GROUPS.items()),
    )
    parser.add_argument("--profile", metavar="DIR", help="cProfile each daemon child into DIR/<workload>-<mode>.pstats")
    args = parser.parse_args(argv)
    every = [p for p in PHASES if not (args.quick and p in SLOW_PHASES)]
    named = [p.strip() for p in (args.only or ",".join(every)).split(",") if p.strip()]
    chosen = [phase for name in named for phase in GROUPS.get(name, (name,))]
    unknown = sorted(set(chosen) - set(PHASES))
    if unknown:
        parser.error(f"unknown phase(s) {', '.join(unknown)}; choose from {', '.join([*PHASES, *GROUPS])}")
    args.phases = chosen
    return args


@contextmanager
def load_generator_gc_paused() -> Iterator[None]:
    """The simulators' garbage collector waits while a phase runs (the daemon's, in its own process, does not)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


async def run(sizes: Sizes, phases: list[str], workdir: Path, say: Callable[[str], None]) -> Results:
    results = Results(sizes.name)

    async def timed(name: str, job: Callable[[], Awaitable[T]]) -> T:
        say(f"{name} ...")
        started = time.monotonic()
        with load_generator_gc_paused():
            value = await job()
        say(f"{name} done in {time.monotonic() - started:.0f} s")
        return value

    if "core" in phases:
        say("core ...")
        results.core = core_speed(sizes.core_seconds)
    for mode in MODES:
        if "saturation" in phases:
            results.saturation[mode] = await timed(
                f"saturation ({mode})", partial(saturation, workdir / f"saturation-{mode}", mode, sizes)
            )
        if "steady" in phases:
            results.steady[mode] = await timed(
                f"latency and CPU ({mode})", partial(steady, workdir / f"steady-{mode}", mode, sizes)
            )
        if "walk" in phases and mode == "paced":
            results.walk = await timed("CPU per call, walk", partial(walk, workdir / "walk", sizes))
        if "idle" in phases and mode == "paced":
            results.idle = await timed("idle CPU", partial(idle, workdir / "idle", sizes))
        if "memory" in phases:
            results.memory[mode] = await timed(
                f"memory ({mode})", partial(memory, workdir / f"memory-{mode}", mode, sizes)
            )
        if "replay" in phases:
            budget = sizes.naive_replay_budget if mode == "naive" else max(120.0, sizes.replay_calls * 0.05)
            results.replay[mode] = await timed(
                f"replay ({mode})", partial(replay, workdir / "replay", mode, sizes.replay_calls, budget)
            )
    if "two-bridges" in phases:
        results.two_bridges = await timed(
            "two bridges on one PostgreSQL",
            partial(two_bridges, workdir / "two-bridges", sizes.saturation_rate, sizes.saturation_window,
                    max(60.0, sizes.saturation_warmup)),
        )  # fmt: skip
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    progress = Console(stderr=True)

    def say(text: str) -> None:
        progress.log(text)

    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        os.environ[PROFILE_ENV] = str(Path(args.profile).resolve())
    if busy():
        say("[yellow]warning: the machine is busy with something else; the figures will suffer")
    with tempfile.TemporaryDirectory(prefix="b24-bench-") as tmp:
        details = machine(Path(tmp))
        started, others = time.monotonic(), OtherLoad()
        results = asyncio.run(run(sizes, args.phases, Path(tmp), say))
        elapsed = time.monotonic() - started
        details["other processes during the run"] = others.describe()
    say(f"other processes used {details['other processes during the run']} while this ran")
    out = Console() if sys.stdout.isatty() else Console(width=160)  # a pipe or a file gets the whole table
    out.print(rich_table(results))
    for paragraph in notes(results):
        out.print(paragraph, "", sep="\n", markup=False)
    if args.write:
        command = "python -m bench" + (" --quick" if args.quick else "") + f" --write {args.write}"
        if args.only:
            command += f" --only {args.only}"
        Path(args.write).write_text(document(results, details, elapsed, command), encoding="utf-8")
        say(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
