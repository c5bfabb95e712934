"""The sweep: Tune over strategies x hyperparameters, one Ray Train `TorchTrainer` per trial.

Three layers, each a plain function (Ray's own Train + Tune split):
  worker.train_trial   runs in every Train worker and reports each epoch;
  _trial_driver        one per Tune trial: builds and fits a TorchTrainer;
  run_sweep            builds the search space, the scheduler and the Tuner, and writes the tables.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from raytune_ft import storage
from raytune_ft.hparams import HParams
from raytune_ft.results import epoch_rows, error_reason, strategy_rows, trial_row, write_table
from raytune_ft.space import Sampler
from raytune_ft.spec import InputError

# Trial drivers (one per running trial, light: they only wait on their TorchTrainer) ask for this
# custom resource instead of CPUs, so they never take a CPU a Train worker needs. The local
# cluster defines plenty; on a real cluster the head node defines it (cluster.yaml).
DRIVER_RESOURCE = "raytune_ft_driver"

# Our runs make no outside calls, and Ray's own progress tables are replaced by ours.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Tune saves its experiment state (trials, search) at most this often: what `resume` starts from.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "5")
SWEEP_STATE = "sweep_state.json"


# --------------------------------------------------------------------------- search space

def _domain(value, algorithm: str):
    if not isinstance(value, Sampler):
        return value
    if algorithm == "grid" and value.kind == "choice":
        return Sampler("grid", value.values).to_tune()
    return value.to_tune()


def strategy_spaces(job) -> list[dict]:
    """Per strategy: its knobs and its hyperparameters (job defaults + its overrides), as samplers."""
    out = []
    for s in job.strategies:
        hp = {k: getattr(s.hparams, k) if getattr(s.hparams, k) is not None else getattr(job.search.hparams, k)
              for k in HParams.model_fields}
        out.append({"name": s.name, **s.knobs(), "hparams": hp})
    return out


def tune_param_space(job) -> dict:
    """A grid over strategies; inside each, its own samplers (Tune resolves nested domains)."""
    from ray import tune

    algorithm = job.search.algorithm

    def convert(d):
        return {k: convert(v) if isinstance(v, dict) else _domain(v, algorithm) for k, v in d.items()}
    return {"strategy": tune.grid_search([convert(s) for s in strategy_spaces(job)])}


def make_scheduler(job, replay: Optional[dict] = None):
    """The early-stopping scheduler: one per strategy (default) or one shared by all trials.

    `replay` ({trial_id: per-epoch metrics}) holds the trials a resumed sweep had finished: Tune
    does not save a scheduler's state, so their results are fed to it again as Tune re-adds them.
    """
    from ray.tune.schedulers import ASHAScheduler, AsyncHyperBandScheduler, FIFOScheduler, MedianStoppingRule

    sched, epochs = job.search.scheduler, job.training.epochs
    common = dict(time_attr="epoch", metric=job.search.metric, mode=job.search.mode)
    grace = min(sched.grace_period, epochs)
    if sched.name == "none":
        return FIFOScheduler()
    if sched.name == "asha":
        make = lambda: ASHAScheduler(max_t=epochs, grace_period=grace,  # noqa: E731
                                     reduction_factor=sched.reduction_factor, **common)
    elif sched.name == "hyperband":  # asynchronous HyperBand: several ASHA brackets, no pausing
        make = lambda: AsyncHyperBandScheduler(max_t=epochs, grace_period=grace, brackets=3,  # noqa: E731
                                               reduction_factor=sched.reduction_factor, **common)
    else:
        make = lambda: MedianStoppingRule(grace_period=grace, min_samples_required=3, **common)  # noqa: E731
    return grouped_scheduler(make, per_strategy=sched.per_strategy, replay=replay or {})


def grouped_scheduler(make, per_strategy: bool, replay: dict):
    """Trials grouped by strategy (or all in one group), each group with its own scheduler from `make`.

    Per strategy, a trial is only ever compared with its own kind. Strategies learn at different
    speeds (a LoRA update starts at zero; a frozen backbone's head converges in an epoch), so one
    shared ASHA would cut every slow starter at the first rung and the leaderboard would show
    their first-epoch scores.
    """
    from ray.tune.schedulers import FIFOScheduler

    class Grouped(FIFOScheduler):
        def __init__(self):
            super().__init__()
            self.children = {}
            self.replayed = set()  # trials that ended before a resume: their results were replayed

        def set_search_properties(self, metric, mode, **spec):
            return True  # each child was built with the sweep's metric and mode

        def child(self, trial):
            name = trial.config["strategy"]["name"] if per_strategy else "all"
            if name not in self.children:
                self.children[name] = make()
            return self.children[name]

        def on_trial_add(self, controller, trial):
            self.child(trial).on_trial_add(controller, trial)
            history = replay.pop(trial.trial_id, None)
            if history:  # a trial that ended before the sweep was resumed: its rungs count again
                for result in history:
                    self.child(trial).on_trial_result(controller, trial, result)
                self.child(trial).on_trial_complete(controller, trial, history[-1])
                self.replayed.add(trial.trial_id)  # whatever Tune does with it now is not news

        def on_trial_result(self, controller, trial, result):
            if trial.trial_id in self.replayed:
                return self.CONTINUE
            return self.child(trial).on_trial_result(controller, trial, result)

        def on_trial_complete(self, controller, trial, result):
            if trial.trial_id not in self.replayed:
                self.child(trial).on_trial_complete(controller, trial, result)

        def on_trial_error(self, controller, trial):
            if trial.trial_id not in self.replayed:
                self.child(trial).on_trial_error(controller, trial)

        def on_trial_remove(self, controller, trial):
            if trial.trial_id not in self.replayed:
                self.child(trial).on_trial_remove(controller, trial)

        def debug_string(self):
            return "; ".join(f"{k}: {v.debug_string()}" for k, v in self.children.items())

    return Grouped()


# --------------------------------------------------------------------------- one trial

def _ray_worker_entry(config: dict) -> None:
    from raytune_ft.worker import train_trial

    train_trial(config)


def _trial_driver(config: dict, *, job: dict, data_dir: str, run_dir: str) -> None:
    """A Tune function trainable: one TorchTrainer per trial, its reports forwarded to Tune."""
    import ray.train
    from ray import tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from raytune_ft.worker import trial_config

    trial_id = tune.get_context().get_trial_id()
    state = Path(run_dir) / SWEEP_STATE
    before = json.loads(state.read_text()).get(trial_id, {}) if state.exists() else {}
    if before.get("status", "running") != "running":
        # It ended before the driver died, after Tune last saved its state: not run again. Its last
        # result goes to Tune (which wants the metric from every trial); the sweep ignores it.
        if before["history"]:
            tune.report({k: v for k, v in before["history"][-1].items() if isinstance(v, (int, float, str))})
        return
    strategy = dict(config["strategy"])
    hparams = strategy.pop("hparams")
    res = job["resources"]
    resources = {"CPU": res["cpus_per_worker"]}
    if res["gpus_per_worker"]:
        resources["GPU"] = res["gpus_per_worker"]
    trainer = TorchTrainer(
        _ray_worker_entry,
        # the trial's own seed (raytune_ft/search.py); a trial of a run made before seeds were per trial has none
        train_loop_config=trial_config(job, data_dir, Path(run_dir) / "trials" / trial_id, strategy, hparams,
                                       seed=config.get("seed")),
        scaling_config=ray.train.ScalingConfig(
            num_workers=res["workers_per_trial"], use_gpu=bool(res["gpus_per_worker"]),
            resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=f"train-{trial_id}", storage_path=str(Path(run_dir) / "ray"),
            callbacks=[TuneReportCallback()],
            # a worker that dies is started again and goes on from the trial's last epoch (worker.py)
            failure_config=ray.train.FailureConfig(max_failures=res.get("max_worker_restarts", 2))),
    )
    trainer.fit()


# --------------------------------------------------------------------------- progress + tables

@dataclass
class TrialRecord:
    strategy: dict
    history: list = field(default_factory=list)
    status: str = "running"
    error: str = ""
    seed: Optional[int] = None  # the trial's own seed (search.trial_seed); None in runs made before
    wall_before: float = 0.0  # seconds this trial ran under an earlier driver (a resumed sweep)
    done_before: bool = False  # it had ended before the sweep was resumed: its record is final
    started: float = field(default_factory=time.monotonic)
    ended: Optional[float] = None

    def wall_seconds(self, now: Optional[float] = None) -> float:
        return self.wall_before + (self.ended or now or time.monotonic()) - self.started

    def to_json(self) -> dict:
        return {"strategy": self.strategy, "history": self.history, "status": self.status, "error": self.error,
                "seed": self.seed, "wall_seconds": self.wall_seconds()}

    @classmethod
    def from_json(cls, d: dict) -> "TrialRecord":
        rec = cls(strategy=d["strategy"], history=d["history"], status=d["status"], error=d["error"],
                  seed=d.get("seed"), wall_before=d["wall_seconds"])
        if rec.status != "running":
            rec.ended, rec.done_before = rec.started, True
        return rec


def load_sweep_state(run_dir: Path) -> dict[str, TrialRecord]:
    path = run_dir / SWEEP_STATE
    if not path.exists():
        return {}
    return {tid: TrialRecord.from_json(d) for tid, d in json.loads(path.read_text()).items()}


def free_placement_group(pg_hex: str) -> bool:
    """Remove a trial's Train placement group if it is still held; True if we removed it."""
    import ray
    from ray._raylet import PlacementGroupID
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


def _make_callback(job, run_id: str, run_dir: Path, printer: Callable[[str], None], *,
                   records: Optional[dict] = None, concurrency: int = 1, on_update: Optional[Callable] = None):
    from ray.tune import Callback

    from raytune_ft.progress import snapshot, summary_line

    metric, mode, epochs = job.search.metric, job.search.mode, job.training.epochs
    total = job.search.num_samples * len(job.strategies)

    class SweepCallback(Callback):
        """Tracks every trial, shows progress, frees stopped trials' resources, rewrites the tables.

        Its records are saved to sweep_state.json at every event, so a resumed sweep starts from them.
        """

        def __init__(self):
            self.records: dict[str, TrialRecord] = dict(records or {})
            self.pg_ids: set[str] = set()
            self.t0 = time.monotonic()

        def record(self, trial) -> TrialRecord:
            # a trial whose actor fails to start gets on_trial_error without on_trial_start
            return self.records.setdefault(trial.trial_id, TrialRecord(strategy=trial.config["strategy"],
                                                                       seed=trial.config.get("seed")))

        def on_trial_start(self, iteration, trials, trial, **info):
            self.record(trial)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            rec = self.record(trial)
            if rec.done_before:
                return
            # a worker group started again after a failure goes on from its last saved epoch
            rec.history = [m for m in rec.history if m["epoch"] < result["epoch"]]
            rec.history.append({k: result[k] for k in (
                "epoch", "train_loss", "val_loss", "val_accuracy", "val_f1", "trainable_params", "total_params",
                "samples_per_sec", "train_seconds", "first_step_s", "peak_memory_mb", "checkpoint_path", "pg_id",
                "lr", "resumes", "eval_seconds", "checkpoint_seconds", "data_load_s", "world_size",
                "distributed_type", "node_id", "stop_reason") if k in result})
            self.write_epochs()
            self.save_state()
            self.show(f"{self._clock()} {trial.trial_id} {rec.strategy['name']:<20} epoch {result['epoch']}/{epochs}"
                      f"  {metric} {result[metric]:.4f}")

        def on_trial_complete(self, iteration, trials, trial, **info):
            rec = self.record(trial)
            if rec.done_before:  # ended before a resume; Tune had not saved that yet
                return
            last = rec.history[-1] if rec.history else {}
            # ended before max epochs: by the scheduler, unless the worker's last report says patience did it
            rec.status = ("completed" if last.get("epoch", 0) >= epochs else
                          "stopped_patience" if last.get("stop_reason") == "patience" else "stopped_early")
            self._end(trial, rec)

        def on_trial_error(self, iteration, trials, trial, **info):
            rec = self.record(trial)
            if rec.done_before:
                return
            rec.status = "error"
            rec.error = _error_text(trial)
            self._end(trial, rec)

        def _end(self, trial, rec):
            rec.ended = time.monotonic()
            if rec.history:  # Tune killed the trial actor: free what its Train worker group held
                self.pg_ids.add(rec.history[-1].get("pg_id", ""))
                free_placement_group(rec.history[-1].get("pg_id", ""))
            word = {"completed": "completed", "stopped_early": "stopped early",
                    "stopped_patience": "stopped by patience", "error": "FAILED"}[rec.status]
            line = f"{self._clock()} {trial.trial_id} {rec.strategy['name']:<20} {word} after {len(rec.history)} epoch(s)"
            self.save_state()
            self.write_tables()
            self.show(line + (f": {error_reason(rec.error)[:200]}" if rec.error else ""))

        def show(self, line: str) -> None:
            snap = snapshot(self.records, t0=self.t0, total=total, concurrency=concurrency, metric=metric,
                            mode=mode, epochs=epochs)
            printer(f"{line}   {summary_line(snap)}")
            if on_update:
                on_update(snap)

        def save_state(self) -> None:
            tmp = run_dir / f".{SWEEP_STATE}.tmp"
            tmp.write_text(json.dumps({tid: rec.to_json() for tid, rec in self.records.items()}))
            os.replace(tmp, run_dir / SWEEP_STATE)

        def on_experiment_end(self, trials, **info):
            # A trial started after Tune last saved its state, before the driver died, is unknown to the
            # resumed Tune (its search generator makes that sample again under a new id): drop its record.
            known = {t.trial_id for t in trials}
            lost = [tid for tid, rec in self.records.items() if rec.status == "running" and tid not in known]
            for tid in lost:
                del self.records[tid]
            if lost:
                printer(f"{len(lost)} trial(s) that started after Tune's last saved state ran again under new "
                        f"ids: {', '.join(lost)}")

        def rows(self) -> list[dict]:
            return [trial_row(job=job.name, run_id=run_id, trial_id=tid, strategy=rec.strategy, seed=rec.seed,
                              status=rec.status, history=rec.history, metric=metric, mode=mode,
                              wall_seconds=rec.wall_seconds(), error=rec.error,
                              resumes=max((m.get("resumes", 0) for m in rec.history), default=0))
                    for tid, rec in self.records.items() if rec.status != "running"]

        def write_tables(self) -> list[dict]:
            rows = self.rows()
            if rows:
                write_table(rows, run_dir / "trials.parquet")
                write_table(strategy_rows(rows, mode), run_dir / "strategies.parquet")
            self.write_epochs()
            return rows

        def write_epochs(self) -> None:
            rows = [r for tid, rec in self.records.items() for r in epoch_rows(
                run_id=run_id, trial_id=tid, strategy=rec.strategy["name"], status=rec.status, history=rec.history)]
            if rows:
                write_table(rows, run_dir / "epochs.parquet")

        def _clock(self) -> str:
            return f"[{time.monotonic() - self.t0:6.0f}s]"

    return SweepCallback()


def _error_text(trial) -> str:
    try:
        return Path(trial.error_file).read_text().strip() if trial.error_file else "unknown error"
    except OSError:
        return "unknown error (no error file)"


# --------------------------------------------------------------------------- the sweep

def preflight(job, data_dir: Path) -> None:
    """Before Ray starts, what would fail every trial fails here, naming the model or the strategy:
    weights that cannot be read, texts longer than the model's positions (virtual tokens included),
    a target module that does not exist, a method or block structure that does not fit the model.
    The model is built, then each strategy applied to it (knobs at their first value) and run
    forward on 2 samples of the prepared train split."""
    import torch

    from raytune_ft.data import load_meta, load_split
    from raytune_ft.models import SOURCES, build_model
    from raytune_ft.worker import _to_inputs, build_trial_model

    meta = load_meta(data_dir)
    num_classes = len(meta["classes"])
    resolved = job.resolved()
    try:
        build_model(SOURCES.get(job.model.source).Config.model_validate(resolved["model"]), num_classes)
    except Exception as e:  # noqa: BLE001 - a missing or corrupt weights file, a broken model folder
        raise InputError(f"model {job.model.name}: cannot be built: {type(e).__name__}: {e}") from e
    problems = list(_position_problems(job))
    if problems:
        raise InputError("\n".join(problems))
    batch = {k: v[:2] for k, v in load_split(data_dir, "train").items()}
    for i, space in enumerate(strategy_spaces(job)):
        first = {k: (v.values[0] if isinstance(v, Sampler) else v) for k, v in space.items() if k != "hparams"}
        hp = {k: (v.values[0] if isinstance(v, Sampler) else v) for k, v in space["hparams"].items()}
        try:
            model, strategy = build_trial_model({"model": resolved["model"], "strategy": first, "hparams": hp},
                                                num_classes)
            strategy.groups(model, {k: v for k, v in first.items() if k != "name"})
        except Exception as e:  # noqa: BLE001 - whatever a strategy's apply raises, said before any trial
            raise InputError(f"strategies[{i}] ({first['name']}) does not fit model {job.model.name}: "
                             f"{type(e).__name__}: {e}") from e
        try:
            model.eval()
            with torch.no_grad():
                model(**_to_inputs(batch, meta, torch.device("cpu")))
        except Exception as e:  # noqa: BLE001 - a shape that does not fit, a token id beyond the vocabulary
            reason = " ".join(str(e).split())[:400]
            raise InputError(f"strategies[{i}] ({first['name']}) on model {job.model.name}: a forward pass on 2 "
                             f"samples of the prepared train split fails ({type(e).__name__}: {reason}); every "
                             "trial would fail the same way: make the data, model.max_length and the strategy's "
                             "knobs fit the model") from e


def _position_problems(job):
    """Texts longer than the model has positions for: model.max_length, plus the virtual tokens of
    prompt / prefix tuning (knob num_virtual_tokens, at its largest), against the Hugging Face
    config's max_position_embeddings."""
    max_length = getattr(job.model, "max_length", None)
    if max_length is None:
        return
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(job.model.path(), trust_remote_code=job.model.trust_remote_code)
    except Exception:  # noqa: BLE001 - the model was built just before; the forward pass checks the rest
        return
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int):
        return
    where = f"model {job.model.name} has {limit} positions (max_position_embeddings in its config.json)"
    if max_length > limit:
        yield f"model.max_length: {max_length} tokens, but {where}: set model.max_length to {limit} or less"
        return
    for i, s in enumerate(job.strategies):
        virtual = getattr(s, "num_virtual_tokens", None)
        if virtual is None:
            continue
        most = max(virtual.candidates()) if isinstance(virtual, Sampler) else virtual
        if most + max_length > limit:
            yield (f"strategies[{i}].num_virtual_tokens: up to {most} virtual tokens + model.max_length {max_length} "
                   f"= {most + max_length} positions, but {where}: keep num_virtual_tokens at most "
                   f"{limit - max_length}, or lower model.max_length")


