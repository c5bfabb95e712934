"""The sweep: prepare the data once, pre-flight, start Ray, run the Tuner, write the tables, evaluate
each strategy's best trial on the test split.

    run_sweep(job, run_dir)     # raytune-ft run / resume call this
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Optional

from raytune_ft import provenance
from raytune_ft.cluster import storage
from raytune_ft.errors import InputError
from raytune_ft.layout import RunLayout
from raytune_ft.results.curves import write_curves
from raytune_ft.sweep.callback import SweepCallback
from raytune_ft.sweep.confirm import confirm_candidates, confirm_setup
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
        if address is not None:  # on a cluster, its free CPUs decode the data; the driver only writes it
            init_ray(address, verbose, num_cpus)
        try:
            meta = prepare_data(job, layout.data, on_cluster=address is not None)
        except (ValueError, OSError) as e:
            raise InputError(str(e)) from e
        printer(f"data prepared once in {time.monotonic() - t0:.1f}s: "
                + ", ".join(f"{s} {v['samples']}" for s, v in meta["splits"].items()) + f", {len(meta['classes'])} classes")
        from raytune_ft import ewc

        if ewc.wanted(job):  # EWC: which samples its Fisher information came from
            printer(ewc.describe(meta["fisher"]))
        # what made this run (versions, commit, hashes of data and weights, the spec): a file, and every table's metadata
        provenance.write(run_dir, provenance.collect(job))
        storage.sync_up(layout.data)  # workers on other nodes read it from the run's URI, if any
    preflight(job, layout.data)
    subsets = train_subsets(job, meta)
    init_ray(address, verbose, num_cpus)
    n_concurrent = concurrency(job, local=address is None)
    records = load_sweep_state(run_dir) if resume else {}
    n_search = job.search.num_samples * len(job.strategies) * max(1, len(subsets))
    callback = SweepCallback(job, layout, printer, records=records, concurrency=n_concurrent, on_update=on_update,
                             train_size=meta["splits"]["train"]["samples"], total=n_search)
    if resume:  # the event log as one line per trial; sweep_state.json (trial drivers read it) and the tables from it
        callback.compact()
    trainable = tune.with_parameters(
        tune.with_resources(trial_driver, driver_resources()),
        job=job.resolved(), data_dir=str(layout.data), run_dir=str(run_dir))
    callbacks = [callback, *tracking_callbacks(job, run_dir)]
    confirming = resume and tune.Tuner.can_restore(str(layout.confirm_tune))  # the search had ended
    if not confirming:
        finished = {tid: rec.history for tid, rec in records.items() if rec.status != "running"}
        if resume and tune.Tuner.can_restore(str(layout.tune)):
            tuner = _resumed(trainable, **_search_setup(job, make_scheduler(job, replay=finished), callbacks, run_dir,
                                                          n_concurrent, subsets))
            printer(f"resuming: {len(finished)} trial(s) had ended, "
                    f"{sum(r.status == 'running' for r in records.values())} were running; {n_concurrent} at a time")
        else:
            if resume:
                printer("resuming: Tune saved no state before the driver stopped; the sweep starts over in this folder")
                callback.start_over()
            tuner = tune.Tuner(trainable, **_search_setup(job, make_scheduler(job), callbacks, run_dir, n_concurrent,
                                                          subsets))
            sizes = f" x {len(subsets)} train sizes ({', '.join(map(size_label, subsets))})" if subsets else ""
            printer(f"sweep: {len(job.strategies)} strategies x {job.search.num_samples} samples{sizes}, search "
                    f"{job.search.algorithm}, scheduler {job.search.scheduler.name}, {n_concurrent} trial(s) at a time")
        tuner.fit()
        callback.compact()
        wait_for_release(callback.pg_ids - {""})
    if job.search.confirm:
        candidates = confirm_candidates(job, callback.records, {s["size"]: s for s in subsets})
        callback.begin_stage("confirm", len(candidates) * job.search.confirm.seeds)
        setup = confirm_setup(job, candidates, callbacks, run_dir, n_concurrent)
        if confirming:
            tuner = _resumed(trainable, **setup)
            printer("resuming the confirm stage")
        else:
            tuner = tune.Tuner(trainable, **setup)
            printer(f"confirm: {len(candidates)} configuration(s) (top {job.search.confirm.top_k} per strategy) x "
                    f"{job.search.confirm.seeds} fresh seeds, every epoch, scored on the test split"
                    + (f" (held out from train: {meta['test_held_out']} samples, stratified)"
                       if meta.get("test_held_out") else ""))
        tuner.fit()
    rows = callback.compact()
    wait_for_release(callback.pg_ids - {""})
    if rows:
        add_test_metrics(run_dir, job.search.mode, printer)
        write_curves(run_dir, rows, job.search.mode, job.search.metric)
    return rows


def train_subsets(job, meta: dict) -> list[dict]:
    """data.train_sizes (or data.shots, one size) resolved against the prepared train split: TrainSubset
    dicts, smallest first. []: the job has no sizes."""
    from raytune_ft.data.subsets import check_shots, resolve_sizes

    if not job.data.sizes():
        return []
    counts = meta["splits"]["train"]["class_counts"]
    try:
        if job.data.shots is not None:
            check_shots(job.data.shots, counts, meta["classes"])
        subsets = resolve_sizes(job.data.sizes(), counts, job.data.seed)
    except ValueError as e:
        raise InputError(str(e)) from None
    return [s.model_dump() for s in subsets]


def size_label(subset: dict) -> str:
    from raytune_ft.data.subsets import TrainSubset

    return TrainSubset(**subset).label()


def _resumed(trainable, param_space: dict, tune_config, run_config):
    """The saved Tune experiment of this stage, to go on with, through Tune's public `tune.run(...,
    resume_config=...)`: trials and search state come back from the experiment (Tune restores the search
    algorithm's state into the one given, made as for the first run), the callbacks and the scheduler are
    the ones given (our records from the event log; the rungs replayed), as Tuner.restore cannot take."""
    from ray import tune

    class Resumed:
        def fit(self):
            resume = tune.ResumeConfig(unfinished=tune.ResumeConfig.ResumeType.RESUME,
                                       errored=tune.ResumeConfig.ResumeType.SKIP)
            failure = run_config.failure_config
            return tune.run(
                trainable, config=param_space, name=run_config.name, storage_path=run_config.storage_path,
                callbacks=run_config.callbacks, verbose=run_config.verbose, metric=tune_config.metric,
                mode=tune_config.mode, num_samples=tune_config.num_samples, search_alg=tune_config.search_alg,
                scheduler=tune_config.scheduler, max_concurrent_trials=tune_config.max_concurrent_trials,
                max_failures=failure.max_failures, fail_fast=failure.fail_fast, raise_on_failed_trial=False,
                resume_config=resume)

    return Resumed()


def _search_setup(job, scheduler, callbacks: list, run_dir: Path, n_concurrent: int, subsets: list[dict]):
    """The search stage's param_space, tune_config and run_config: a Tuner of them, or `_resumed`."""
    from ray import tune

    from raytune_ft.sweep.search import make_search

    # each trial gets its own seed; optuna: one study per strategy (and size), num_samples trials each (search.py)
    search_alg, num_samples = make_search(job, n_concurrent, subsets)
    return dict(
        param_space={} if job.search.algorithm == "optuna" else tune_param_space(job, subsets),
        tune_config=tune.TuneConfig(metric=job.search.metric, mode=job.search.mode, num_samples=num_samples,
                                    scheduler=scheduler, search_alg=search_alg),  # it limits concurrency (n_concurrent)
        run_config=tune.RunConfig(
            name=RunLayout(run_dir).tune.name, storage_path=str(RunLayout(run_dir).ray), callbacks=callbacks,
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
    """Evaluate each strategy's best search trial on the test split; add test_* columns to strategies.parquet.
    With several train sizes, the best trials of the largest (the per-class reports are of that size)."""
    from raytune_ft.results.evaluation import evaluate_best_trials, summary, test_columns
    from raytune_ft.results.tables import read_table, write_table

    layout = RunLayout(run_dir)
    table = read_table(layout.strategies)
    largest = max((r.get("train_size") or 0 for r in table), default=0)
    at_largest = [r for r in table if (r.get("train_size") or 0) == largest]
    reports = evaluate_best_trials(run_dir, at_largest, read_table(layout.trials), printer)
    if not reports:
        return
    for row in at_largest:
        row.update(test_columns(reports.get(row["strategy"], {})))
    write_table(table, layout.strategies)
    printer("test split, best trial of each strategy: " + ", ".join(
        summary(k, v) for k, v in reports.items())
        + f"  (reports in {run_dir / 'reports'})")
