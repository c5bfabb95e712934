"""The sweep driver's cost per Tune event with 100 and with 2,000 trials: does it stay flat?

    .venv/bin/python benchmarks/events.py [--sizes 100 2000] [--epochs 10] [--concurrency 8]

Drives the real `SweepCallback` (records, progress lines, sweep_state.json, the Parquet tables) and the
real per-strategy ASHA schedulers (sweep/schedulers.py) with synthetic trials, as Tune's controller
would: `--concurrency` trials at a time, one reported epoch per step in turn, a trial ending at the
last epoch, when ASHA stops it, or (1 in 50) with an error; a new trial starts when one ends; the
callback's `on_step_end` after every step; at the end what `run_sweep` does when a stage ends
(`compact`). Nothing trains and no Ray runs (no placement group to free): every second measured is
the driver's own bookkeeping, the part that grew with the sweep.

An event is one Tune callback call (a trial started, an epoch reported, a trial ended); its cost is the
driver's time for it (callback + scheduler, and the `on_step_end` that follows it). Both sizes run in
one process, after a small warm-up sweep, so their ratio is not a comparison across processes.
Memory: the process's resident set before each size's sweep (imports included) and its peak during it
(Linux VmHWM, reset before each).
Prints a table, writes it to benchmarks/results/events.md, and ends with `per-event ratio: X` (mean
cost per event at the largest size / at the smallest).
"""
from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from _bench import ROOT, publish  # noqa: E402  (puts the repository on sys.path)

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

STRATEGIES = ("full", "feature_extraction", "lora", "partial")


def make_job(trials: int, epochs: int):
    import yaml

    from raytune_ft.spec import parse_job

    spec = yaml.safe_load((ROOT / "jobs" / "quickstart.yaml").read_text())
    spec["strategies"] = [{"name": n} for n in STRATEGIES]
    spec["training"].update(epochs=epochs)
    spec["search"].update(num_samples=math.ceil(trials / len(STRATEGIES)),
                          scheduler={"name": "asha", "grace_period": 1, "reduction_factor": 2})
    return parse_job(spec)


def make_trial(i: int, rng: random.Random, error_file: Path):
    name = STRATEGIES[i % len(STRATEGIES)]
    strategy = {"name": name, "hparams": {"lr": 10 ** rng.uniform(-4, -2), "batch_size": 32, "weight_decay": 0.01,
                                          "warmup_ratio": 0.1}}
    if name == "lora":
        strategy["r"] = rng.choice([4, 8, 16])
    return SimpleNamespace(trial_id=f"5f3a9_{i:05d}", config={"strategy": strategy, "seed": rng.randrange(2**31)},
                           error_file=str(error_file), epoch=0, quality=rng.uniform(0.5, 0.98),
                           fails=rng.random() < 0.02)


def report(trial, rng: random.Random) -> dict:
    """What a worker reports at an epoch (train/loop.py), with made-up numbers."""
    e = trial.epoch
    acc = trial.quality * (1 - math.exp(-e / 2.5)) + rng.gauss(0, 0.01)
    return {"epoch": e, "train_loss": 2.3 * math.exp(-e / 3), "val_loss": 2.0 * (1 - acc), "val_accuracy": acc,
            "val_f1": acc - 0.01, "trainable_params": 4_000_000, "total_params": 4_600_000, "samples_per_sec": 310.5,
            "train_seconds": 4.2, "first_step_s": 1.3, "peak_memory_mb": 812.0, "lr": 1e-3, "resumes": 0,
            "eval_seconds": 0.4, "checkpoint_seconds": 0.2, "data_load_s": 0.1, "world_size": 1,
            "distributed_type": "NO", "node_id": "8c1f0e" * 9, "pg_id": "",  # no Ray here: no placement group to free
            "checkpoint_path": f"/runs/bench/ray/train-{trial.trial_id}/checkpoint_2026-11-24_13-00-{e:02d}.000000",
            "lr_scales": [1.0, 0.5, 0.25], "training_iteration": e, "time_total_s": 5.0 * e}


