"""Tables on the terminal, with rich: no vertical rules, two spaces between columns, the title and notes as
paragraphs wrapped at the console's width. Default tables are printed at most 80 characters wide (WIDTH); a
table of the user's own columns may use the whole terminal."""
from __future__ import annotations

import sys

from raytune_ft.report.views import WIDTH


def console(width: int | None = WIDTH):
    """A console for standard output at most `width` characters wide (None: the terminal's width); colours
    and bold only on a terminal."""
    from rich.console import Console

    terminal = Console()
    return Console(width=min(width, terminal.width) if width else terminal.width,
                   force_terminal=sys.stdout.isatty(), highlight=False)


def print_table(out, title: str | None, headers: list[str], rows: list[list[str]], *, notes=(),
                right: list[bool] | None = None, bold: str | None = None) -> None:
    """A table: the columns `right` says right-aligned (numbers; by default all but the first), the others
    left-aligned (names); a row whose first cell is `bold` in bold; each note a paragraph below it."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    if title:
        out.print(Text(title, style="bold"))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for i, h in enumerate(headers):
        table.add_column(Text(h), justify="right" if (right[i] if right else i > 0) else "left", overflow="fold")
    for cells in rows:
        table.add_row(*(Text(c) for c in cells), style="bold" if bold is not None and cells[0] == bold else None)
    out.print(table)
    for note in notes:
        out.print(Text(note))


def print_board(out, board, said: set | None = None) -> None:
    """A leaderboard (report/leaderboard.py's Board): the best strategy in bold, its notes below (those not in
    `said` already, the notes printed under the boards before it: each note once); numbers right-aligned."""
    notes = [n for n in board.notes if n not in (said if said is not None else ())]
    print_table(out, board.title, board.header, board.rows, notes=notes, bold=board.best,
                right=[i > 0 and all(_numeric(r[i]) for r in board.rows) for i in range(len(board.header))])
    if said is not None:
        said.update(notes)
    out.print()


def _numeric(text: str) -> bool:
    """A cell of numbers: '0.9120 ± 0.0100', '[0.90, 0.93]', '+0.0100', '7 / 7', '1,234', or '-'."""
    return text == "-" or text[:1] in "0123456789+-[" and not any(c.isalpha() for c in text)
