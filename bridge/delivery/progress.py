"""Progress of a replay on stderr: a rich bar with rate and ETA on a terminal, one plain line per call otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

Advance = Callable[[str, str], None]
"""Called once per call: (EXTERNAL_CALL_ID, outcome)."""


class RateColumn(ProgressColumn):
    """Calls per second so far."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- calls/s" if speed is None else f"{speed:.1f} calls/s", style="progress.data.speed")


@contextmanager
def progress_for(total: int, verb: str) -> Iterator[Advance]:
    console = Console(stderr=True)
    if not console.is_terminal:
        done = 0

        def plain(leg: str, status: str) -> None:
            nonlocal done
            done += 1
            print(f"{verb} {done}/{total} {leg}: {status}", file=sys.stderr, flush=True)

        yield plain
        return
    columns = (TextColumn(f"{verb} calls"), BarColumn(), MofNCompleteColumn(), RateColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(verb, total=total)

        def bar(_leg: str, _status: str) -> None:
            progress.advance(task)

        yield bar
