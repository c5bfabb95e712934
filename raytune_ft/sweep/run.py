"""The sweep, start to end: the data prepared once, a pre-flight, Ray started, the search stage, the
confirm stage (search.confirm), the tables, each strategy's best trial on the test split.

    run_sweep(job, run_dir)     # raytune-ft run / resume call this

Each step does its own work elsewhere: sweep/prepare.py (the data, EWC's Fisher, provenance),
sweep/preflight.py, sweep/ray_setup.py, sweep/driver.py (the stages). This function only orders them.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

from raytune_ft.data import load_meta
from raytune_ft.errors import InputError
from raytune_ft.layout import RunLayout
from raytune_ft.sweep.preflight import preflight
from raytune_ft.sweep.prepare import prepare_run
from raytune_ft.sweep.ray_setup import concurrency, init_ray, local_resources, quiet_libraries


def run_sweep(job, run_dir: Path, *, address: Optional[str] = None, verbose: bool = False,
              printer: Callable[[str], None] = print, num_cpus: Optional[int] = None, resume: bool = False,
              on_update: Optional[Callable] = None, plan: bool = False) -> list[dict]:
    """Prepare the data once, run the whole sweep, write the tables; return the trials' rows.

    resume=True goes on with the sweep in `run_dir` after its driver died: finished trials stay as
    they are, trials that were running go on from their last epoch, the others start.
    plan=True: before the first trial, the forecast (raytune_ft/plan/: a short calibration of each strategy)
    is printed and written to plan.json, a strategy a worker cannot hold is refused, search.budget is resolved.
    """
    quiet_libraries(verbose)  # before anything here loads a tokenizer or a model
    from raytune_ft.sweep.driver import SweepDriver  # Ray Tune's modules: heavy

    layout = RunLayout(run_dir.resolve())
    if job.search.budget is not None and not (plan or resume):
        raise InputError("search.budget sets num_samples from the forecast: run the job with its plan "
                         "(leave --no-plan out), or give search.num_samples instead")
    at_once = None
    if address is None:  # the local cluster will hold this machine's CPUs / GPUs: a trial too big is refused now
        at_once = concurrency(job, local_resources(num_cpus), local=True) * job.resources.workers_per_trial
    started = time.monotonic()
    if resume and layout.data_meta.exists():
        meta = load_meta(layout.data)
    else:
        if address is not None:  # on a cluster, its free CPUs decode the data; the driver only writes it
            init_ray(address, verbose, num_cpus)
        meta = prepare_run(job, layout, on_cluster=address is not None, printer=printer)
    overheads = {"data": time.monotonic() - started}
    preflight(job, layout.data, workers_at_once=at_once)  # at_once: a worker's memory is checked here
    overheads["preflight"] = time.monotonic() - started - overheads["data"]
    subsets = train_subsets(job, meta)
    if plan and not resume:
        from raytune_ft.plan.make import plan_run

        job = plan_run(job, layout, meta, subsets, address=address, num_cpus=num_cpus, overheads=overheads,
                       printer=printer)
    init_ray(address, verbose, num_cpus)
    sweep = SweepDriver(job, layout, meta, subsets, printer, resume=resume, local=address is None,
                        on_update=on_update)
    if not (sweep.confirming or sweep.selecting):  # (resumed after the search had ended)
        sweep.search()
    if job.search.confirm:
        sweep.confirm()
    return sweep.finish()


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
