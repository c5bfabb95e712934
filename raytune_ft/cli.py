"""The `raytune-ft` command.

    raytune-ft validate jobs/quickstart.yaml     # checks the spec; starts nothing
    raytune-ft run jobs/quickstart.yaml          # embedded local Ray unless --address is given
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Compare fine-tuning strategies on Ray.")

EXIT_BAD_INPUT = 2


def _load(spec: Path):
    from raytune_ft.spec import SpecError, load_job

    try:
        return load_job(spec)
    except SpecError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
def validate(spec: Annotated[Path, typer.Argument(help="job spec YAML")]):
    """Check a job spec and list every problem with its field path. Exit 2 if there are any."""
    job = _load(spec)
    n = len(job.strategies)
    typer.echo(f"{spec}: ok ({job.model.source} {job.model.name}, data {job.data.source}, {n} strategies: "
               f"{', '.join(s.name for s in job.strategies)}; search {job.search.algorithm} x "
               f"{job.search.num_samples}, scheduler {job.search.scheduler.name})")


@app.command()
def run(
    spec: Annotated[Path, typer.Argument(help="job spec YAML")],
    address: Annotated[Optional[str], typer.Option(help="attach to a running Ray cluster (default: a local one)")] = None,
    run_dir: Annotated[Optional[Path], typer.Option(help="run folder (default: <output_dir>/<name>-<time>)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show Ray's own logs")] = False,
):
    """Run the strategy comparison and write trials.parquet and strategies.parquet."""
    import yaml

    from raytune_ft.spec import InputError

    job = _load(spec)
    run_dir = run_dir or job.output_dir / f"{job.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if run_dir.exists() and any(run_dir.iterdir()):
        typer.echo(f"{run_dir} already holds a run: choose another --run-dir (nothing was overwritten)", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "job.yaml").write_text(yaml.safe_dump(job.resolved(), sort_keys=False))
    typer.echo(f"run {run_dir.name}: folder {run_dir}")
    from raytune_ft.driver import run_sweep

    started = time.monotonic()
    try:
        rows = run_sweep(job, run_dir, address=address, verbose=verbose,
                         printer=lambda line: print(line, flush=True))
    except InputError as e:
        typer.echo(f"bad input, nothing was trained: {e}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    print_leaderboard(run_dir, job.search.metric)
    typer.echo(f"done in {time.monotonic() - started:.0f}s: {run_dir / 'trials.parquet'}, "
               f"{run_dir / 'strategies.parquet'}, {run_dir / 'job.yaml'}")
    if not rows or all(r["status"] == "error" for r in rows):
        errors = {r["error"].splitlines()[-1] for r in rows if r["error"]}
        typer.echo("every trial failed: " + "; ".join(sorted(errors))[:2000], err=True)
        raise typer.Exit(1)


def print_leaderboard(run_dir: Path, metric: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from raytune_ft.results import read_table

    path = run_dir / "strategies.parquet"
    if not path.exists():
        return
    table = Table(title=f"strategies by best {metric}")
    for col in ("strategy", "best", "mean ± std", "trials", "done / stopped / failed", "trainable", "compute s"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    for r in read_table(path):
        table.add_row(
            r["strategy"], fmt(r["best_score"]), f"{fmt(r['mean_score'])} ± {fmt(r['std_score'])}", str(r["trials"]),
            f"{r['completed']} / {r['stopped_early']} / {r['errored']}",
            "-" if r["trainable_fraction"] is None else f"{r['trainable_fraction']:.2%}",
            f"{r['compute_seconds']:.0f}")
    Console(width=max(100, Console().width), force_terminal=sys.stdout.isatty()).print(table)


if __name__ == "__main__":
    app()
