"""Commands on a finished (or running) run's tables: the report, the tables, two runs compared, and
starter specs."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from raytune_ft.cli.app import app
from raytune_ft.errors import UserError
from raytune_ft.layout import RunLayout


@app.command()
def report(
    run: Annotated[str, typer.Argument(help="run folder, or run id under runs/")],
    output: Annotated[Optional[Path], typer.Option(help="folder for report.html and the PNGs (default: RUN/report)")] = None,
):
    """Write a self-contained HTML report of a run, and its figures as PNG files."""
    from raytune_ft.report.page import write_report

    path = write_report(find_run(run), output)
    typer.echo(f"wrote {path} (figures beside it)")


def print_leaderboard(run_dir: Path, metric: str) -> None:
    """The leaderboard `run` prints at its end: the confirmed one per train size (a run with a confirm stage), or
    the search's table, each with the notes that say what its numbers support."""
    from rich.console import Console
    from rich.table import Table

    from raytune_ft.metric import mode_of
    from raytune_ft.report.leaderboard import boards, has_confirm, search_board
    from raytune_ft.results.tables import read_table

    layout = RunLayout(run_dir)
    if not layout.strategies.exists():
        return
    console = Console(width=max(120, Console().width), force_terminal=sys.stdout.isatty())
    rows = read_table(layout.strategies)
    if has_confirm(rows):
        trials = read_table(layout.trials) if layout.trials.exists() else []
        shown = boards(rows, trials, metric, mode_of(metric, "max"))
    else:
        shown = [search_board(rows, metric)]
    for board in shown:
        table = Table(title=board.title, caption="\n".join(board.notes), caption_justify="left")
        for i, col in enumerate(board.header):  # names and numbers whole; the headers break where they say
            table.add_column(col, justify="right" if i else "left", no_wrap=True)
        for cells in board.rows:
            table.add_row(*cells, style="bold" if cells[0] == board.best else None)
        console.print(table)


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
    raise UserError(f"{run}: no run folder with a trials.parquet here or under runs/")


@app.command()
def results(
    run: Annotated[str, typer.Argument(help="run folder, or run id under runs/")],
    table: Annotated[str, typer.Option(help="strategies | trials")] = "strategies",
    strategy: Annotated[Optional[str], typer.Option(help="only this strategy's rows")] = None,
    sort: Annotated[Optional[str], typer.Option(help="sort by this column (descending)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json | parquet")] = "table",
    output: Annotated[Optional[Path], typer.Option(help="write here instead of standard output")] = None,
):
    """Print (or export) a run's strategy or trial table. A run with a confirm stage prints, by default, its
    leaderboard (search and confirmed test scores, per train size); any option prints the table's columns."""
    import pandas as pd

    if table not in ("strategies", "trials") or fmt not in ("table", "csv", "json", "parquet"):
        raise UserError("--table is strategies or trials; --format is table, csv, json or parquet")
    run_dir = find_run(run)
    df = pd.read_parquet(run_dir / f"{table}.parquet")
    if (table, fmt, strategy, sort, output) == ("strategies", "table", None, None, None) \
            and "confirm_mean" in df and df["confirm_mean"].notna().any():
        print_leaderboard(run_dir, job_metric(run_dir))
        return
    if strategy:
        df = df[df["strategy"] == strategy]
    if sort:
        if sort not in df.columns:
            raise UserError(f"--sort {sort}: no such column; columns: {', '.join(df.columns)}")
        df = df.sort_values(sort, ascending=False)
    if fmt == "parquet":
        if output is None:
            raise UserError("--format parquet needs --output FILE")
        df.to_parquet(output, index=False)
        return
    text = {"csv": lambda: df.to_csv(index=False), "json": lambda: df.to_json(orient="records", indent=1),
            "table": lambda: df.to_string(index=False)}[fmt]()
    if output:
        output.write_text(text)
    else:
        typer.echo(text)


@app.command()
def compare(run_a: Annotated[str, typer.Argument()], run_b: Annotated[str, typer.Argument()]):
    """Two runs' strategy tables side by side: best score, mean, trials, compute, and the change."""
    import pandas as pd

    a, b = (pd.read_parquet(RunLayout(find_run(r)).strategies) for r in (run_a, run_b))
    cols = ["strategy", "best_score", "mean_score", "trials", "compute_seconds"]
    merged = a[cols].merge(b[cols], on="strategy", how="outer", suffixes=(" A", " B"))
    merged["best Δ (B-A)"] = merged["best_score B"] - merged["best_score A"]
    typer.echo(f"A = {run_a}\nB = {run_b}")
    typer.echo(merged.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


@app.command()
def init(
    kind: Annotated[str, typer.Option(help="vision | text")] = "vision",
    output: Annotated[Path, typer.Option(help="where to write the spec")] = Path("job.yaml"),
):
    """Write a commented starter job spec for a vision or a text task."""
    from importlib.resources import files

    if kind not in ("vision", "text"):
        raise UserError("--kind is vision or text")
    if output.exists():
        raise UserError(f"{output} exists: nothing was overwritten; pass another --output")
    output.write_text(files("raytune_ft").joinpath("templates", f"{kind}.yaml").read_text())
    typer.echo(f"wrote {output}: edit the data paths, then raytune-ft validate {output}")
