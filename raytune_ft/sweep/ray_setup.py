"""Ray start-up, the resources a trial asks for, how many trials fit, and freeing what a stopped
trial held."""
from __future__ import annotations

import math
import os
import time
from typing import Optional

from raytune_ft.errors import InputError
from raytune_ft.strategies import STRATEGIES

# Trial drivers (one per running trial, light: they only wait on their TorchTrainer) ask for this
# custom resource instead of CPUs, so they never take a CPU a Train worker needs. The local
# cluster defines plenty; on a real cluster the head node defines it (cluster.yaml).
DRIVER_RESOURCE = "raytune_ft_driver"


def ray_environment() -> None:
    """Set before Ray or Tune start: no outside calls (usage stats), our progress lines instead of
    Ray's tables, and Tune's experiment state saved at most every 5 s (what `resume` starts from).

    And two of Ray Train's per-trial helpers a trial of ours does not use, each a process that polls
    while the trial trains: the PreemptionWatcher (spot-instance notices: a trial on a
    preempted node is restarted from its latest checkpoint by FailureConfig anyway) and Train's
    Prometheus metrics callbacks. A user who wants them sets the variables to 1.

    And Tune and Train leave every process in the folder it started in (RAY_CHDIR_TO_TRIAL_DIR=0): by
    default they move a trial's driver and workers into a folder of Ray's, where a model or weights path
    the spec gives relative to the job's folder (or the package `submit` ships) is not found. Our trials
    write only to absolute paths (the run folder, Ray's checkpoints).

    And Tune's automatic per-trial loggers (CSV, JSON and, where tensorboardX is installed, TensorBoard files
    in every trial's folder) are off: the run's tables are ours, and the TensorBoard logger warned about every
    checkpoint_score of -inf. sweep/driver.py's tracking_callbacks adds TensorBoard / MLflow where the spec
    asks. (The ExperimentAnalysis a finished stage returns then finds no trial's result files: quiet_libraries
    keeps its warning about that off the console.)"""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "5")
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    os.environ.setdefault("RAY_TRAIN_METRICS_ENABLED", "0")
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")


def quiet_libraries(verbose: bool) -> None:
    """Without --verbose: our progress lines only. No "Loading weights" progress bars (the pre-flight in
    this process, every trial's workers, which inherit the environment of the local cluster), not Ray's
    notice that token authentication is on (it stays on: only the notice goes), and not Tune's warning, at
    each stage's end, that it found no result files for the trials (its per-trial loggers are off: the
    run's tables are ours)."""
    import logging
    import sys

    if verbose:
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # read when `datasets` is imported (hf_dataset)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "transformers" in sys.modules:  # imported already: it read the variables then
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    from raytune_ft import internals

    internals.quiet_token_notice()
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)


def init_ray(address: Optional[str] = None, verbose: bool = False, num_cpus: Optional[int] = None):
    """Start Ray's embedded local cluster (loopback only, no dashboard unless asked) or attach to one."""
    import logging

    ray_environment()  # quiet_libraries(verbose) ran already, at the start of run_sweep
    import ray

    if ray.is_initialized():
        return
    kwargs = dict(logging_level=logging.INFO if verbose else logging.WARNING, log_to_driver=verbose,
                  configure_logging=True)
    if address:
        try:
            ray.init(address=address, **kwargs)
        except RuntimeError as e:  # Ray refuses a cluster of another Ray or Python release: exit 2, both named
            from raytune_ft.cluster.versions import from_ray_refusal

            refusal = from_ray_refusal(e, address)
            if refusal is None:
                raise
            raise refusal from None
    else:
        # No dashboard unless asked (RAYTUNE_FT_RAY_DASHBOARD=1) or needed: eleven processes, ~0.9 GB and
        # ~2 s of start-up that a local run on the fast path does not use (our live view and tables show the
        # sweep; the placement groups of stopped trials are freed through the GCS, sweep/callback.py). On the
        # public path Ray Train's PlacementGroupCleaner runs, and it asks the dashboard's State API whether
        # its controller is alive: without one it never exits after Tune stops a trial.
        from raytune_ft import internals

        # Loopback only: Ray swaps 127.0.0.1 for the machine's LAN address, and its GCS and raylet then
        # listen on every interface. Ray's single-machine mode (the switch it uses on macOS / Windows,
        # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read when Ray is imported: the CLI sets it first) keeps the
        # node on 127.0.0.1, so every server binds there.
        internals.keep_local_cluster_on_loopback()
        dashboard = os.environ.get("RAYTUNE_FT_RAY_DASHBOARD", "0") == "1" or not internals.fast_path()
        # address="local": always a fresh embedded cluster, never one that `ray start` left on this machine
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=dashboard,
                 dashboard_host="127.0.0.1", resources={DRIVER_RESOURCE: 1000},
                 **kwargs)
        where = {n["NodeManagerAddress"] for n in ray.nodes()}
        if where != {"127.0.0.1"}:
            logging.getLogger(__name__).warning(
                "the local Ray cluster serves on %s, not only 127.0.0.1: Ray was imported before "
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 was set; set it in the environment to keep it on loopback",
                ", ".join(sorted(where)))


