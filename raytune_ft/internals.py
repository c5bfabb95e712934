"""The one module of raytune_ft that uses private names of Ray, Accelerate or torch. Everything else
uses their public APIs (tests/test_public_apis.py greps the package for private names).

Each internal here is used only where Ray (or Accelerate) is a version it was tested on (TESTED_RAY,
TESTED_ACCELERATE), and has a public path beside it, which runs on every other version, and everywhere
when RAYTUNE_FT_RAY_FAST_PATH=0. CI runs the suite on the tested set (the fast path) and the Ray
end-to-end tests on the oldest supported Ray (the public path, ci/compat.sh), and one ASHA sweep with
RAYTUNE_FT_RAY_FAST_PATH=0 on the tested set.

    fast_path()              # True: this Ray is one tested here and RAYTUNE_FT_RAY_FAST_PATH is not 0
    trainer_cls()            # the TorchTrainer a trial builds: Ray's own, or the in-process one (fast path)
    reports_in_process()     # call before TuneReportCallback(): its queue lives in this process (fast path)

Together, on the quickstart (2026-12-05, 2 cores, Ray 2.60.0): 171 s on the fast path against 231 s with
RAYTUNE_FT_RAY_FAST_PATH=0 (Ray's share of the trials' seconds 81 s against 150 s; quickstart.md,
quickstart_public.md), and 243 s on the floor Ray 2.55.1, where only the public path runs.

The fast path of a trial (measured: benchmarks/results/trial_timeline.md, quickstart.md, 2 cores). Per
trial the public path starts, besides the trial actor and its Train workers, a TrainController actor, a
queue actor between the two, a PlacementGroupCleaner and a DatasetManager; the fast path starts none:

| internal | saves (measured) | when Ray changes it |
|---|---|---|
| `TorchTrainer._initialize_and_run_controller` overridden to run `ray.train.v2._internal...TrainController` in the trial actor (`asyncio.run`) | the controller actor: ~5-8 s of a trial's start-up on 2 cores (its process, ~2 s of ray.train / ray.data imports and ~2 s of torch's), ~600 MB | the hook or the controller's arguments change: TypeError / AttributeError at the trial's start |
| the Tune session's `_inter_actor_queue` set to an in-process queue (`ray.train._internal.session.get_session`) | the queue actor (~190 MB, ~2 s of imports) and an RPC every 0.2 s while the trial trains | the session attribute is renamed: reports go through Ray's queue actor again (slower, still right) |
| `_create_default_callbacks` overridden to drop `PlacementGroupCleanerCallback` and, without `datasets`, `DatasetsCallback` (`ray.train.v2._internal.callbacks`) | two actors a trial (~190 MB and ~2 s of imports each); the sweep frees a stopped trial's placement group itself (sweep/callback.py) | the modules move: ImportError at the trial's start |
| a `ray.train.torch.config._TorchBackend` whose `on_start` does nothing for one worker | ~2.7 s of a one-worker trial's start-up (the torch process group) and a TCPStore listening on every interface | the class moves: ImportError; `on_start` starts doing more: one-worker trials miss it |

Outside the fast path:

| internal | why | when it changes |
|---|---|---|
| `ray._private.ray_constants.ENABLE_RAY_CLUSTER` set False (`keep_local_cluster_on_loopback`), only when Ray was imported before RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 could be set | the local cluster serves on 127.0.0.1 only (the variable, Ray's public switch, does it when set before `import ray`: the CLI does so) | the constant moves: the local cluster may listen beyond loopback (init_ray warns) |
| `AcceleratorState._reset_state()` when a trial runs in a process that ran one before (tests, benchmarks; a Ray worker is a fresh process) | another mixed precision in the same process is refused by Accelerate otherwise | renamed: in-process trials with another mixed precision fail with Accelerate's own message |
| the logger name of Ray's "Token authentication is enabled" notice, set to ERROR without --verbose | a quiet console | renamed: the notice shows again |
"""
from __future__ import annotations

import os

FAST_PATH_ENV = "RAYTUNE_FT_RAY_FAST_PATH"  # 0: the public path even on a tested Ray
TESTED_RAY = ("2.60.0",)  # the releases the fast path was tested on (constraints.txt)
TESTED_ACCELERATE = ("1.15.0",)
TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"


def fast_path() -> bool:
    """The fast path of a trial is on: a tested Ray release, and RAYTUNE_FT_RAY_FAST_PATH is not 0."""
    import ray

    return os.environ.get(FAST_PATH_ENV, "1").strip() != "0" and ray.__version__ in TESTED_RAY


def trainer_cls():
    """The TorchTrainer a trial builds: `ray.train.torch.TorchTrainer`, or on the fast path the same
    trainer with its controller in this process (see the table above)."""
    from ray.train.torch import TorchTrainer

    return _in_process_trainer_cls() if fast_path() else TorchTrainer


def reports_in_process() -> None:
    """On the fast path, Train's reports reach this trial's Tune session through a queue in this process
    (the controller runs here): call it before building a TuneReportCallback."""
    if not fast_path():
        return
    from ray.train._internal.session import get_session

    session = get_session()
    if session._inter_actor_queue is None:
        session._inter_actor_queue = _LocalQueue()


class _LocalQueue:
    """What the Tune session reads Train's reports from (ray.util.queue.Queue's get / put), in-process.

    Ray sends the run's config, and with it the report callback and its queue, to the Train workers,
    which never report through it: a copy there is an empty shell that refuses to be used."""

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


def _in_process_trainer_cls():
    """Ray's TorchTrainer whose TrainController runs in the trial actor, on an event loop in its thread
    (`asyncio.run`): Ray's own controller, with its worker group, failure policy, checkpoint manager and
    callbacks; only where it runs changes. The worker group is owned by the trial actor, so when Tune
    stops a trial its workers go with it. No PlacementGroupCleaner (the sweep frees a stopped trial's
    placement group from the id each trial reports), no DatasetManager without `datasets`, and no torch
    process group for a trial of one worker."""
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

    class InProcessTorchTrainer(TorchTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, torch_config=OneWorkerTorchConfig(), **kwargs)

        def _create_default_callbacks(self):
            unused = (PlacementGroupCleanerCallback,) + (() if self.datasets else (DatasetsCallback,))
            return [c for c in super()._create_default_callbacks() if not isinstance(c, unused)]

        def _initialize_and_run_controller(self, **controller_init_kwargs):
            controller = TrainController(**controller_init_kwargs)
            asyncio.run(controller.run())
            return controller.get_result()

    return InProcessTorchTrainer


def keep_local_cluster_on_loopback() -> None:
    """Ray's single-machine mode for a local cluster started in this process: every server on 127.0.0.1.
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is read once, when Ray is imported; this sets what it sets when
    Ray was imported before (a tested Ray only; elsewhere the variable alone, and init_ray checks)."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # for the processes the local cluster starts
    import ray

    if ray.__version__ in TESTED_RAY:
        import ray._private.ray_constants as ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False


def quiet_token_notice() -> None:
    """Ray's notice that token authentication is on (it stays on: only the notice goes)."""
    import logging

    logging.getLogger(TOKEN_NOTICE_LOGGER).setLevel(logging.ERROR)


def fresh_accelerate_state() -> None:
    """A trial in a process that ran another (tests, benchmarks): Accelerate's state is a per-process
    singleton that refuses another mixed precision. A tested Accelerate only: elsewhere a second trial
    with another mixed precision in one process fails with Accelerate's own message."""
    import accelerate
    from accelerate.state import AcceleratorState

    if accelerate.__version__ in TESTED_ACCELERATE:
        AcceleratorState._reset_state()
