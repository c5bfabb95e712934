"""`raytune-ft plan JOB`: what a job will cost, and whether it fits, before a single trial runs.

    raytune-ft plan jobs/quickstart.yaml                      # calibrates on this machine (no Ray)
    raytune-ft plan job.yaml --address auto                   # calibrates on the cluster, as Ray tasks
    raytune-ft plan job.yaml --from-run runs/<run>            # a finished run of the job as the calibration
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from raytune_ft.cli.app import app
from raytune_ft.layout import RunLayout


@app.command("plan")
def plan_command(
    spec: Annotated[Path, typer.Argument(help="the job spec YAML to forecast")],
    address: Annotated[Optional[str], typer.Option(
        help="calibrate on this Ray cluster (default: this machine, without Ray)")] = None,
    from_run: Annotated[Optional[str], typer.Option(
        help="a finished run of the same job (folder, or run id under runs/): its trials are the calibration")] = None,
    output: Annotated[Optional[Path], typer.Option(
        help="where to write plan.json (default: <output_dir>/<name>-plan-<time>/plan.json)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show Ray's own logs")] = False,
):
    """Forecast a job's cost and peak memory before any trial runs.

    Calibrates each strategy on the hardware its trials will use (a few batches and a validation pass, at its
    searched settings that change cost), then prints seconds per epoch and per trial, the epochs the scheduler is
    expected to run, the confirm stage, compute (CPU- / GPU-hours), the wall time with the trials the cluster
    holds at once, and each worker's peak memory, and writes them to plan.json. Exits 2 when a strategy cannot fit
    the memory a worker has, naming it and what to change. With search.budget, says the num_samples it sets.
    """
    import shutil

    from raytune_ft.data import check_train_labels, load_meta
    from raytune_ft.errors import UserError
    from raytune_ft.plan.make import check_fit, plan_job, write_plan
    from raytune_ft.plan.show import forecast_lines
    from raytune_ft.spec import load_job
    from raytune_ft.sweep.preflight import check_data, preflight
    from raytune_ft.sweep.ray_setup import concurrency, init_ray, local_resources, quiet_libraries
    from raytune_ft.sweep.run import train_subsets

    quiet_libraries(verbose)
    job = load_job(spec)
    # the plan's folder: the data prepared for the calibration (removed after it), plan.json
    layout = RunLayout((job.output_dir / f"{job.name}-plan-{time.strftime('%Y%m%d-%H%M%S')}").resolve())
    if address is not None:
        init_ray(address, verbose)
    at_once = concurrency(job) if address else concurrency(job, local_resources(), local=True)
    try:
        if from_run is not None:
            from raytune_ft.cli.tables import find_run

            run_dir = find_run(from_run)
            if not RunLayout(run_dir).data_meta.exists():
                raise UserError(f"--from-run {from_run}: no data/meta.json in {run_dir} (a run's own folder, not "
                                "only its fetched tables)")
            meta, overheads = load_meta(RunLayout(run_dir).data), {}
        else:
            check_data(job, str(spec))
            check_train_labels(job.data)
            started = time.monotonic()
            from raytune_ft.sweep.prepare import prepare_run

            meta = prepare_run(job, layout, on_cluster=address is not None, printer=typer.echo)
            overheads = {"data": time.monotonic() - started}
            preflight(job, layout.data, workers_at_once=None if address else at_once * job.resources.workers_per_trial)
            overheads["preflight"] = time.monotonic() - started - overheads["data"]
            run_dir = None
        fc, _ = plan_job(job, layout, meta, train_subsets(job, meta), concurrency=at_once,
                         on_ray=address is not None, overheads=overheads, printer=typer.echo,
                         from_run=run_dir)
    finally:  # the data were prepared for the calibration only (`run` prepares its own)
        shutil.rmtree(layout.root if output or from_run else layout.data, ignore_errors=True)
    for line in forecast_lines(fc, job.search.scheduler.name):
        typer.echo(line)
    path = output or layout.plan
    write_plan(fc, path)
    typer.echo(f"plan.json: {path}")
    check_fit(job, fc)
