"""What a trial costs beyond training: the quickstart's model and data, the same epochs, side by side.

    .venv/bin/python benchmarks/trial_overhead.py [--epochs 2] [--strategy full]

1. baseline: the worker loop called in this process (a plain Accelerate loop, no Ray);
2. beside:   the same loop in this process while an idle local Ray cluster runs (Ray's background
             processes share the cores);
3. trial:    the same config as one Tune trial running a Ray Train TorchTrainer (1 worker, 1 CPU),
             on a fresh local Ray cluster, with where its wall seconds go;
4. data:     preparing the data (decode + resize, once per job) against loading it in a trial.

Prints a table and writes it to benchmarks/results/trial_overhead.md. Both runs use one CPU thread,
so throughput compares like with like; ratios matter, not absolute numbers (shared machines).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _bench import ROOT, publish  # noqa: E402  (puts the repository on sys.path)


SUB = """
import json, sys
from raytune_ft.train.config import TrialConfig
from raytune_ft.train.loop import train_trial
config = TrialConfig.model_validate_json(open(sys.argv[1]).read()).model_copy(update={"trial_dir": sys.argv[2]})
history = train_trial(config, report=lambda m: None)
print(json.dumps({"sps": sum(m["samples_per_sec"] for m in history) / len(history),
                  "type": str(history[0]["distributed_type"])}))
