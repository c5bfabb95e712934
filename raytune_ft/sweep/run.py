"""The sweep: prepare the data once, pre-flight, start Ray, run the Tuner, write the tables, evaluate
each strategy's best trial on the test split.

    run_sweep(job, run_dir)     # raytune-ft run / resume call this
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Optional

from raytune_ft.cluster import storage
from raytune_ft.errors import InputError
from raytune_ft.layout import RunLayout
from raytune_ft.sweep.callback import SweepCallback
from raytune_ft.sweep.preflight import preflight
from raytune_ft.sweep.ray_setup import (concurrency, driver_resources, init_ray, local_resources, quiet_libraries,
                                        wait_for_release)
from raytune_ft.sweep.records import load_sweep_state
from raytune_ft.sweep.schedulers import make_scheduler
from raytune_ft.sweep.space import tune_param_space
from raytune_ft.sweep.trial import trial_driver


def run_sweep(job, run_dir: Path, *, address: Optional[str] = None, verbose: bool = False,
              printer: Callable[[str], None] = print, num_cpus: Optional[int] = None, resume: bool = False,
              on_update: Optional[Callable] = None) -> list[dict]:
    """Prepare the data once, run the whole sweep, write the tables; return the trials' rows.

    resume=True goes on with the sweep in `run_dir` after its driver died: finished trials stay as
    they are, trials that were running go on from their last epoch, the others start.
    """
    quiet_libraries(verbose)  # before anything here loads a tokenizer or a model
    from ray import tune

    from raytune_ft.data import load_meta, prepare_data

    run_dir = run_dir.resolve()
    layout = RunLayout(run_dir)
    t0 = time.monotonic()
    if address is None:  # the local cluster will hold this machine's CPUs / GPUs: a trial too big is refused now
        concurrency(job, local_resources(num_cpus), local=True)
    if resume and layout.data_meta.exists():
        meta = load_meta(layout.data)
    else:
        try:
            meta = prepare_data(job, layout.data)
        except (ValueError, OSError) as e:
            raise InputError(str(e)) from e
        printer(f"data prepared once in {time.monotonic() - t0:.1f}s: "
                + ", ".join(f"{s} {v['samples']}" for s, v in meta["splits"].items()) + f", {len(meta['classes'])} classes")
        storage.sync_up(layout.data)  # workers on other nodes read it from the run's URI, if any
    preflight(job, layout.data)
    init_ray(address, verbose, num_cpus)
    n_concurrent = concurrency(job, local=address is None)
    records = load_sweep_state(run_dir) if resume else {}
    callback = SweepCallback(job, layout, printer, records=records, concurrency=n_concurrent,
                              on_update=on_update)
    finished = {tid: rec.history for tid, rec in records.items() if rec.status != "running"}
    scheduler = make_scheduler(job, replay=finished)
    trainable = tune.with_parameters(
        tune.with_resources(trial_driver, driver_resources()),
        job=job.resolved(), data_dir=str(layout.data), run_dir=str(run_dir))
    tune_dir = layout.tune
    if resume and tune.Tuner.can_restore(str(tune_dir)):
        tuner = tune.Tuner.restore(str(tune_dir), trainable, resume_unfinished=True, resume_errored=False)
        # Tune restores its trials and search state, not our callback nor the scheduler's rungs: put
        # ours back (records from sweep_state.json, rungs replayed from the finished trials).
        tuner._local_tuner.get_run_config().callbacks = [callback, *tracking_callbacks(job, run_dir)]
        tuner._local_tuner._tune_config.scheduler = scheduler
        printer(f"resuming: {len(finished)} trial(s) had ended, "
                f"{sum(r.status == 'running' for r in records.values())} were running; {n_concurrent} at a time")
    else:
        if resume:
            printer("resuming: Tune saved no state before the driver stopped; the sweep starts over in this folder")
            callback.records.clear()
        tuner = _new_tuner(job, trainable, scheduler, callback, run_dir, n_concurrent)
        printer(f"sweep: {len(job.strategies)} strategies x {job.search.num_samples} samples, search "
                f"{job.search.algorithm}, scheduler {job.search.scheduler.name}, {n_concurrent} trial(s) at a time")
    tuner.fit()
    callback.save_state()
    rows = callback.write_tables()
    wait_for_release(callback.pg_ids - {""})
    if rows:
        add_test_metrics(run_dir, job.search.mode, printer)
    return rows


def _new_tuner(job, trainable, scheduler, callback, run_dir: Path, n_concurrent: int):
    from ray import tune

    from raytune_ft.sweep.search import make_search

    # each trial gets its own seed; optuna: one study per strategy, num_samples trials each (search.py)
    search_alg, num_samples = make_search(job, n_concurrent)
    return tune.Tuner(
        trainable,
        param_space={} if job.search.algorithm == "optuna" else tune_param_space(job),
        tune_config=tune.TuneConfig(
            metric=job.search.metric, mode=job.search.mode, num_samples=num_samples,
            scheduler=scheduler, search_alg=search_alg),  # it limits concurrency itself (n_concurrent)
        run_config=tune.RunConfig(
            name="tune", storage_path=str(RunLayout(run_dir).ray), callbacks=[callback, *tracking_callbacks(job, run_dir)],
            verbose=0, failure_config=tune.FailureConfig(max_failures=0, fail_fast=False)),
    )


def tracking_callbacks(job, run_dir: Path) -> list:
    """Tune's own logger callbacks for MLflow and TensorBoard, when the spec switches them on."""
    tracking = getattr(job, "tracking", None)
    out = []
    if tracking is None:
        return out
    if tracking.mlflow:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        uri = tracking.mlflow_uri
        if uri is None:  # a file store inside the run folder; MLflow 3 asks for this opt-in to keep one
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            uri = (run_dir / "mlruns").as_uri()
        out.append(MLflowLoggerCallback(tracking_uri=uri, experiment_name=tracking.mlflow_experiment or job.name,
                                        save_artifact=False))
    if tracking.tensorboard:
        from ray.tune.logger import TBXLoggerCallback

        out.append(TBXLoggerCallback())
    return out


def add_test_metrics(run_dir: Path, mode: str, printer: Callable[[str], None] = print) -> None:
    """Evaluate each strategy's best trial on the test split; add test_* columns to strategies.parquet."""
    from raytune_ft.results.evaluation import evaluate_best_trials
    from raytune_ft.results.tables import read_table, write_table

    layout = RunLayout(run_dir)
    table = read_table(layout.strategies)
    reports = evaluate_best_trials(run_dir, table, read_table(layout.trials), printer)
    if not reports:
        return
    for row in table:
        r = reports.get(row["strategy"], {})
        row.update(test_accuracy=r.get("accuracy"), test_f1=r.get("f1"), test_loss=r.get("loss"))
    write_table(table, layout.strategies)
    printer("test split, best trial of each strategy: " + ", ".join(
        f"{k} acc {v['accuracy']:.4f} f1 {v['f1']:.4f}" for k, v in reports.items())
        + f"  (reports in {run_dir / 'reports'})")
