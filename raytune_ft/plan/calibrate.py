"""The calibration: each strategy trained for a few batches and validated, at each calibration point
(plan/space.py), on the hardware its trials will use, timed and its peak memory read.

    points = calibrate(job, data_dir, parallel=2)                 # this machine: one process per strategy
    points = calibrate(job, data_dir, parallel=2, on_ray=True)    # the cluster Ray is connected to: one task each

A strategy's points are measured in one fresh process (on a cluster: a Ray task that holds a worker's CPUs and
GPUs, alone in its process), its largest setting first, so that its peak memory is that of a worker that starts
clean; here, `parallel` processes side by side, timed together, as the sweep runs its trials (plan/together.py).
Each point is the trial's own recipe (train/recipe.py): set up (data, model, strategy, optimizer, Accelerate) as
a trial is, WARMUP batches, then batches timed until about TARGET_S; at the first point also two validation
passes of VAL_BATCHES (a process's first pays its first-time costs, the second is timed as later epochs are)
and one checkpoint written.
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Callable, Optional

from pydantic import BaseModel, Field

WARMUP = 1
FIRST = 2  # batches timed first; then as many as make about TARGET_S (at most MAX_BATCHES)
TARGET_S = 1.0
MAX_BATCHES = 30
VAL_BATCHES = 1


class Point(BaseModel):
    """One strategy measured at one setting of its cost knobs."""

    strategy: str = Field(description="the strategy's name")
    knobs: dict = Field(description="the setting: each cost knob's value (plan/space.py)")
    batch_size: int = Field(description="samples per batch")
    batch_s: float = Field(description="seconds per training batch (forward, backward, optimizer step)")
    loader_s: float = Field(0.0, description="seconds an epoch's DataLoader takes to start (its worker processes)")
    eval_sample_s: float = Field(description="seconds per validation sample")
    eval_first_s: float = Field(0.0, description="what a process's first validation pass takes beyond the later "
                                "ones (once per trial)")
    checkpoint_s: float = Field(description="seconds to write one checkpoint")
    startup_s: float = Field(description="seconds from the trial's start to its first optimizer step (data, model, "
                             "Accelerate; the first point of a fresh process, as a trial's worker is)")
    peak_memory_mb: float = Field(description="the worker's peak: CUDA allocated on a GPU, the resident set on a CPU")
    base_mb: float = Field(description="the process before the trial set up (CPU: its resident set; GPU: 0)")
    parameters_mb: float = Field(description="the model's weights")
    gradients_mb: float = Field(description="its trainable weights' gradients")
    optimizer_mb: float = Field(description="the optimizer's state after the steps")
    device_mb: Optional[float] = Field(None, description="the device's memory: the GPU's, or the node's RAM")
    gpu: bool = Field(False, description="measured on a GPU")
    node_cpus: int = Field(1, description="the CPUs of the machine it ran on")
    error: Optional[str] = Field(None, description="why the point could not be measured")
    seconds: dict = Field(default_factory=dict, description="what the measurement itself took: setup, training, "
                          "validation, checkpoint")


class Limited:
    """The first `n` batches of a loader (a validation pass timed on part of the split)."""

    def __init__(self, loader, n: int):
        self.loader, self.n = loader, n

    def __iter__(self):
        import itertools

        return itertools.islice(iter(self.loader), self.n)


def resident_mb() -> float:
    from pathlib import Path

    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(job: dict, data_dir: str, trial_dir: str, strategy: dict, hparams: dict, knobs: dict,
            first_point: Optional[Point] = None, ready: Callable[[], None] = lambda: None,
            ballast: bool = False) -> tuple[Optional[Point], object]:
    """One point: the trial's recipe set up and run for a few batches, a validation pass, a checkpoint.
    `first_point`: the strategy's first point, measured already in this process: this one times training only
    (validation, checkpoint, start-up and memory are the first's). `ready()`: called once set up and warm, before
    anything is timed (plan/together.py lines the processes up there); `ballast`: return then, timing nothing.
    Returns (the point, the recipe, still holding its device: the caller releases it)."""
    import torch

    from raytune_ft.plan.memory import MB, machine_ram_mb
    from raytune_ft.train.config import trial_config
    from raytune_ft.train.device import peak_memory
    from raytune_ft.train.recipe import TrialRecipe

    config = trial_config(job, data_dir, trial_dir, strategy, hparams)
    # one worker, whatever the trial has (the forecast scales to workers_per_trial; FSDP's shards are the memory
    # model's, plan/memory.py): a lone process has no process group to shard over
    config = config.model_copy(update={"resources": config.resources.model_copy(update={"workers_per_trial": 1})})
    gpu = bool(config.resources.gpus_per_worker) and torch.cuda.is_available()
    base = 0.0 if gpu else resident_mb()
    recipe = TrialRecipe(config, report=lambda metrics: None)
    took, clock = {}, time.perf_counter()
    recipe.setup()
    took["setup"] = time.perf_counter() - clock
    batch = int(hparams["batch_size"])
    recipe.train_epoch(1, limit=WARMUP)
    startup = recipe.first_step_s
    ready()
    if ballast:
        return None, recipe
    timed = time.perf_counter()  # (the wait for the others is not the measurement's)
    _, seen, first = recipe.train_epoch(1, limit=FIRST)
    n_first = max(1, round(seen / batch))
    more = min(MAX_BATCHES, max(FIRST, round(TARGET_S / max(first / n_first, 1e-6))))
    _, seen, rest = recipe.train_epoch(1, limit=more)
    n_rest = max(1, round(seen / batch))
    batch_s = (rest - first) / (n_rest - n_first) if n_rest >= n_first + 3 and rest > first else \
        (first + rest) / (n_first + n_rest)
    loader_s = max(0.0, first - n_first * batch_s)
    start = time.perf_counter()
    took["training"] = start - timed
    if first_point is not None:
        return first_point.model_copy(update={"knobs": knobs, "batch_size": batch, "batch_s": batch_s,
                                              "loader_s": loader_s, "seconds": took}), recipe
    # a process's first validation pass pays first-time costs (kernels for the new batch shape, the memory of
    # its activations), once per trial: a first pass, then one timed as every later epoch's
    validated = min(recipe.val_samples, VAL_BATCHES * config.training.eval_batch_size)
    recipe.validate(Limited(recipe.val_loader, VAL_BATCHES))
    first_pass = time.perf_counter() - start
    val = recipe.validate(Limited(recipe.val_loader, VAL_BATCHES))
    took["validation"] = time.perf_counter() - start
    eval_sample_s = (took["validation"] - first_pass) / max(1, validated)
    eval_first_s = max(0.0, 2 * first_pass - took["validation"])
    metrics = {"epoch": 1, "checkpoint_seconds": 0.0}
    recipe.save(metrics, val, True)
    took["checkpoint"] = time.perf_counter() - start - took["validation"]
    model = recipe.plain
    state = [t for s in recipe.optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
    device = recipe.accelerator.device
    return Point(
        strategy=strategy["name"], knobs=knobs, batch_size=batch, batch_s=batch_s, loader_s=loader_s,
        eval_sample_s=eval_sample_s, eval_first_s=eval_first_s, checkpoint_s=metrics["checkpoint_seconds"],
        startup_s=startup,
        peak_memory_mb=peak_memory(device)["peak_memory_mb"], base_mb=base,
        parameters_mb=sum(p.numel() * p.element_size() for p in model.parameters()) / MB,
        gradients_mb=sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad) / MB,
        optimizer_mb=sum(t.numel() * t.element_size() for t in state) / MB,
        device_mb=torch.cuda.get_device_properties(device).total_memory / MB if gpu else machine_ram_mb(),
        gpu=gpu, node_cpus=os.cpu_count() or 1, seconds=took), recipe


def measure_all(request: dict) -> list[dict]:
    """A strategy's points, one after the other in this process; a point that fails says why (and ends it).
    With request["sync"] (plan/together.py): its first point's timing starts with the others' of its wave, and
    once measured it trains on, untimed, until they are done (as trials train beside each other); a "ballast"
    request only does that."""
    import shutil
    import tempfile

    from raytune_ft.plan.together import Sync

    sync = Sync(request.get("sync"))
    out, first, recipe = [], None, None
    for k, (strategy, hparams, knobs) in enumerate(request["points"]):
        release(recipe)
        recipe = None
        work = tempfile.mkdtemp(prefix="raytune-ft-plan-")
        try:
            point, recipe = measure(request["job"], request["data_dir"], work, strategy, hparams, knobs, first,
                                    ready=sync.ready if k == 0 else (lambda: None), ballast=sync.ballast)
            if point is None:
                break
            first = first or point
            out.append(point.model_dump())
        except Exception as e:  # noqa: BLE001 - said by the plan, naming the strategy and the setting
            out.append({"strategy": strategy["name"], "knobs": knobs, "error": f"{type(e).__name__}: {e}"[:2000]})
            sync.ready(wait=False)  # (its wave does not wait for it)
            break
        finally:
            shutil.rmtree(work, ignore_errors=True)
    sync.done()
    if recipe is not None:
        sync.carry_on(lambda: recipe.train_epoch(1, limit=2))
    release(recipe)
    return out


def release(recipe) -> None:
    """A point's recipe let go: its model and optimizer dropped, the device's cache emptied."""
    import gc

    from raytune_ft.train.device import release_device

    if recipe is not None and hasattr(recipe, "accelerator"):
        for name in ("model", "optimizer"):
            if hasattr(recipe, name):
                delattr(recipe, name)
        release_device(recipe.accelerator.device)
    gc.collect()


def requests(job, data_dir) -> list[dict]:
    """One request per strategy: its calibration points as (strategy, hparams, knobs)."""
    from raytune_ft.plan.space import calibration_points, cost_knobs, trial_settings
    from raytune_ft.sweep.space import strategy_spaces

    resolved = job.resolved()
    out = []
    for space in strategy_spaces(job):
        points = [(*trial_settings(space, p), p) for p in calibration_points(cost_knobs(space))]
        out.append({"job": resolved, "data_dir": str(data_dir), "points": points})
    return out


def calibrate(job, data_dir, *, parallel: int = 1, on_ray: bool = False) -> list[Point]:
    """Every strategy's points (a failed one with its error), `parallel` strategies at a time."""
    from raytune_ft.plan.together import side_by_side

    work = requests(job, data_dir)
    rows = on_cluster(job, work) if on_ray else side_by_side(work, parallel, job.resources)
    return [Point.model_validate(r) if not r.get("error") else failed(r) for r in rows]


def failed(row: dict) -> Point:
    return Point(strategy=row["strategy"], knobs=row["knobs"], batch_size=0, batch_s=0.0, eval_sample_s=0.0,
                 checkpoint_s=0.0, startup_s=0.0, peak_memory_mb=0.0, base_mb=0.0, parameters_mb=0.0,
                 gradients_mb=0.0, optimizer_mb=0.0, error=row["error"])


def on_cluster(job, work: list[dict]) -> list[dict]:
    """On the cluster Ray is connected to: one task per strategy holding a worker's CPUs and GPUs, in a process
    of its own (max_calls=1), so that its memory is its own."""
    import ray

    res = job.resources
    task = ray.remote(num_cpus=res.cpus_per_worker, num_gpus=res.gpus_per_worker or 0, max_calls=1)(measure_all)
    return [row for rows in ray.get([task.remote(r) for r in work]) for row in rows]


if __name__ == "__main__":
    print(json.dumps(measure_all(json.loads(sys.stdin.read()))), flush=True)