def init_ray(address: Optional[str] = None, verbose: bool = False, num_cpus: Optional[int] = None):
    """Start Ray's embedded local cluster (loopback only, dashboard for the State API) or attach to one."""
    import logging

    import ray

    if ray.is_initialized():
        return
    kwargs = dict(logging_level=logging.INFO if verbose else logging.WARNING, log_to_driver=verbose,
                  configure_logging=True)
    if address:
        ray.init(address=address, **kwargs)
    else:
        # The dashboard serves the State API that Train's placement-group cleaner polls: without it,
        # a trial stopped by Tune would keep its resources for the rest of the job.
        # Loopback only: Ray swaps 127.0.0.1 for the machine's LAN address, and its GCS and raylet then
        # listen on every interface. Ray's single-machine mode (the flag it uses on macOS / Windows)
        # keeps the node on 127.0.0.1, so every server binds there. Set for this process (Ray may be
        # imported already) and for the processes the local cluster starts.
        import ray._private.ray_constants as ray_constants

        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        ray_constants.ENABLE_RAY_CLUSTER = False
        # address="local": always a fresh embedded cluster, never one that `ray start` left on this machine
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=True, dashboard_host="127.0.0.1",
                 _node_ip_address="127.0.0.1", resources={DRIVER_RESOURCE: 1000}, **kwargs)


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


