"""Commands that run a sweep here (an embedded local Ray) or on a cluster we are attached to.

    raytune-ft validate jobs/quickstart.yaml     # checks the spec; starts nothing
    raytune-ft run jobs/quickstart.yaml          # embedded local Ray unless --address is given
    raytune-ft resume runs/<run>                 # goes on after the driver died
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from raytune_ft.cli.app import app
from raytune_ft.cli.tables import print_leaderboard
from raytune_ft.errors import UserError
from raytune_ft.layout import RunLayout


def _load(spec: Path):
    from raytune_ft.spec import load_job

    return load_job(spec)


def _check_data(job, spec: Path, validating: bool = False):
    """The data files and folders are there (a path, or an object in a bucket: SpecError naming the
    field); then train's labels, where they can be read alone (a label column, class folder names):
    each names a class, and there are at least 2. A label's error names the file and row: as a problem
    of the spec's data.train field (validate), or as bad input that stopped a run."""
    from raytune_ft.data import check_train_labels
    from raytune_ft.errors import InputError, SpecError
    from raytune_ft.sweep.preflight import check_data

    check_data(job, str(spec))
    try:
        check_train_labels(job.data)
    except InputError as e:
        if validating:  # the field that says where train's labels are: its file, a label column, a set
            fields = type(job.data).model_fields
            field = next((f"data.{f}" for f in ("train", "label_column", "name", "path") if f in fields), "data")
            raise SpecError(str(spec), [(field, str(e))]) from None
        raise InputError(f"bad input, nothing was trained: {e}") from None


def _warn_about_search(job) -> None:
    """Warnings that do not stop the job (stderr, exit code unchanged): e.g. more trials than a space has points."""
    from raytune_ft.sweep.checks import confirm_warnings, repeat_warnings

    for line in repeat_warnings(job) + confirm_warnings(job):
        typer.echo(line, err=True)


@app.command()
def validate(spec: Annotated[Path, typer.Argument(help="the job spec YAML to check")]):
    """Check a job spec, its data and train's labels; start nothing.

    Lists every problem with its field path (a data file or folder that is not there names each place it was
    looked for; one in a bucket is asked), and exits 2 if there are any. Warnings (trials that would repeat a
    configuration, confirm seeds too few for a claim) go to stderr and leave the exit code 0.
    """
    job = _load(spec)
    _check_data(job, spec, validating=True)
    n = len(job.strategies)
    typer.echo(f"{spec}: ok ({job.model.source} {job.model.name}, data {job.data.source}, {n} strategies: "
               f"{', '.join(s.name for s in job.strategies)}; search {job.search.algorithm} x "
               f"{job.search.num_samples}, scheduler {job.search.scheduler.name}"
               + (f"; {len(job.data.train_sizes)} train sizes" if job.data.train_sizes else "")
               + (f"; {job.data.shots}-shot" if job.data.shots else "")
               + (f"; confirm top {job.search.confirm.top_k} x {job.search.confirm.seeds} seeds on test"
                  + (f" (chosen on {job.search.confirm.selection_seeds} selection seeds)"
                     if job.search.confirm.top_k > 1 else "") if job.search.confirm else "") + ")")
    _warn_about_search(job)


@app.command()
def run(
    spec: Annotated[Path, typer.Argument(help="the job spec YAML to run")],
    address: Annotated[Optional[str], typer.Option(help="attach to a running Ray cluster (default: a local one)")] = None,
    run_dir: Annotated[Optional[Path], typer.Option(help="run folder (default: <output_dir>/<name>-<time>)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show Ray's own logs")] = False,
):
    """Run the strategy comparison, then print its leaderboard.

    Starts an embedded local Ray (or attaches to --address), writes the run folder (trials.parquet,
    strategies.parquet, epochs.parquet and the job.yaml it ran) and prints the leaderboard; `raytune-ft results
    RUN` prints it again.
    """
    import shutil

    import yaml

    _before_ray(address)
    job = _load(spec)
    _warn_about_search(job)
    run_dir = run_dir or job.output_dir / f"{job.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(f"{run_dir} already holds a run: nothing was overwritten. To go on with it after a crash: "
                   f"raytune-ft resume {run_dir}; for a new run, choose another --run-dir")
    _check_data(job, spec)  # before the folder exists
    made = [d for d in (run_dir, *run_dir.parents) if not d.exists()]  # what this run creates
    run_dir.mkdir(parents=True, exist_ok=True)
    # absolute data / model paths: `resume` reads this file from whatever folder it is started in
    RunLayout(run_dir).job.write_text(yaml.safe_dump(job.portable(), sort_keys=False))
    typer.echo(f"run {run_dir.name}: folder {run_dir}")
    try:
        _sweep(job, run_dir, address=address, verbose=verbose, resume=False)
    except UserError:
        if not RunLayout(run_dir).ray.exists():
            # refused before any trial: leave no half-made run behind (nor the folders made for it)
            if run_dir in made:
                shutil.rmtree(run_dir, ignore_errors=True)
            else:
                _empty_folder(run_dir)
            for d in made[1:]:
                if d.exists() and not any(d.iterdir()):
                    d.rmdir()
        raise


