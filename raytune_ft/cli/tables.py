"""Commands on a finished (or running) run's tables: the HTML report, and the leaderboard and tables on the
terminal (80 characters wide by default) or exported.

    raytune-ft results runs/<run>                                  # the leaderboard `run` printed at its end
    raytune-ft results runs/<run> --table trials --strategy lora   # a table: the columns that fit
    raytune-ft results runs/<run> --table trials --columns trial_id,lr,score --sort score
    raytune-ft results runs/<run> --table trials --format csv      # every column
"""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from raytune_ft.cli.app import app
from raytune_ft.errors import UserError
from raytune_ft.layout import RunLayout

RUN_HELP = "run folder, or a run id under runs/"


class TableName(str, Enum):
    strategies = "strategies"
    trials = "trials"
    epochs = "epochs"
    comparisons = "comparisons"
    budget_curves = "budget_curves"
    data_size = "data_size"


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


@app.command()
def report(
    run: Annotated[str, typer.Argument(help=RUN_HELP)],
    output: Annotated[Optional[Path], typer.Option(help="folder for report.html and the PNGs (default: RUN/report)")] = None,
):
    """Write a run's self-contained HTML report and its figures.

    report.html holds everything (figures included); the figures are also written beside it as PNG files.
    """
    from raytune_ft.report.page import write_report

    path = write_report(find_run(run), output)
    typer.echo(f"wrote {path} (figures beside it)")


def print_leaderboard(run_dir: Path, metric: str) -> bool:
    """The leaderboard `run` prints at its end, 80 characters wide: the confirmed one per train size (a run with
    a confirm stage), or the search's table, each with the notes that say what its numbers support. False when
    the run has no strategies.parquet (yet)."""
    from raytune_ft.cli.render import console, print_board
    from raytune_ft.metric import mode_of
    from raytune_ft.report.leaderboard import boards, has_confirm, search_board
    from raytune_ft.results.tables import read_table

    layout = RunLayout(run_dir)
    if not layout.strategies.exists():
        return False
    rows = read_table(layout.strategies)
    if has_confirm(rows):
        trials = read_table(layout.trials) if layout.trials.exists() else []
        shown = boards(rows, trials, metric, mode_of(metric, "max"))
    else:
        shown = [search_board(rows, metric)]
    out, said = console(), set()
    for board in shown:
        print_board(out, board, said)
    return True


def job_metric(run_dir: Path) -> str:
    """The metric the run was ranked by (job.yaml's search.metric), 'score' when the run folder has no job.yaml."""
    import yaml

    path = RunLayout(run_dir).job
    job = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    return job.get("search", {}).get("metric", "score")


def find_run(run: str) -> Path:
    """A run folder: the path itself, or runs/<run>."""
    for candidate in (Path(run), Path("runs") / run):
        if RunLayout(candidate).trials.exists():
            return candidate
    raise UserError(f"{run}: no run folder with a trials.parquet here or under runs/; give the folder "
                    "`raytune-ft run` printed (runs/<name>-<time>)")


@app.command()
def results(
    run: Annotated[str, typer.Argument(help=RUN_HELP)],
    table: Annotated[Optional[TableName], typer.Option(
        help="the table to print (default: the leaderboard `run` printed at its end)")] = None,
    columns: Annotated[Optional[str], typer.Option(
        help="the columns to show, comma-separated, in that order (default: a table's main columns, as many as "
             "fit in 80 characters; with csv / json / parquet: all)")] = None,
    strategy: Annotated[Optional[str], typer.Option(help="only this strategy's rows")] = None,
    sort: Annotated[Optional[str], typer.Option(help="sort by this column, largest first (empty cells last)")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table: for reading; csv, json, parquet: for other "
                                                         "tools (parquet needs --output)")] = Format.table,
    output: Annotated[Optional[Path], typer.Option(help="write to this file instead of standard output")] = None,
):
    """Print a run's leaderboard again, or one of its tables.

    With no option: the leaderboard `run` printed at its end. --table strategies, trials, epochs, comparisons,
    budget_curves or data_size: that table, its main columns in 80 characters (empty cells as '-'); --columns
    for others, --format csv / json / parquet for every column.
    """
    run_dir = find_run(run)
    if (table, columns, strategy, sort, output, fmt) == (None, None, None, None, None, Format.table):
        if not print_leaderboard(run_dir, job_metric(run_dir)):
            raise UserError(f"{run_dir}: no strategies.parquet yet (it is written when the first trials end); "
                            f"its trials so far: raytune-ft results {run} --table trials")
        return
    name = (table or TableName.strategies).value
    path = run_dir / f"{name}.parquet"
    if not path.exists():
        have = sorted(t.value for t in TableName if (run_dir / f"{t.value}.parquet").exists())
        raise UserError(f"--table {name}: {run_dir} has no {name}.parquet; its tables: {', '.join(have)}")
    rows, names = _rows(path)
    chosen = _columns(columns, names, path) if columns else None
    if strategy is not None:
        rows = _only(rows, names, strategy, path)
    if sort:
        if sort not in names:
            raise UserError(f"--sort {sort}: {path.name} has no such column; its columns: {', '.join(names)}")
        from raytune_ft.results.tables import num

        rows = sorted((r for r in rows if num(r.get(sort)) is not None), key=lambda r: r[sort], reverse=True) \
            + [r for r in rows if num(r.get(sort)) is None]
    if fmt is Format.table:
        _print_rows(rows, names, name, chosen, output, title=f"{name} of {run_dir.name}: {len(rows)} rows")
    else:
        _export(rows, chosen or names, path, fmt, output)