def local_cluster_on_loopback() -> None:
    """Before Ray is imported, for a run on the embedded local cluster: Ray's single-machine mode."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def driver_resources() -> dict:
    """What one trial driver asks for: the custom resource where the cluster has it."""
    import ray

    return {DRIVER_RESOURCE: 1} if ray.cluster_resources().get(DRIVER_RESOURCE) else {"CPU": 0.01}


def local_resources(num_cpus: Optional[int] = None) -> dict:
    """What the embedded local cluster will hold (init_ray), known before Ray starts."""
    import torch

    return {"CPU": num_cpus or os.cpu_count(), "GPU": torch.cuda.device_count(), DRIVER_RESOURCE: 1000}


def concurrency(job, have: Optional[dict] = None, *, local: bool = False) -> int:
    """How many trials the cluster can hold at once (bounded by max_concurrent_trials).

    have: the cluster's resources (default: the running cluster's). A trial it can never hold is an
    InputError, except on a cluster that may grow (not `local`) when max_concurrent_trials is set.
    """
    if have is None:
        import ray

        have = ray.cluster_resources()
    res = job.resources
    need_cpu = res.workers_per_trial * res.cpus_per_worker + (0 if have.get(DRIVER_RESOURCE) else 0.01)
    fits = [have.get("CPU", 0) / need_cpu]
    if res.gpus_per_worker:
        fits.append(have.get("GPU", 0) / (res.workers_per_trial * res.gpus_per_worker))
    n = math.floor(min(fits) + 1e-9)
    cuda_only = [f"strategies[{i}] ({s.name})" for i, s in enumerate(job.strategies) if STRATEGIES.get(s.name).needs_cuda]
    if cuda_only and not have.get("GPU") and (local or not res.max_concurrent_trials):
        where = "this machine (the local Ray cluster)" if local else "the cluster"
        raise InputError(f"{', '.join(cuda_only)} needs a CUDA GPU, and {where} has none: run it where there are "
                         "GPUs, or use lora" + ("" if local else " (a cluster whose GPU workers autoscale from zero: "
                                                "set resources.max_concurrent_trials, and trials wait for them)"))
    if n < 1 and res.max_concurrent_trials and not local:
        # an autoscaling cluster (cluster.yaml) starts with no GPU workers: trials wait for the autoscaler
        return res.max_concurrent_trials
    if n < 1:
        where = "this machine (the local Ray cluster)" if local else "the cluster"
        raise InputError(
            f"resources: a trial needs {need_cpu:g} CPU(s)"
            + (f" and {res.workers_per_trial * res.gpus_per_worker:g} GPU(s)" if res.gpus_per_worker else "")
            + f" but {where} has {have.get('CPU', 0):g} CPU(s), {have.get('GPU', 0):g} GPU(s): "
            "lower resources.workers_per_trial / cpus_per_worker / gpus_per_worker"
            + ("" if local else ", or, on a cluster whose workers autoscale from zero, set "
               "resources.max_concurrent_trials"))
    return min(n, res.max_concurrent_trials or n)


def free_placement_group(pg_hex: str) -> bool:
    """Remove a trial's Train placement group if it is still held; True if we removed it."""
    import ray
    from ray import PlacementGroupID
    from ray.util.placement_group import PlacementGroup, placement_group_table, remove_placement_group

    if not pg_hex:
        return False
    pg = PlacementGroup(PlacementGroupID(bytes.fromhex(pg_hex)))
    try:
        if placement_group_table(pg).get("state") in (None, "REMOVED"):
            return False
        remove_placement_group(pg)
        return True
    except (ray.exceptions.RaySystemError, ValueError, KeyError):
        return False


def live_placement_groups(ids: Optional[set[str]] = None) -> list[dict]:
    """Placement groups not yet removed: all of them, or only those with these hex ids."""
    from ray.util.placement_group import placement_group_table

    return [v for k, v in placement_group_table().items()
            if v["state"] != "REMOVED" and (ids is None or k in ids)]


def wait_for_release(ids: set[str], timeout_s: float = 30.0) -> None:
    """Trials stopped by Tune free their placement groups asynchronously: wait until ours are gone."""
    deadline = time.monotonic() + timeout_s
    while live_placement_groups(ids) and time.monotonic() < deadline:
        time.sleep(0.5)
