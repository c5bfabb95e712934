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


def _check_labels(job):
    """Train's labels, where they can be read alone (a label column, class folder names): each names a
    class, and there are at least 2. The InputError names the file and row."""
    from raytune_ft.data import check_train_labels

    check_train_labels(job.data)


def _warn_about_search(job) -> None:
    """Warnings that do not stop the job (stderr, exit code unchanged): e.g. more trials than a space has points."""
    from raytune_ft.search_checks import repeat_warnings

    for line in repeat_warnings(job):
        typer.echo(line, err=True)


@app.command()
def validate(spec: Annotated[Path, typer.Argument(help="job spec YAML")]):
    """Check a job spec (and train's labels, where they can be read alone) and list every problem with
    its field path. Exit 2 if there are any."""
    from raytune_ft.spec import InputError

    job = _load(spec)
    try:
        _check_labels(job)
    except InputError as e:
        typer.echo(f"{spec}: 1 problem(s)\n  data.train: {e}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    n = len(job.strategies)
    typer.echo(f"{spec}: ok ({job.model.source} {job.model.name}, data {job.data.source}, {n} strategies: "
               f"{', '.join(s.name for s in job.strategies)}; search {job.search.algorithm} x "
               f"{job.search.num_samples}, scheduler {job.search.scheduler.name})")
    _warn_about_search(job)


@app.command()
def run(
    spec: Annotated[Path, typer.Argument(help="job spec YAML")],
    address: Annotated[Optional[str], typer.Option(help="attach to a running Ray cluster (default: a local one)")] = None,
    run_dir: Annotated[Optional[Path], typer.Option(help="run folder (default: <output_dir>/<name>-<time>)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show Ray's own logs")] = False,
):
    """Run the strategy comparison and write trials.parquet and strategies.parquet."""
    import shutil

    import yaml

    from raytune_ft.spec import InputError

    job = _load(spec)
    _warn_about_search(job)
    run_dir = run_dir or job.output_dir / f"{job.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if run_dir.exists() and any(run_dir.iterdir()):
        typer.echo(f"{run_dir} already holds a run: nothing was overwritten. To go on with it after a crash: "
                   f"raytune-ft resume {run_dir}; for a new run, choose another --run-dir", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        _check_labels(job)  # before the folder exists
    except InputError as e:
        typer.echo(f"bad input, nothing was trained: {e}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    made = [d for d in (run_dir, *run_dir.parents) if not d.exists()]  # what this run creates
    run_dir.mkdir(parents=True, exist_ok=True)
    # absolute data / model paths: `resume` reads this file from whatever folder it is started in
    (run_dir / "job.yaml").write_text(yaml.safe_dump(job.portable(), sort_keys=False))
    typer.echo(f"run {run_dir.name}: folder {run_dir}")
    try:
        _sweep(job, run_dir, address=address, verbose=verbose, resume=False)
    except typer.Exit as e:
        if e.exit_code == EXIT_BAD_INPUT and not (run_dir / "ray").exists():
            # refused before any trial: leave no half-made run behind (nor the folders made for it)
            if run_dir in made:
                shutil.rmtree(run_dir, ignore_errors=True)
            else:
                _empty_folder(run_dir)
            for d in made[1:]:
                if d.exists() and not any(d.iterdir()):
                    d.rmdir()
        raise


def _empty_folder(folder: Path) -> None:
    """Remove what a refused run wrote into a --run-dir that existed (empty) before it."""
    import shutil

    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


@app.command()
def resume(
    run: Annotated[Path, typer.Argument(help="the run folder of a sweep whose driver died")],
    address: Annotated[Optional[str], typer.Option(help="attach to a running Ray cluster (default: a local one)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show Ray's own logs")] = False,
):
    """Go on with a sweep whose driver died: finished trials are kept, running ones go on from their
    last epoch, the rest start. The job spec is the one saved in the run folder."""
    from raytune_ft.spec import SpecError, parse_job

    spec = run / "job.yaml"
    if not spec.exists():
        typer.echo(f"{run}: no job.yaml, so not a run folder made by `raytune-ft run`", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        import yaml

        # data prepared (RUN/data/meta.json): nothing reads the raw data files again, so they are not checked
        job = parse_job(yaml.safe_load(spec.read_text()), str(spec), prepared=(run / "data" / "meta.json").exists())
    except SpecError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    typer.echo(f"resuming run {run.name}: folder {run}")
    _sweep(job, run, address=address, verbose=verbose, resume=True)


def _sweep(job, run_dir: Path, *, address: Optional[str], verbose: bool, resume: bool) -> None:
    """Run (or resume) the sweep with a live view on a terminal, plain lines otherwise; then the leaderboard."""
    import contextlib

    from raytune_ft.driver import run_sweep
    from raytune_ft.progress import LiveView
    from raytune_ft.spec import InputError

    started = time.monotonic()
    live = LiveView() if sys.stdout.isatty() and not verbose else None
    try:
        with live or contextlib.nullcontext():
            rows = run_sweep(job, run_dir, address=address, verbose=verbose, resume=resume,
                             printer=live.line if live else (lambda line: print(line, flush=True)),
                             on_update=live.update if live else None)
    except InputError as e:
        typer.echo(f"bad input, nothing was trained: {e}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    print_leaderboard(run_dir, job.search.metric)
    typer.echo(f"done in {time.monotonic() - started:.0f}s: {run_dir / 'trials.parquet'}, "
               f"{run_dir / 'strategies.parquet'}, {run_dir / 'epochs.parquet'}, {run_dir / 'job.yaml'}\n"
               f"report: raytune-ft report {run_dir}")
    if not rows or all(r["status"] == "error" for r in rows):
        reasons = sorted({r["error_reason"] for r in rows if r.get("error_reason")})
        typer.echo("every trial failed: " + "; ".join(reasons)[:2000], err=True)
        raise typer.Exit(1)


@app.command()
def report(
    run: Annotated[str, typer.Argument(help="run folder, or run id under runs/")],
    output: Annotated[Optional[Path], typer.Option(help="folder for report.html and the PNGs (default: RUN/report)")] = None,
):
    """Write a self-contained HTML report of a run, and its figures as PNG files."""
    from raytune_ft.report import write_report

    path = write_report(find_run(run), output)
    typer.echo(f"wrote {path} (figures beside it)")


def print_leaderboard(run_dir: Path, metric: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from raytune_ft.results import read_table

    path = run_dir / "strategies.parquet"
    if not path.exists():
        return
    table = Table(title=f"strategies by best {metric}")
    for col in ("strategy", "best", "mean ± std", "trials", "done / stopped / patience / failed", "trainable",
                "compute s"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    for r in read_table(path):
        table.add_row(
            r["strategy"], fmt(r["best_score"]), f"{fmt(r['mean_score'])} ± {fmt(r['std_score'])}", str(r["trials"]),
            # stopped: by the scheduler; patience: by training.patience (absent from older runs' tables)
            f"{r['completed']} / {r['stopped_early']} / {r.get('stopped_patience') or 0} / {r['errored']}",
            "-" if r["trainable_fraction"] is None else f"{r['trainable_fraction']:.2%}",
            f"{r['compute_seconds']:.0f}")
    Console(width=max(120, Console().width), force_terminal=sys.stdout.isatty()).print(table)


def find_run(run: str) -> Path:
    """A run folder: the path itself, or runs/<run>."""
    for candidate in (Path(run), Path("runs") / run):
        if (candidate / "trials.parquet").exists():
            return candidate
    typer.echo(f"{run}: no run folder with a trials.parquet here or under runs/", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
def results(
    run: Annotated[str, typer.Argument(help="run folder, or run id under runs/")],
    table: Annotated[str, typer.Option(help="strategies | trials")] = "strategies",
    strategy: Annotated[Optional[str], typer.Option(help="only this strategy's rows")] = None,
    sort: Annotated[Optional[str], typer.Option(help="sort by this column (descending)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json | parquet")] = "table",
    output: Annotated[Optional[Path], typer.Option(help="write here instead of standard output")] = None,
):
    """Print (or export) a run's strategy or trial table."""
    import pandas as pd

    if table not in ("strategies", "trials") or fmt not in ("table", "csv", "json", "parquet"):
        typer.echo("--table is strategies or trials; --format is table, csv, json or parquet", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    df = pd.read_parquet(find_run(run) / f"{table}.parquet")
    if strategy:
        df = df[df["strategy"] == strategy]
    if sort:
        if sort not in df.columns:
            typer.echo(f"--sort {sort}: no such column; columns: {', '.join(df.columns)}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT)
        df = df.sort_values(sort, ascending=False)
    if fmt == "parquet":
        if output is None:
            typer.echo("--format parquet needs --output FILE", err=True)
            raise typer.Exit(EXIT_BAD_INPUT)
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

    a, b = (pd.read_parquet(find_run(r) / "strategies.parquet") for r in (run_a, run_b))
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
        typer.echo("--kind is vision or text", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    if output.exists():
        typer.echo(f"{output} exists: nothing was overwritten; pass another --output", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    output.write_text(files("raytune_ft").joinpath("templates", f"{kind}.yaml").read_text())
    typer.echo(f"wrote {output}: edit the data paths, then raytune-ft validate {output}")


# --------------------------------------------------------------------------- a real cluster (raytune_ft/cluster.py)

def _cluster_call(fn, *args, **kwargs):
    """Run a cluster action; a bad spec, address, run id or token exits 2 with its message, no traceback."""
    from raytune_ft.cluster import ClusterError
    from raytune_ft.spec import SpecError

    try:
        return fn(*args, **kwargs)
    except (ClusterError, SpecError) as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(EXIT_BAD_INPUT)


_ADDRESS_HELP = "the cluster's dashboard, e.g. http://127.0.0.1:8265 (default: where RUN was submitted, or RAY_ADDRESS)"


@app.command()
def submit(
    spec: Annotated[Path, typer.Argument(help="job spec YAML")],
    address: Annotated[Optional[str], typer.Option(help="the cluster's dashboard, e.g. http://127.0.0.1:8265 "
                                                       "(through `ray dashboard cluster.yaml`)")] = None,
    storage: Annotated[Optional[str], typer.Option(help="where run folders go: a path every node sees, or "
                                                       "s3:// gs:// file:// (default RAYTUNE_FT_STORAGE)")] = None,
    run_id: Annotated[Optional[str], typer.Option(help="default: <name>-<time>-<4 hex>")] = None,
    project: Annotated[Optional[Path], typer.Option(help="folder shipped as the job's working dir")] = None,
):
    """Submit the sweep to a running Ray cluster (Ray Jobs API) and print its run id at once."""
    import os

    from raytune_ft.cluster import submit as submit_run

    _load(spec)
    address = address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not address:
        typer.echo("give the cluster with --address http://HEAD:8265 (or set RAY_ADDRESS)", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    rid = _cluster_call(submit_run, spec, address, run_id=run_id, storage=storage, project=project)
    typer.echo(rid)
    typer.echo(f"follow it: raytune-ft logs {rid} --follow | raytune-ft status {rid} | raytune-ft stop {rid}",
               err=True)


@app.command()
def status(
    run: Annotated[str, typer.Argument(help="run id printed by submit")],
    address: Annotated[Optional[str], typer.Option(help=_ADDRESS_HELP)] = None,
):
    """A submitted run's state: PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED."""
    from raytune_ft.cluster import status as run_status

    s = _cluster_call(run_status, run, address)
    typer.echo(f"{run}: {s['status']}" + (f"  {s['message']}" if s["message"] else "")
               + (f"\nrun folder: {s['run_dir']}" if s["run_dir"] else ""))


@app.command()
def logs(
    run: Annotated[str, typer.Argument(help="run id printed by submit")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the run ends")] = False,
    address: Annotated[Optional[str], typer.Option(help=_ADDRESS_HELP)] = None,
):
    """A submitted run's driver output (the progress lines and the leaderboard)."""
    from raytune_ft.cluster import logs as run_logs

    _cluster_call(run_logs, run, address, follow=follow)


@app.command()
def stop(
    run: Annotated[str, typer.Argument(help="run id printed by submit")],
    address: Annotated[Optional[str], typer.Option(help=_ADDRESS_HELP)] = None,
):
    """Stop a submitted run and wait until it has ended."""
    from raytune_ft.cluster import stop as stop_run

    s = _cluster_call(stop_run, run, address)
    typer.echo(f"{run}: {s['status']}")


@app.command()
def fetch(
    run: Annotated[str, typer.Argument(help="run id printed by submit")],
    output: Annotated[Optional[Path], typer.Option(help="local folder (default runs/<run id>)")] = None,
    storage: Annotated[Optional[str], typer.Option(help="the run's storage, if not submitted from here")] = None,
    address: Annotated[Optional[str], typer.Option(help=_ADDRESS_HELP)] = None,
):
    """Bring a run's trials.parquet, strategies.parquet, epochs.parquet, job.yaml and reports/ home."""
    from raytune_ft.cluster import fetch as fetch_run

    dest, found = _cluster_call(fetch_run, run, output, address=address, storage=storage)
    typer.echo(f"{dest}: {', '.join(found)}")



if __name__ == "__main__":
    app()
