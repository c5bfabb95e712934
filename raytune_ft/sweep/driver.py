"""The sweep's stages once its data are ready, one method each; `run_sweep` (run.py) calls them in order:

    sweep = SweepDriver(job, layout, meta, subsets, printer, resume=False, local=True)
    sweep.search()          # the Tuner over every strategy (and train size), or Tuner.restore on resume
    sweep.confirm()         # search.confirm: each strategy's top-k configurations again, with fresh seeds
    rows = sweep.finish()   # the tables, each strategy's best trial on the test split, the curves

One Tune trial per trial of the job (sweep/trial.py's `trial_driver`, one TorchTrainer each); our callback
(sweep/callback.py) keeps every trial's record, the progress lines and the tables.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

from raytune_ft.layout import RunLayout
from raytune_ft.results.curves import write_curves
from raytune_ft.sweep.callback import SweepCallback
from raytune_ft.sweep.confirm import chosen_candidates, confirm_candidates, stage_seeds, stage_setup
from raytune_ft.sweep.ray_setup import concurrency, driver_resources, wait_for_release
from raytune_ft.sweep.records import load_sweep_state
from raytune_ft.sweep.schedulers import make_scheduler
from raytune_ft.sweep.space import tune_param_space
from raytune_ft.sweep.trial import trial_driver


class SweepDriver:
    def __init__(self, job, layout: RunLayout, meta: dict, subsets: list[dict], printer: Callable[[str], None], *,
                 resume: bool, local: bool, on_update: Optional[Callable] = None):
        """Ray is running. resume: go on with the sweep in layout's folder after its driver died; local:
        Ray's embedded cluster on this machine (else a cluster attached to)."""
        from ray import tune

        self.job, self.layout, self.meta, self.subsets, self.printer = job, layout, meta, subsets, printer
        self.resume = resume
        self.n_concurrent = concurrency(job, local=local)
        self.records = load_sweep_state(layout.root) if resume else {}
        n_search = job.search.num_samples * len(job.strategies) * max(1, len(subsets))
        self.callback = SweepCallback(job, layout, printer, records=self.records, concurrency=self.n_concurrent,
                                      on_update=on_update, train_size=meta["splits"]["train"]["samples"],
                                      total=n_search)
        if resume:  # the event log as one line per trial; sweep_state.json (trial drivers read it) and the tables
            self.callback.compact()
        self.trainable = tune.with_parameters(
            tune.with_resources(trial_driver, driver_resources()),
            job=job.resolved(), data_dir=str(layout.data), run_dir=str(layout.root))
        self.callbacks = [self.callback, *tracking_callbacks(job, layout.root)]
        # resumed after the search had ended: in the confirm stage, or in the select stage before it
        self.confirming = resume and tune.Tuner.can_restore(str(layout.confirm_tune))
        self.selecting = resume and not self.confirming and tune.Tuner.can_restore(str(layout.select_tune))

    def search(self) -> None:
        """Stage one: every strategy's trials (x train sizes), under the scheduler; on resume, Tune's saved
        experiment goes on (or, where Tune saved none, the sweep starts over in this folder)."""
        from ray import tune

        job, layout, records, printer = self.job, self.layout, self.records, self.printer
        finished = {tid: rec.history for tid, rec in records.items() if rec.status != "running"}
        if self.resume and tune.Tuner.can_restore(str(layout.tune)):
            tuner = _resumed(self.trainable, **_search_setup(job, make_scheduler(job, replay=finished), self.callbacks,
                                                             layout.root, self.n_concurrent, self.subsets))
            printer(f"resuming: {len(finished)} trial(s) had ended, "
                    f"{sum(r.status == 'running' for r in records.values())} were running; {self.n_concurrent} at a time")
        else:
            if self.resume:
                printer("resuming: Tune saved no state before the driver stopped; the sweep starts over in this folder")
                self.callback.start_over()
            tuner = tune.Tuner(self.trainable, **_search_setup(job, make_scheduler(job), self.callbacks, layout.root,
                                                               self.n_concurrent, self.subsets))
            sizes = f" x {len(self.subsets)} train sizes ({', '.join(map(size_label, self.subsets))})" \
                if self.subsets else ""
            printer(f"sweep: {len(job.strategies)} strategies x {job.search.num_samples} samples{sizes}, search "
                    f"{job.search.algorithm}, scheduler {job.search.scheduler.name}, {self.n_concurrent} trial(s) at a time")
        tuner.fit()
        self.callback.prune("search", job.search.keep_best)
        self.callback.compact()
        wait_for_release(self.callback.pg_ids - {""})

    def confirm(self) -> None:
        """Stage two (search.confirm): each strategy's top_k configurations; with several, the select stage
        first chooses one on validation over selection seeds; the chosen one is trained again with fresh seeds,
        every epoch, and scored on the test split (sweep/confirm.py)."""
        job = self.job
        candidates = confirm_candidates(job, self.callback.records, {s["size"]: s for s in self.subsets})
        if job.search.confirm.top_k > 1:
            if not self.confirming:
                self._stage("select", candidates, restore=self.selecting)
            candidates = chosen_candidates(job, self.callback.records, candidates)
        self._stage("confirm", candidates, restore=self.confirming)

    def _stage(self, stage: str, candidates: list[dict], *, restore: bool) -> None:
        from ray import tune

        job, printer, confirm = self.job, self.printer, self.job.search.confirm
        seeds = stage_seeds(job, stage)
        self.callback.begin_stage(stage, len(candidates) * len(seeds))
        setup = stage_setup(job, stage, candidates, self.callbacks, self.layout.root, self.n_concurrent)
        if restore:
            tuner = _resumed(self.trainable, **setup)
            printer(f"resuming the {stage} stage")
        else:
            tuner = tune.Tuner(self.trainable, **setup)
            drawn = " and its own train / validation split" if confirm.vary_data else ""
            if stage == "select":
                printer(f"select: {len(candidates)} configuration(s) (top {confirm.top_k} per strategy) x {len(seeds)} "
                        f"selection seeds{drawn}, every epoch; each strategy's best mean validation score is chosen")
            else:
                printer(f"confirm: {len(candidates)} configuration(s) x {len(seeds)} fresh seeds{drawn}, every epoch, "
                        "scored on the test split" + (f" (held out from train: {self.meta['test_held_out']} samples, "
                                                      "stratified)" if self.meta.get("test_held_out") else ""))
        tuner.fit()
        self.callback.prune(stage, job.search.keep_best)
        self.callback.compact()
        wait_for_release(self.callback.pg_ids - {""})

    def finish(self) -> list[dict]:
        """The tables from every trial's record, then each strategy's best trial on the test split and the
        curves; return the trials' rows."""
        rows = self.callback.compact()
        wait_for_release(self.callback.pg_ids - {""})
        if rows:
            add_test_metrics(self.layout.root, self.job.search.mode, self.printer)
            write_curves(self.layout.root, rows, self.job.search.mode, self.job.search.metric)
        return rows


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


def _search_setup(job, scheduler, callbacks: list, run_dir: Path, n_concurrent: int, subsets: list[dict]) -> dict:
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