@app.command()
def prepare(
    spec: Annotated[Path, typer.Argument(help="job spec YAML (its data and model sections are used)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="the folder to write (must not hold anything)")],
):
    """Prepare a job's data once, for many jobs; no trials.

    Decodes, resizes or tokenizes, and holds out splits as the job says. Give the jobs that use it
    `data: {source: prepared, path: OUTPUT}` and the same model section.
    """
    import shutil

    from raytune_ft.errors import InputError
    from raytune_ft.prepare import prepare_job

    job = _load(spec)
    if job.data.source == "prepared":
        raise UserError(f"{spec}: data.source is already 'prepared'; give the job with the raw data")
    if output.exists() and any(output.iterdir()):
        raise UserError(f"{output} is not empty: nothing was overwritten; choose another --output")
    _check_data(job, spec)
    started, made = time.monotonic(), not output.exists()
    try:
        meta = prepare_job(job, output)
    except (InputError, KeyboardInterrupt) as e:
        if made:  # leave nothing half-made behind
            shutil.rmtree(output, ignore_errors=True)
        else:
            _empty_folder(output)
        if isinstance(e, InputError):
            raise InputError(f"bad input, nothing was prepared: {e}") from None
        raise
    splits = ", ".join(f"{name} {s['samples']:,}" for name, s in meta["splits"].items())
    typer.echo(f"prepared {output} in {time.monotonic() - started:.0f}s: {splits}\n"
               f"use it with   data: {{source: prepared, path: {output}}}   and this job's model section")


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
    """Go on with a sweep whose driver died.

    Finished trials are kept, running ones go on from their last epoch, the rest start. The job spec is the one
    saved in the run folder.
    """
    from raytune_ft.spec import parse_job

    _before_ray(address)
    spec = RunLayout(run).job
    if not spec.exists():
        raise UserError(f"{run}: no job.yaml, so not a run folder made by `raytune-ft run`")
    import yaml

    # data prepared (RUN/data/meta.json): nothing reads the raw data files again, so they are not checked
    prepared = RunLayout(run).data_meta.exists()
    job = parse_job(yaml.safe_load(spec.read_text()), str(spec), prepared=prepared)
    if not prepared:
        from raytune_ft.sweep.preflight import check_data

        check_data(job, str(spec))  # in a bucket too
    typer.echo(f"resuming run {run.name}: folder {run}")
    _sweep(job, run, address=address, verbose=verbose, resume=True)


def _before_ray(address: Optional[str]) -> None:
    """What must be set before Ray is imported: for the embedded local cluster, Ray's single-machine mode
    (every server on 127.0.0.1)."""
    if address is None:
        from raytune_ft.sweep.ray_setup import local_cluster_on_loopback

        local_cluster_on_loopback()


def _sweep(job, run_dir: Path, *, address: Optional[str], verbose: bool, resume: bool) -> None:
    """Run (or resume) the sweep with a live view on a terminal, plain lines otherwise; then the leaderboard."""
    import contextlib

    from raytune_ft.sweep.run import run_sweep
    from raytune_ft.results.progress import LiveView
    from raytune_ft.errors import InputError

    started, layout = time.monotonic(), RunLayout(run_dir)
    live = LiveView() if sys.stdout.isatty() and not verbose else None
    try:
        with live or contextlib.nullcontext():
            rows = run_sweep(job, run_dir, address=address, verbose=verbose, resume=resume,
                             printer=live.line if live else (lambda line: print(line, flush=True)),
                             on_update=live.update if live else None)
    except InputError as e:
        raise InputError(f"bad input, nothing was trained: {e}") from None
    print_leaderboard(run_dir, job.search.metric)
    typer.echo(f"done in {time.monotonic() - started:.0f}s: {layout.trials}, {layout.strategies}, {layout.epochs}, "
               f"{layout.job}\n"
               f"report: raytune-ft report {run_dir}")
    if not rows or all(r["status"] == "error" for r in rows):
        reasons = sorted({r["error_reason"] for r in rows if r.get("error_reason")})
        typer.echo("every trial failed: " + "; ".join(reasons)[:2000], err=True)
        raise typer.Exit(1)