def sweep(trials: int, epochs: int, concurrency: int, work: Path) -> dict:
    """One synthetic sweep of `trials` trials; the driver's seconds per event and its peak memory."""
    import numpy as np
    from ray.tune.schedulers import TrialScheduler

    from raytune_ft.layout import RunLayout
    from raytune_ft.sweep.callback import SweepCallback
    from raytune_ft.sweep.schedulers import make_scheduler

    rng = random.Random(trials)
    np.random.seed(trials)  # ASHA picks a bracket with numpy's global generator
    job = make_job(trials, epochs)
    layout = RunLayout(work / f"n{trials}")
    layout.root.mkdir(parents=True)
    error_file = work / "error.txt"
    error_file.write_text("Traceback ...\nValueError: a synthetic failure\n")
    cb = SweepCallback(job, layout, lambda line: None, concurrency=concurrency,
                       on_update=lambda snap: None, train_size=1258, total=trials)
    scheduler = make_scheduler(job)
    pending = [make_trial(i, rng, error_file) for i in range(trials)]
    pending.reverse()
    running, all_trials, costs, step = [], [], [], 0
    load_before = os.getloadavg()
    rss_before = rss_mb()
    reset_peak_rss()
    t_sweep = time.perf_counter()
    while pending or running:
        while pending and len(running) < concurrency:  # Tune starts a trial as soon as one ends
            trial = pending.pop()
            t = time.perf_counter()
            scheduler.on_trial_add(None, trial)
            all_trials.append(trial)
            cb.on_trial_start(step, all_trials, trial)
            cb.on_step_end(iteration=step, trials=all_trials)
            costs.append(time.perf_counter() - t)
            running.append(trial)
        trial = running[step % len(running)]
        trial.epoch += 1
        result = report(trial, rng)
        t = time.perf_counter()
        if trial.fails and trial.epoch == 2:  # the worker raised: no result, an error
            scheduler.on_trial_error(None, trial)
            cb.on_trial_error(step, all_trials, trial)
            running.remove(trial)
        else:
            decision = scheduler.on_trial_result(None, trial, result)
            cb.on_trial_result(step, all_trials, trial, result)
            if decision == TrialScheduler.STOP or trial.epoch >= epochs:
                costs.append(time.perf_counter() - t)
                t = time.perf_counter()
                scheduler.on_trial_complete(None, trial, result)
                cb.on_trial_complete(step, all_trials, trial)
                running.remove(trial)
        step += 1
        cb.on_step_end(iteration=step, trials=all_trials)
        costs.append(time.perf_counter() - t)
    sweep_s = time.perf_counter() - t_sweep
    t = time.perf_counter()
    cb.on_experiment_end(all_trials)
    cb.compact()  # what run_sweep does when a stage ends
    end_s = time.perf_counter() - t
    return {"trials": trials, "events": len(costs), "sweep_s": sweep_s, "mean_ms": 1000 * statistics.fmean(costs),
            "p50_ms": 1000 * statistics.median(costs), "p99_ms": 1000 * quantile(costs, 0.99),
            "max_ms": 1000 * max(costs), "end_s": end_s, "rss_mb": (rss_before, rss_mb("VmHWM")),
            "load": (load_before[0], os.getloadavg()[0]), "epochs_run": sum(t.epoch for t in all_trials)}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def reset_peak_rss() -> None:
    """Linux: let VmHWM (peak resident set) start again from the current size."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def rss_mb(field: str = "VmRSS") -> float:
    """The resident set now (VmRSS) or its peak (VmHWM), from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 2000])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    import subprocess

    work = Path(tempfile.mkdtemp(prefix="bench_events_"))
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    sweep(20, args.epochs, args.concurrency, work / "warm-up")  # first imports and first writes, not measured
    runs = [sweep(n, args.epochs, args.concurrency, work) for n in args.sizes]
    small, large = runs[0], runs[-1]
    ratio = large["mean_ms"] / small["mean_ms"]
    lines = [f"# Driver cost per Tune event: synthetic sweeps of {', '.join(map(str, args.sizes))} trials x up to "
             f"{args.epochs} epochs", "",
             f"Code at commit {commit}; {args.concurrency} trials at a time, per-strategy ASHA over "
             f"{len(STRATEGIES)} strategies; {os.cpu_count()} cores. An event: one Tune callback call (trial "
             "started / epoch reported / trial ended) with its scheduler call and the step's on_step_end. "
             "End of stage: on_experiment_end + what run_sweep then calls (compact; before the event log: "
             "save_state + write_tables).", "",
             "| trials | epochs reported | events | sweep s | mean ms / event | p50 ms | p99 ms | max ms | "
             "end of stage s | RSS MB at start / peak | load avg before / after |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['trials']} | {r['epochs_run']} | {r['events']} | {r['sweep_s']:.1f} | {r['mean_ms']:.3f} | "
                     f"{r['p50_ms']:.3f} | {r['p99_ms']:.2f} | {r['max_ms']:.0f} | {r['end_s']:.2f} | "
                     f"{r['rss_mb'][0]:.0f} / {r['rss_mb'][1]:.0f} | {r['load'][0]:.2f} / {r['load'][1]:.2f} |")
    lines += ["", f"- mean cost per event at {large['trials']} trials / at {small['trials']}: **{ratio:.2f}x** "
              "(target <= 2)"]
    publish(lines, "events")
    print(f"per-event ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
