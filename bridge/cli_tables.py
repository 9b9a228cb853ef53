"""Tables the CLI prints: boxed and folded to the terminal's width for a person, one line per row with every value
in full when stdout is a pipe or a file (``grep``, ``less -S``, ``awk``), so ids are never cut or wrapped."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

Cell = str | Text


def _plain(cell: Cell) -> str:
    text = cell.plain if isinstance(cell, Text) else cell
    return "; ".join(part.strip() for part in text.splitlines() if part.strip()) or "-"


def plain_lines(columns: Sequence[str], rows: Sequence[Sequence[Cell]]) -> list[str]:
    """Columns padded to their widest value (the last one unpadded); a multi-line cell joined with ``; ``;
    an empty cell shown as ``-`` so that every row has as many fields as the header."""
    cells = [[_plain(c) for c in row] for row in rows]
    header = [c.replace(" ", "_") for c in columns]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(columns) - 1)]
    return ["  ".join([*(v.ljust(w) for v, w in zip(r, widths, strict=False)), r[-1]]) for r in [header, *cells]]


def print_table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    out: TextIO | None = None,
    lines: bool = False,
) -> None:
    stream = out or sys.stdout
    console = Console(file=stream)
    if not console.is_terminal:
        print(f"# {title}", file=stream)
        for line in plain_lines(columns, rows):
            print(line, file=stream)
        return
    table = Table(title=title, show_lines=lines)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(c) if isinstance(c, str) else c for c in row))  # values are data, never markup
    console.print(table)
