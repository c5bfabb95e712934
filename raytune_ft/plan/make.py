"""The plan, start to end, for `raytune-ft plan` and for `run` before its first trial: calibrate (or read a
finished run), fit each strategy's costs, forecast, resolve search.budget, and say what does not fit.

    fc, job = plan_job(job, layout, meta, subsets, concurrency=2, on_ray=False, overheads={"data": 1.8})
    check_fit(job, fc)        # InputError (exit 2) naming each strategy a worker cannot hold
    write_plan(fc, layout)    # plan.json
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

from raytune_ft.errors import InputError
from raytune_ft.layout import RunLayout
from raytune_ft.plan import memory
from raytune_ft.plan.calibrate import Point, calibrate
from raytune_ft.plan.costs import CostModel
from raytune_ft.plan.forecast import Forecast, forecast

# On a CPU, a trial's worker is a Ray worker process: what it holds beside the calibration's plain process
# (Ray's core worker, its libraries): the quickstart's and a text job's trials peaked 50-115 MB above their
# calibration's, with 120 MB counted (2026-12-04).
RAY_WORKER_MB = 200.0
NEAR = 0.85  # a peak above this share of what a worker has is said
OOM = ("out of memory", "OutOfMemoryError", "MemoryError", "code -9")


def plan_job(job, layout: RunLayout, meta: dict, subsets: list[dict], *, concurrency: int, on_ray: bool,
             overheads: Optional[dict] = None, printer: Callable[[str], None] = print,
             from_run: Optional[Path] = None) -> tuple[Forecast, object]:
    """(the forecast, the job with search.budget resolved into num_samples, or as it was)."""
    from raytune_ft.sweep.space import strategy_spaces

    started = time.monotonic()
    spaces = strategy_spaces(job)
    if from_run is not None:
        from raytune_ft.plan.from_run import points_from_run

        points, ray = points_from_run(from_run, job)
        where = f"the trials of run {Path(from_run).name}"
    else:
        where = "the cluster" if on_ray else "this machine"
        printer(f"plan: calibrating {len(spaces)} strategies on {where}, {concurrency} at a time")
        points, ray = calibrate(job, layout.data, parallel=concurrency, on_ray=on_ray), {}
    refuse_failures(job, points)
    models = {sp["name"]: CostModel.fit(sp, [p for p in points if p.strategy == sp["name"]],
                                        average=from_run is not None, **ray) for sp in spaces}
    if from_run is None and not on_ray:
        for m in models.values():
            m.extra_base_mb = 0.0 if m.first.gpu else RAY_WORKER_MB
    have = worker_capacity(job, points, concurrency, on_ray and from_run is None)
    seconds = time.monotonic() - started

    def make(n: Optional[int]) -> Forecast:
        return forecast(job, meta, subsets, models, concurrency, num_samples=n, overheads=overheads,
                        calibrated_on=where, calibration_seconds=seconds, capacity=have)

    if job.search.budget is None:
        return with_warnings(make(None)), job
    from raytune_ft.plan.budget import samples_for_budget

    budget = job.search.budget
    n, fc = samples_for_budget(budget, make)
    fc.budget = {"kind": budget.kind(), "hours": budget.hours(), "num_samples": n, "forecast": fc.hours(budget.kind())}
    search = job.search.model_copy(update={"num_samples": n, "budget": None})
    return with_warnings(fc), job.model_copy(update={"search": search})


def with_warnings(fc: Forecast) -> Forecast:
    """A note for each strategy whose worker's peak comes close to what a worker has (NEAR of it)."""
    if fc.capacity_mb:
        for s in fc.strategies:
            share = s.peak_memory_mb / fc.capacity_mb
            if NEAR <= share <= 1:
                fc.notes.append(f"{s.strategy}: a worker's peak is {share:.0%} of what it has, at "
                                f"{s.largest}: a larger setting, or more at once, would not fit")
    return fc


def plan_run(job, layout: RunLayout, meta: dict, subsets: list[dict], *, address: Optional[str],
             num_cpus: Optional[int], overheads: dict, printer: Callable[[str], None]):
    """`run`'s plan, after the data are prepared and before Ray starts trials: the forecast printed and written to
    plan.json, a strategy a worker cannot hold refused (InputError), search.budget resolved into num_samples (the
    run's job.yaml then holds it, so that `resume` goes on with it). Returns the job to run."""
    import yaml

    from raytune_ft.plan.show import forecast_lines
    from raytune_ft.sweep.ray_setup import concurrency, local_resources

    n = concurrency(job, local_resources(num_cpus), local=True) if address is None else concurrency(job)
    fc, planned = plan_job(job, layout, meta, subsets, concurrency=n, on_ray=address is not None,
                           overheads=overheads, printer=printer)
    for line in forecast_lines(fc, job.search.scheduler.name):
        printer(line)
    write_plan(fc, layout.plan)
    check_fit(job, fc)
    if planned is not job:
        layout.job.write_text(yaml.safe_dump(planned.portable(), sort_keys=False))
    return planned


def refuse_failures(job, points: list[Point]) -> None:
    """A point the calibration could not measure: every such trial would fail the same way (out of memory: said
    with what would make it fit)."""
    names = [s.name for s in job.strategies]
    lines = []
    for p in points:
        if not p.error:
            continue
        where = ", ".join(f"{k} {v}" for k, v in p.knobs.items()) or "its settings"
        i = names.index(p.strategy)
        if any(word in p.error for word in OOM):
            lines.append(f"strategies[{i}] ({p.strategy}): its calibration ran out of memory at {where} "
                         f"({p.error.splitlines()[0][:300]}), so every such trial would. To fit it: a smaller batch "
                         "size; gradient checkpointing; FSDP over more workers per trial; QLoRA; or more memory "
                         "per worker (fewer trials at a time, a larger GPU)")
        else:
            lines.append(f"strategies[{i}] ({p.strategy}): its calibration at {where} failed, so every such trial "
                         f"would: {p.error[-1500:]}")
    if lines:
        raise InputError("\n".join(lines))


def worker_capacity(job, points: list[Point], concurrency: int, on_ray: bool) -> Optional[tuple[float, str]]:
    """What a worker has: measured where the calibration ran (on_ray), else this machine's."""
    res = job.resources
    at_once = concurrency * res.workers_per_trial
    if not on_ray:
        return memory.capacity(job, at_once)
    good = [p for p in points if not p.error and p.device_mb]
    if not good:
        return None
    if res.gpus_per_worker:
        return memory.gpu_capacity(min(p.device_mb for p in good), res.gpus_per_worker)
    node = min(good, key=lambda p: p.device_mb)
    return memory.ram_capacity(node.device_mb, min(at_once, max(1, int(node.node_cpus // res.cpus_per_worker))))


def check_fit(job, fc: Forecast) -> None:
    """InputError (exit 2) naming each strategy whose worker's peak exceeds what the worker has."""
    have = (fc.capacity_mb, fc.capacity) if fc.capacity_mb is not None else None
    memory.refuse_what_does_not_fit(job, {s.strategy: (s.memory, s.largest) for s in fc.strategies}, have)


def write_plan(fc: Forecast, path: Path) -> None:
    from raytune_ft.files import replacing

    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        Path(tmp).write_text(fc.model_dump_json(indent=1))


def read_plan(path: Path) -> Optional[Forecast]:
    return Forecast.model_validate_json(Path(path).read_text()) if Path(path).exists() else None