def _rows(path: Path) -> tuple[list[dict], list[str]]:
    import pyarrow.parquet as pq

    data = pq.read_table(path)
    return data.to_pylist(), data.column_names


def _columns(columns: str, names: list[str], path: Path) -> list[str]:
    """--columns a,b,c as a list; an unknown name refused, naming it and the table's columns."""
    import difflib

    chosen = [c.strip() for c in columns.split(",") if c.strip()]
    for c in chosen:
        if c not in names:
            near = difflib.get_close_matches(c, names, n=1)
            raise UserError(f"--columns {c}: {path.name} has no such column" + (f" (did you mean {near[0]}?)" if near
                            else "") + f"; its columns: {', '.join(names)}")
    if not chosen:
        raise UserError(f"--columns: no column named; its columns: {', '.join(names)}")
    return chosen


def _only(rows: list[dict], names: list[str], strategy: str, path: Path) -> list[dict]:
    """One strategy's rows (comparisons: those where it is A); an unknown strategy refused, naming them all."""
    col = "strategy" if "strategy" in names else "strategy_a" if "strategy_a" in names else None
    if col is None:
        raise UserError(f"--strategy: {path.name} has no strategy column")
    known = list(dict.fromkeys(r[col] for r in rows if r.get(col) is not None))
    if strategy not in known:
        raise UserError(f"--strategy {strategy}: no such strategy in this run; its strategies: {', '.join(known)}")
    return [r for r in rows if r.get(col) == strategy]


def _print_rows(rows: list[dict], names: list[str], table: str, chosen: Optional[list[str]],
                output: Optional[Path], title: str) -> None:
    from raytune_ft.cli.render import console, print_table
    from raytune_ft.report.views import table_view

    view = table_view(rows, names, table, chosen)
    notes = [f"in every row: {', '.join(f'{c} {v}' for c, v in view.same.items())}"] if view.same else []
    if chosen is None and len(view.columns) < len(names):
        notes.append(f"{len(view.columns)} of {len(names)} columns" + (
            f" (left out to fit: {', '.join(view.left_out)})" if view.left_out else "") +
            ": choose them with --columns a,b,c; every column with --format csv")
    if output is None:
        out = console(None if chosen else 80)
        print_table(out, title, view.headers, view.rows, notes=notes, right=view.right)
        return
    from rich.console import Console

    with output.open("w") as f:
        print_table(Console(file=f, width=200 if chosen else 80), title, view.headers, view.rows, notes=notes,
                    right=view.right)


def _export(rows: list[dict], columns: list[str], path: Path, fmt: Format, output: Optional[Path]) -> None:
    import pandas as pd

    df = pd.DataFrame(rows, columns=columns) if rows else pd.read_parquet(path, columns=columns).iloc[:0]
    if fmt is Format.parquet:
        if output is None:
            raise UserError("--format parquet needs --output FILE")
        df.to_parquet(output, index=False)
        return
    text = df.to_csv(index=False) if fmt is Format.csv else df.to_json(orient="records", indent=1, date_format="iso")
    if output:
        output.write_text(text)
    else:
        typer.echo(text.rstrip("\n"))