"""


def _subprocess_sps(work: Path, distributed: bool) -> dict:
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # as Ray sets for a 1-CPU worker; unset,
    # Accelerate's MULTI_CPU mode would give itself every core and the comparison would be of threads
    if distributed:
        env.update(LOCAL_RANK="0", RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="29517")
    out = subprocess.run([sys.executable, "-c", SUB, str(work / "config.json"), str(work / f"sub-{distributed}")],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--strategy", default="full")
    args = parser.parse_args()

    import yaml

    from raytune_ft.data import load_split, prepare_data
    from raytune_ft.sweep.ray_setup import init_ray
    from raytune_ft.sweep.run import run_sweep
    from raytune_ft.results.tables import read_table
    from raytune_ft.spec import load_job, parse_job
    from raytune_ft.train.loop import train_trial
    from raytune_ft.train.config import trial_config

    spec = yaml.safe_load((ROOT / "jobs" / "quickstart.yaml").read_text())
    spec["strategies"] = [{"name": args.strategy, "hparams": {"lr": 1e-3}}]
    spec["training"]["epochs"] = args.epochs
    spec["search"].update(num_samples=1, scheduler={"name": "none"})
    job = parse_job(spec)
    load_job(ROOT / "jobs" / "quickstart.yaml")  # the shipped job must stay valid
    work = Path(tempfile.mkdtemp(prefix="bench_overhead_"))

    t = time.perf_counter()
    prepare_data(job, work / "data")
    prep_s = time.perf_counter() - t
    t = time.perf_counter()
    for split in ("train", "validation"):
        load_split(work / "data", split)
    load_s = time.perf_counter() - t

    hp = {k: (v if not hasattr(v, "values") else v.values[0]) for k, v in job.search.hparams.model_dump().items()}
    hp["lr"] = 1e-3
    load_before = os.getloadavg()[0]

    def direct(name):
        config = trial_config(job, work / "data", work / name, {"name": args.strategy}, hp)
        t = time.perf_counter()
        history = train_trial(config, report=lambda m: None)
        return time.perf_counter() - t, history

    direct_wall, plain = direct("direct")

    # Ray Train sets LOCAL_RANK / RANK / WORLD_SIZE even for one worker; Accelerate then picks
    # MULTI_CPU and wraps the model in DDP for a world of 1. The same loop in fresh processes, with
    # and without those variables, isolates that cost (worker.py hides them from Accelerate when alone).
    config = trial_config(job, work / "data", work / "sub", {"name": args.strategy}, hp)
    (work / "config.json").write_text(config.model_dump_json())
    solo_sps, ddp1_sps = (_subprocess_sps(work, dist) for dist in (False, True))

    # The same loop in this process while an idle local Ray cluster (raylet, GCS, dashboard) runs:
    # what Ray's background processes alone cost the training on these cores.
    import ray

    init_ray(num_cpus=2)
    idle_wall, beside = direct("beside_ray")
    ray.shutdown()

    t = time.perf_counter()
    rows = run_sweep(job, work / "run", printer=lambda line: None, num_cpus=2)
    sweep_wall = time.perf_counter() - t
    trial = rows[0]
    curves = read_table(work / "run" / "epochs.parquet")
    state = json.loads((work / "run" / "sweep_state.json").read_text())[trial["trial_id"]]["history"][0]

    def summary(wall, history):
        train_s = sum(m["train_seconds"] for m in history)
        sps = sum(m["samples_per_sec"] for m in history) / len(history)
        return wall, train_s, history[0]["first_step_s"], sps, 1 - train_s / wall

    base, idle = summary(direct_wall, plain), summary(idle_wall, beside)
    ray_ = (trial["wall_seconds"], trial["train_seconds"], trial["first_step_seconds"], trial["samples_per_sec"],
            1 - trial["train_seconds"] / trial["wall_seconds"])
    evals, ckpt = trial["eval_seconds"], trial["checkpoint_seconds"]
    ray_own = trial["wall_seconds"] - trial["first_step_seconds"] - trial["train_seconds"] - evals - ckpt
    lines = [
        f"# Trial overhead: {job.model.name} on digits, strategy {args.strategy}, {args.epochs} epochs, 1 CPU per trial",
        "",
        f"Load average (1 min) before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
        "",
        "| run | wall s | training s | worker start to first step s | samples/s | share of wall not training |",
        "|---|---|---|---|---|---|",
        "| plain Accelerate loop, this process | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.0%} |".format(*base),
        "| the same loop beside an idle local Ray cluster | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.0%} |".format(*idle),
        "| Tune trial + Ray Train TorchTrainer | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.0%} |".format(*ray_),
        "",
        f"DDP at world size 1, the same loop in fresh processes: {solo_sps['type']} {solo_sps['sps']:.1f} samples/s; "
        f"with Ray Train's variables set (LOCAL_RANK=0, WORLD_SIZE=1), Accelerate picks {ddp1_sps['type']}: "
        f"{ddp1_sps['sps']:.1f} samples/s (**{ddp1_sps['sps'] / solo_sps['sps']:.2f}x**).",
        "",
        f"- throughput ratio, trial / plain loop: **{ray_[3] / base[3]:.2f}x** (target >= 0.95); "
        f"plain loop beside idle Ray / plain loop: **{idle[3] / base[3]:.2f}x**; trial / loop beside idle Ray: "
        f"**{ray_[3] / idle[3]:.2f}x**",
        f"- inside the trial: Accelerate ran as {state.get('distributed_type', '?')} with world size "
        f"{state.get('world_size', '?')}",
        f"- where the trial's {trial['wall_seconds']:.1f} s go: worker start to first step {trial['first_step_seconds']:.1f} s "
        f"(ours: imports, model build, data load), training {trial['train_seconds']:.1f} s, validation {evals:.1f} s, "
        f"checkpoints (best + resumable state) {ckpt:.1f} s, Ray (trial actor, TorchTrainer controller, worker group "
        f"start and teardown, reporting) **{ray_own:.1f} s**",
        f"- seconds a trial spends beyond the plain loop's wall time: **{ray_[0] - base[0]:.1f} s**",
        f"- whole sweep of this one trial, Ray start included: {sweep_wall:.1f} s; epochs reported: {len(curves)}",
        f"- data: prepared once per job in {prep_s:.2f} s; a trial loads it in {load_s * 1000:.0f} ms.",
    ]
    publish(lines, "trial_overhead")


if __name__ == "__main__":
    main()
