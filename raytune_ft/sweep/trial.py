"""One Tune trial: a function trainable that builds and fits a Ray Train `TorchTrainer`.

Ray's own Train + Tune split: Tune calls `trial_driver` once per trial; the driver runs the
worker loop (`raytune_ft.train.train_trial`) in `workers_per_trial` Train workers and forwards
their per-epoch reports to Tune.
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

    Its channel to the trial's Tune session is a queue in this process (the controller runs here,
    `TrialTrainer`), not the queue actor Ray starts for a controller elsewhere: no process, and no RPC
    every 0.2 s from the session's polling."""
    from ray.train._internal.session import get_session
    from ray.tune.integration.ray_train import TuneReportCallback

    from raytune_ft.train.checkpoint import checkpoint_uri

    class ReportToTune(TuneReportCallback):
        def after_report(self, run_context, metrics, checkpoint):
            if checkpoint is not None:
                metrics = [{**metrics[0], "checkpoint_uri": checkpoint_uri(checkpoint)}, *metrics[1:]]
            super().after_report(run_context, metrics, checkpoint)

    session = get_session()
    if session._inter_actor_queue is None:
        session._inter_actor_queue = _LocalQueue()
    return ReportToTune()


class _LocalQueue:
    """What the Tune session reads Train's reports from (ray.util.queue.Queue's get / put), in-process.

    Ray sends the run's config, and with it this callback and its queue, to the Train workers, which
    never report through it: a copy there is an empty shell that refuses to be used."""

    def __init__(self):
        import queue

        self._queue = queue.Queue()

    def __getstate__(self):
        return {"_queue": None}

    def put(self, item, block: bool = True, timeout=None) -> None:
        self._queue.put(item, block, timeout)

    def get(self, block: bool = True, timeout=None):
        import queue

        from ray.util.queue import Empty

        try:
            return self._queue.get(block, timeout)
        except queue.Empty:
            raise Empty from None


def _trial_trainer_cls():
    """Ray's TorchTrainer, run so that a trial costs one process besides its Train workers (issue 14).

    Ray starts, for every trial, a trial actor (Tune's function trainable, which builds this trainer)
    and then, each a process of its own (~190 MB and ~2 s of imports: ray.train, ray.data; the
    controller also torch's ~2 s and ~600 MB): a TrainController, a queue actor between the two, a
    PlacementGroupCleaner and a DatasetManager. Here:

    - the controller runs in the trial actor, on an event loop in its thread (`asyncio.run`): Ray's
      own `TrainController`, with its worker group, failure policy, checkpoint manager and callbacks;
      only where it runs changes. The worker group is owned by the trial actor, so when Tune stops a
      trial its workers go with it, as they went with the controller actor before.
    - no queue actor: the report callback hands reports over in-process (`_report_to_tune`);
    - no PlacementGroupCleaner: it frees the worker group's placement group when the controller dies
      without doing so (a trial Tune stops). The sweep's callback frees it already, from the id each
      trial reports (SweepCallback._end), and waits for it (wait_for_release);
    - no DatasetManager (DatasetsCallback, which hands out Ray Data shards) when the trial passes no
      `datasets`: our workers read the prepared store themselves;
    - no torch process group for a trial of one worker (`OneWorkerTorchConfig`): it would train alone
      anyway (recipe.py `_alone_is_not_distributed`), and the group cost ~2.7 s of start-up per trial
      and a TCPStore listening on every interface. Two or more workers get Ray's process group as before.

    tests/test_sweep_e2e.py checks which actors a trial starts, so a Ray upgrade that changes these
    hooks fails there."""
    import asyncio

    from dataclasses import dataclass

    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.train.torch.config import _TorchBackend
    from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
    from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback
    from ray.train.v2._internal.execution.controller import TrainController

    class OneWorkerBackend(_TorchBackend):
        def on_start(self, worker_group, backend_config):
            if len(worker_group) > 1:
                super().on_start(worker_group, backend_config)

    @dataclass
    class OneWorkerTorchConfig(TorchConfig):
        @property
        def backend_cls(self):
            return OneWorkerBackend

    class TrialTrainer(TorchTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, torch_config=OneWorkerTorchConfig(), **kwargs)

        def _create_default_callbacks(self):
            unused = (PlacementGroupCleanerCallback,) + (() if self.datasets else (DatasetsCallback,))
            return [c for c in super()._create_default_callbacks() if not isinstance(c, unused)]

        def _initialize_and_run_controller(self, **controller_init_kwargs):
            controller = TrainController(**controller_init_kwargs)
            asyncio.run(controller.run())
            return controller.get_result()

    return TrialTrainer


def trial_driver(config: dict, *, job: dict, data_dir: str, run_dir: str) -> None:
    """A Tune function trainable: one TorchTrainer per trial, its reports forwarded to Tune."""
    import ray.train
    from ray import tune
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
    trainer = _trial_trainer_cls()(
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