def run_sweep(job, run_dir: Path, *, address: Optional[str] = None, verbose: bool = False,
              printer: Callable[[str], None] = print, num_cpus: Optional[int] = None, resume: bool = False,
              on_update: Optional[Callable] = None) -> list[dict]:
    """Prepare the data once, run the whole sweep, write the tables; return the trials' rows.

    resume=True goes on with the sweep in `run_dir` after its driver died: finished trials stay as
    they are, trials that were running go on from their last epoch, the others start.
    """
    from ray import tune

    from raytune_ft.data import load_meta, prepare_data

    run_dir = run_dir.resolve()
    t0 = time.monotonic()
    if address is None:  # the local cluster will hold this machine's CPUs / GPUs: a trial too big is refused now
        concurrency(job, local_resources(num_cpus), local=True)
    if resume and (run_dir / "data" / "meta.json").exists():
        meta = load_meta(run_dir / "data")
    else:
        try:
            meta = prepare_data(job, run_dir / "data")
        except (ValueError, OSError) as e:
            raise InputError(str(e)) from e
        printer(f"data prepared once in {time.monotonic() - t0:.1f}s: "
                + ", ".join(f"{s} {v['samples']}" for s, v in meta["splits"].items()) + f", {len(meta['classes'])} classes")
        storage.sync_up(run_dir / "data")  # workers on other nodes read it from the run's URI, if any
    preflight(job, run_dir / "data")
    init_ray(address, verbose, num_cpus)
    n_concurrent = concurrency(job, local=address is None)
    records = load_sweep_state(run_dir) if resume else {}
    callback = _make_callback(job, run_dir.name, run_dir, printer, records=records, concurrency=n_concurrent,
                              on_update=on_update)
    finished = {tid: rec.history for tid, rec in records.items() if rec.status != "running"}
    scheduler = make_scheduler(job, replay=finished)
    trainable = tune.with_parameters(
        tune.with_resources(_trial_driver, driver_resources()),
        job=job.resolved(), data_dir=str(run_dir / "data"), run_dir=str(run_dir))
    tune_dir = run_dir / "ray" / "tune"
    if resume and tune.Tuner.can_restore(str(tune_dir)):
        tuner = tune.Tuner.restore(str(tune_dir), trainable, resume_unfinished=True, resume_errored=False)
        # Tune restores its trials and search state, not our callback nor the scheduler's rungs: put
        # ours back (records from sweep_state.json, rungs replayed from the finished trials).
        tuner._local_tuner.get_run_config().callbacks = [callback, *tracking_callbacks(job, run_dir)]
        tuner._local_tuner._tune_config.scheduler = scheduler
        printer(f"resuming: {len(finished)} trial(s) had ended, "
                f"{sum(r.status == 'running' for r in records.values())} were running; {n_concurrent} at a time")
    else:
        if resume:
            printer("resuming: Tune saved no state before the driver stopped; the sweep starts over in this folder")
            callback.records.clear()
        tuner = _new_tuner(job, trainable, scheduler, callback, run_dir, n_concurrent)
        printer(f"sweep: {len(job.strategies)} strategies x {job.search.num_samples} samples, search "
                f"{job.search.algorithm}, scheduler {job.search.scheduler.name}, {n_concurrent} trial(s) at a time")
    tuner.fit()
    callback.save_state()
    rows = callback.write_tables()
    _wait_for_release(callback.pg_ids - {""})
    if rows:
        add_test_metrics(run_dir, job.search.mode, printer)
    return rows


