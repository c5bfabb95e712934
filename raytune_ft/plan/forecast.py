"""The forecast of a job: per strategy (and train size) the seconds an epoch and a trial take, the epochs the
scheduler is expected to run, the confirm stage, and for the job the compute (CPU- / GPU-hours), the wall time
with the trials the cluster holds at once, and each worker's peak memory; what plan.json holds.

    fc = forecast(job, meta, subsets, models, concurrency=2, overheads={"data": 1.7, "preflight": 2.0})
    fc.wall_seconds, fc.compute_seconds, fc.strategies[0].trial_epochs
"""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field

from raytune_ft.plan.costs import CostModel
from raytune_ft.plan.memory import MemoryEstimate
from raytune_ft.plan.schedule import SimTrial, expected, make_rules
from raytune_ft.plan.space import trials_per_strategy

RAY_START_S = 5.0  # the embedded local Ray cluster's start (a cluster's attach is quicker; counted the same)
TABLES_S = 2.0  # the tables and curves written at the end
# A confirm trial scores the test split at each epoch better than every one before (the best-validation one):
# about half its epochs on the quickstart's curves.
TEST_SHARE = 0.5


class StrategyForecast(BaseModel):
    strategy: str = Field(description="the strategy's name")
    train_size: Optional[int] = Field(None, description="training samples (data.train_sizes), None: all of train")
    trials: int = Field(description="search trials")
    epoch_seconds: float = Field(description="an epoch: training, validation and a checkpoint, the mean over the "
                                 "settings trials draw")
    trial_seconds: float = Field(description="a trial that runs every epoch, its start and stop included")
    trial_epochs: float = Field(description="epochs its search trials are expected to run, under the scheduler")
    stopped: float = Field(description="search trials expected to be stopped early")
    compute_seconds: float = Field(description="its search trials' wall seconds, summed")
    confirm_trials: int = Field(0, description="select and confirm trials")
    confirm_compute_seconds: float = Field(0.0, description="their wall seconds, summed")
    peak_memory_mb: float = Field(description="a worker's peak memory at its largest searched setting")
    memory: MemoryEstimate = Field(description="what that peak is made of")
    largest: str = Field(description="its largest searched setting, in words")


class Forecast(BaseModel):
    job: str = Field(description="the job's name")
    made_at: str = Field(description="when the forecast was made (UTC)")
    calibrated_on: str = Field(description="where the calibration ran, or the finished run it was taken from")
    calibration_seconds: float = Field(description="what the calibration took")
    concurrency: int = Field(description="trials at a time")
    num_samples: int = Field(description="search.num_samples the forecast is for")
    epochs: int = Field(description="training.epochs: the most a trial runs")
    cpus_per_trial: float
    gpus_per_trial: float
    strategies: list[StrategyForecast]
    stages: dict = Field(description="wall seconds of each part of the run: data, preflight, ray_start, search, "
                         "select, confirm, test_evaluation, tables")
    wall_seconds: float = Field(description="the run's wall time, start to end")
    compute_seconds: float = Field(description="every trial's wall seconds, summed (search, select, confirm)")
    cpu_hours: float = Field(description="compute_seconds x the CPUs a trial holds, in hours")
    gpu_hours: float = Field(description="compute_seconds x the GPUs a trial holds, in hours")
    capacity_mb: Optional[float] = Field(None, description="the memory a worker has (None: not known here)")
    capacity: str = Field("", description="how that was reckoned")
    budget: Optional[dict] = Field(None, description="search.budget and the num_samples it set")
    notes: list[str] = Field(default_factory=list, description="what the forecast assumes, where it is weak")

    def hours(self, kind: str) -> float:
        """gpu_hours, cpu_hours or wall_hours of this forecast."""
        return self.wall_seconds / 3600 if kind == "wall_hours" else getattr(self, kind)


def sizes_of(meta: dict, subsets: list[dict]) -> list[tuple[Optional[int], int]]:
    """(train_size label as the tables write it, training samples) of each train size."""
    if not subsets:
        return [(None, meta["splits"]["train"]["samples"])]
    return [(s["size"], s["size"]) for s in subsets]


