"""One Tune trial: a function trainable that builds and fits a Ray Train `TorchTrainer`.

Ray's own Train + Tune split (its "Hyperparameter Tuning with Ray Tune" guide for Train V2): Tune
calls `trial_driver` once per trial; the driver runs the worker loop (`raytune_ft.train.train_trial`)
in `workers_per_trial` Train workers and forwards their per-epoch reports to Tune through
`TuneReportCallback`. On a tested Ray the trainer's controller runs in the trial actor (the fast path,
raytune_ft/internals.py); everywhere else it is Ray's `TorchTrainer` as documented.
"""
from __future__ import annotations

import json
from pathlib import Path

from raytune_ft.layout import RunLayout


def _ray_worker_entry(config) -> None:
    from raytune_ft.train.loop import train_trial

    train_trial(config)


def _report_to_tune():
    """Ray's TuneReportCallback, with each checkpoint's location as a URI for bucket storage (Ray gives
    the path inside the bucket's filesystem): what `load_trial_model` and the test evaluation read.
    On the fast path its queue to the trial's Tune session is in this process (raytune_ft/internals.py)."""
    from ray.tune.integration.ray_train import TuneReportCallback

    from raytune_ft import internals
    from raytune_ft.train.checkpoint import checkpoint_uri

    class ReportToTune(TuneReportCallback):
        def after_report(self, run_context, metrics, checkpoint):
            if checkpoint is not None:
                metrics = [{**metrics[0], "checkpoint_uri": checkpoint_uri(checkpoint)}, *metrics[1:]]
            super().after_report(run_context, metrics, checkpoint)

    internals.reports_in_process()
    return ReportToTune()


def trial_driver(config: dict, *, job: dict, data_dir: str, run_dir: str) -> None:
    """A Tune function trainable: one TorchTrainer per trial, its reports forwarded to Tune."""
    import ray.train
    from ray import tune
    from raytune_ft import internals
    from raytune_ft.cluster import storage
    from raytune_ft.sweep.space import trial_settings
    from raytune_ft.train.config import trial_config

    trial_id = tune.get_context().get_trial_id()
    layout = RunLayout(Path(run_dir))
    state = layout.sweep_state
    before = json.loads(state.read_text()).get(trial_id, {}) if state.exists() else {}
    if before.get("status", "running") != "running":
        # It ended before the driver died, after Tune last saved its state: not run again. Its last
        # result goes to Tune (which wants the metric from every trial); the sweep ignores it.
        if before["history"]:
            tune.report({k: v for k, v in before["history"][-1].items() if isinstance(v, (int, float, str))})
        return
    settings = trial_settings(config)
    strategy = dict(settings["strategy"])
    hparams = strategy.pop("hparams")
    res = job["resources"]
    resources = {"CPU": res["cpus_per_worker"]}
    if res["gpus_per_worker"]:
        resources["GPU"] = res["gpus_per_worker"]
    trainer = internals.trainer_cls()(
        _ray_worker_entry,
        # the trial's own seed (raytune_ft/search.py); a trial of a run made before seeds were per trial has none
        train_loop_config=trial_config(job, data_dir, layout.trial(trial_id), strategy, hparams,
                                       seed=settings["seed"], stage=settings["stage"],
                                       train_subset=settings["train_subset"]),
        scaling_config=ray.train.ScalingConfig(
            num_workers=res["workers_per_trial"], use_gpu=bool(res["gpus_per_worker"]),
            resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            # Ray Train owns the checkpoints: under the run folder, or the run's bucket URI when it has one;
            # the same name finds them again when a resumed sweep runs this trial again
            name=f"train-{trial_id}", storage_path=storage.ray_storage(layout.ray),
            callbacks=[_report_to_tune()],
            # the best by the metric (reload, test split) and the latest (restarts) are kept
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute="checkpoint_score", checkpoint_score_order="max"),
            # a worker that dies is started again and goes on from the trial's latest checkpoint
            failure_config=ray.train.FailureConfig(max_failures=res["max_worker_restarts"])),
    )
    trainer.fit()