def _new_tuner(job, trainable, scheduler, callback, run_dir: Path, n_concurrent: int):
    from ray import tune

    from raytune_ft.search import make_search

    # each trial gets its own seed; optuna: one study per strategy, num_samples trials each (search.py)
    search_alg, num_samples = make_search(job, n_concurrent)
    return tune.Tuner(
        trainable,
        param_space={} if job.search.algorithm == "optuna" else tune_param_space(job),
        tune_config=tune.TuneConfig(
            metric=job.search.metric, mode=job.search.mode, num_samples=num_samples,
            scheduler=scheduler, search_alg=search_alg),  # it limits concurrency itself (n_concurrent)
        run_config=tune.RunConfig(
            name="tune", storage_path=str(run_dir / "ray"), callbacks=[callback, *tracking_callbacks(job, run_dir)],
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
    """Evaluate each strategy's best trial on the test split; add test_* columns to strategies.parquet."""
    from raytune_ft.evaluate import evaluate_best_trials
    from raytune_ft.results import read_table

    table = read_table(run_dir / "strategies.parquet")
    reports = evaluate_best_trials(run_dir, table, printer)
    if not reports:
        return
    for row in table:
        r = reports.get(row["strategy"], {})
        row.update(test_accuracy=r.get("accuracy"), test_f1=r.get("f1"), test_loss=r.get("loss"))
    write_table(table, run_dir / "strategies.parquet")
    printer("test split, best trial of each strategy: " + ", ".join(
        f"{k} acc {v['accuracy']:.4f} f1 {v['f1']:.4f}" for k, v in reports.items())
        + f"  (reports in {run_dir / 'reports'})")


def _wait_for_release(ids: set[str], timeout_s: float = 30.0) -> None:
    """Trials stopped by Tune free their placement groups asynchronously: wait until ours are gone."""
    deadline = time.monotonic() + timeout_s
    while live_placement_groups(ids) and time.monotonic() < deadline:
        time.sleep(0.5)