def forecast(job, meta: dict, subsets: list[dict], models: dict[str, CostModel], concurrency: int, *,
             num_samples: Optional[int] = None, overheads: Optional[dict] = None, calibrated_on: str = "",
             calibration_seconds: float = 0.0, capacity: Optional[tuple[float, str]] = None,
             draws: Optional[int] = None) -> Forecast:
    """The job's forecast from each strategy's cost model; num_samples: another than the spec's (a budget's)."""
    import time

    from raytune_ft.plan.memory import shards
    from raytune_ft.sweep.space import strategy_spaces

    res, training, search = job.resources, job.training, job.search
    n = num_samples or search.num_samples
    sizes = sizes_of(meta, subsets)
    val_total = meta["splits"]["validation"]["samples"]
    test_total = meta["splits"].get("test", {}).get("samples", 0)

    def val_samples(train: int) -> int:
        return min(val_total, train) if job.data.cap_validation else val_total

    spaces = strategy_spaces(job)
    epoch = {(sp["name"], size): models[sp["name"]].epoch_seconds(train, val_samples(train), res.workers_per_trial,
                                                                  training.keep_checkpoint)
             for sp in spaces for size, train in sizes}
    # the search: trials in the order Tune makes them, each scheduler group its own rule
    order = [(sp["name"], size) for _ in range(n) for sp in spaces
             for _ in range(trials_per_strategy(job, sp, 1)) for size, _ in sizes]
    sim = [SimTrial(group=(name if search.scheduler.per_strategy else "all", size),
                    start_s=models[name].start_seconds(), epoch_s=epoch[(name, size)], end_s=models[name].end_s)
           for name, size in order]
    rules = make_rules(search.scheduler.name, epochs=training.epochs, grace_period=search.scheduler.grace_period,
                       reduction_factor=search.scheduler.reduction_factor)
    found = expected(sim, rules, training.epochs, concurrency, draws=draws, seed=search.seed)
    stages = {"data": 0.0, "preflight": 0.0, **(overheads or {}), "ray_start": RAY_START_S,
              "search": found.makespan_s, "select": 0.0, "confirm": 0.0}
    confirm = confirm_stage(job, spaces, sizes, models, epoch, concurrency, test_total, stages)
    rows = []
    for sp in spaces:
        name, model = sp["name"], models[sp["name"]]
        memory = model.memory(shards(job))
        for size, _ in sizes:
            mine = [i for i, key in enumerate(order) if key == (name, size)]
            epochs = sum(found.epochs[i] for i in mine)
            rows.append(StrategyForecast(
                strategy=name, train_size=size, trials=len(mine), epoch_seconds=epoch[(name, size)],
                trial_seconds=model.start_seconds() + model.end_s + training.epochs * epoch[(name, size)],
                trial_epochs=epochs, stopped=sum(found.stopped[i] for i in mine),
                compute_seconds=len(mine) * (model.start_seconds() + model.end_s) + epochs * epoch[(name, size)],
                confirm_trials=confirm[(name, size)][0], confirm_compute_seconds=confirm[(name, size)][1],
                peak_memory_mb=memory.total_mb(), memory=memory, largest=model.largest()))
    # each strategy's best search trial scored on the test split, in the driver: its model built, a pass
    stages["test_evaluation"] = sum(m.first.startup_s + m.eval_seconds(test_total) for m in models.values()) \
        if search.keep_best and test_total else 0.0
    stages["tables"] = TABLES_S
    compute = sum(r.compute_seconds + r.confirm_compute_seconds for r in rows)
    cpus, gpus = res.workers_per_trial * res.cpus_per_worker, res.workers_per_trial * res.gpus_per_worker
    return Forecast(
        job=job.name, made_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), calibrated_on=calibrated_on,
        calibration_seconds=calibration_seconds, concurrency=concurrency, num_samples=n, epochs=training.epochs,
        cpus_per_trial=cpus,
        gpus_per_trial=gpus, strategies=rows, stages=stages, wall_seconds=sum(stages.values()),
        compute_seconds=compute, cpu_hours=compute * cpus / 3600, gpu_hours=compute * gpus / 3600,
        capacity_mb=capacity[0] if capacity else None, capacity=capacity[1] if capacity else "",
        notes=notes(job))


def confirm_stage(job, spaces, sizes, models, epoch: dict, concurrency: int, test_total: int,
                  stages: dict) -> dict:
    """{(strategy, size): (trials, compute seconds)} of the select and confirm stages (every epoch, no
    scheduler); their wall seconds go into `stages`."""
    out = {(sp["name"], size): (0, 0.0) for sp in spaces for size, _ in sizes}
    confirm = job.search.confirm
    if confirm is None:
        return out
    epochs = job.training.epochs
    fifo = make_rules("none", epochs=epochs, grace_period=1, reduction_factor=2)
    parts = [("select", confirm.top_k * confirm.selection_seeds, 0.0)] if confirm.top_k > 1 else []
    parts.append(("confirm", confirm.seeds, TEST_SHARE))
    for stage, per, test_share in parts:
        keys = [(sp["name"], size) for sp in spaces for size, _ in sizes for _ in range(per)]
        cost = {k: epoch[k] + test_share * models[k[0]].eval_seconds(test_total) for k in set(keys)}
        trials = [SimTrial(group=k, start_s=models[k[0]].start_seconds(), epoch_s=cost[k], end_s=models[k[0]].end_s)
                  for k in keys]
        stages[stage] = expected(trials, fifo, epochs, concurrency, draws=1).makespan_s
        for k in set(keys):
            m = models[k[0]]
            trials_k, seconds = out[k]
            out[k] = (trials_k + per, seconds + per * (m.start_seconds() + m.end_s + epochs * cost[k]))
    return out


def notes(job) -> list[str]:
    """What the forecast assumes, said with it."""
    out = ["early stopping: the expected epochs over simulated score draws (plan/schedule.py), not the worst case"]
    if job.training.patience:
        out.append("training.patience can end trials sooner than the forecast says (it is not simulated)")
    if job.resources.workers_per_trial > 1:
        out.append(f"{job.resources.workers_per_trial} workers per trial: the calibration ran one; the forecast "
                   "takes their batches as split evenly, without the gradients' synchronisation")
    return out
