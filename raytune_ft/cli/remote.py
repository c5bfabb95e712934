"""Commands for a sweep on a Ray cluster through the Jobs API: submit, status, logs, stop, fetch."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from raytune_ft.cli.app import app
from raytune_ft.errors import UserError


_ADDRESS_HELP = "the cluster's dashboard, e.g. http://127.0.0.1:8265 (default: where RUN was submitted, or RAY_ADDRESS)"


@app.command()
def submit(
    spec: Annotated[Path, typer.Argument(help="the job spec YAML to run on the cluster")],
    address: Annotated[Optional[str], typer.Option(help="the cluster's dashboard, e.g. http://127.0.0.1:8265 "
                                                       "(through `ray dashboard cluster.yaml`)")] = None,
    storage: Annotated[Optional[str], typer.Option(help="where run folders go: a path every node sees, or "
                                                       "s3:// gs:// file:// (default RAYTUNE_FT_STORAGE)")] = None,
    run_id: Annotated[Optional[str], typer.Option(help="the run's id and folder name (default: <name>-<time>-<4 hex>)")] = None,
    project: Annotated[Optional[Path], typer.Option(
        help="the folder relative paths in the spec start from (default: the current one). Only raytune_ft, "
             "the spec and the local files it names are shipped, never credentials")] = None,
):
    """Submit the sweep to a running Ray cluster; print its run id.

    Uses the Ray Jobs API and returns at once. The spec is checked here; data in a bucket, or on a path only the
    cluster has, is checked there, before any trial.
    """
    import os

    from raytune_ft.cluster.client import submit as submit_run
    from raytune_ft.spec import load_job

    job = load_job(spec, on_cluster=True)
    for line in data_notes(job):
        typer.echo(line, err=True)
    address = address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not address:
        raise UserError("give the cluster with --address http://HEAD:8265 (or set RAY_ADDRESS)")
    rid = submit_run(spec, address, run_id=run_id, storage=storage, project=project)
    typer.echo(rid)
    typer.echo(f"follow it: raytune-ft logs {rid} --follow | raytune-ft status {rid} | raytune-ft stop {rid}",
               err=True)


def data_notes(job) -> list[str]:
    """One line per data location `submit` cannot check from here: it is checked on the cluster."""
    from raytune_ft.data.location import in_bucket

    return [f"note: data.{field}: {where} is "
            + ("in a bucket" if in_bucket(where) else "not on this machine (a path on the cluster?)")
            + ": checked on the cluster before any trial (a missing one fails the job, exit 2)"
            for field, where in job.data.not_here()]


@app.command()
def status(
    run: Annotated[str, typer.Argument(help="run id printed by submit")],
    address: Annotated[Optional[str], typer.Option(help=_ADDRESS_HELP)] = None,
):
    """Print a submitted run's state.

    PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED, and its run folder.
    """
    from raytune_ft.cluster.client import status as run_status

    s = run_status(run, address)
    typer.echo(f"{run}: {s['status']}" + (f"  {s['message']}" if s["message"] else "")
               + (f"\nrun folder: {s['run_dir']}" if s["run_dir"] else ""))


@app.command()
def logs(
    run: Annotated[str, typer.Argument(help="run id printed by submit")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the run ends")] = False,
    address: Annotated[Optional[str], typer.Option(help=_ADDRESS_HELP)] = None,
):
    """Print a submitted run's driver output: progress, leaderboard."""
    from raytune_ft.cluster.client import logs as run_logs

    run_logs(run, address, follow=follow)


@app.command()
def stop(
    run: Annotated[str, typer.Argument(help="run id printed by submit")],
    address: Annotated[Optional[str], typer.Option(help=_ADDRESS_HELP)] = None,
):
    """Stop a submitted run and wait until it has ended."""
    from raytune_ft.cluster.client import stop as stop_run

    s = stop_run(run, address)
    typer.echo(f"{run}: {s['status']}")


@app.command()
def fetch(
    run: Annotated[str, typer.Argument(help="run id printed by submit")],
    output: Annotated[Optional[Path], typer.Option(help="local folder (default runs/<run id>)")] = None,
    storage: Annotated[Optional[str], typer.Option(help="the run's storage, if not submitted from here")] = None,
    address: Annotated[Optional[str], typer.Option(help=_ADDRESS_HELP)] = None,
):
    """Bring a submitted run's tables and reports home.

    Its tables (trials, strategies, epochs, and those of a confirm stage), provenance.json, job.yaml and
    reports/; not the checkpoints.
    """
    from raytune_ft.cluster.client import fetch as fetch_run

    dest, found = fetch_run(run, output, address=address, storage=storage)
    typer.echo(f"{dest}: {', '.join(found)}")
