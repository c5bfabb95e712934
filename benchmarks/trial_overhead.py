"""What a trial costs beyond training: the quickstart's model and data, the same epochs, side by side.

    .venv/bin/python benchmarks/trial_overhead.py [--epochs 2] [--strategy full]

1. baseline: the worker loop called in this process (a plain Accelerate loop, no Ray);
2. trial:    the same config as one Tune trial running a Ray Train TorchTrainer (1 worker, 1 CPU),
             on a fresh local Ray cluster;
3. data:     preparing the data (decode + resize, once per job) against loading it in a trial.

Prints a table and writes it to benchmarks/results/trial_overhead.md. Both runs use one CPU thread,
so throughput compares like with like; ratios matter, not absolute numbers (shared machines).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--strategy", default="full")
    args = parser.parse_args()

    import yaml

    from raytune_ft.data import load_split, prepare_data
    from raytune_ft.driver import run_sweep
    from raytune_ft.spec import load_job, parse_job
    from raytune_ft.worker import train_trial, trial_config

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
    config = trial_config(job, work / "data", work / "direct", {"name": args.strategy}, hp)
    t = time.perf_counter()
    direct = train_trial(config, report=lambda m: None)
    direct_wall = time.perf_counter() - t

    t = time.perf_counter()
    rows = run_sweep(job, work / "run", printer=lambda line: None, num_cpus=2)
    sweep_wall = time.perf_counter() - t
    trial = rows[0]

    def summary(wall, train_s, first_step, sps):
        return wall, train_s, first_step, sps, 1 - train_s / wall

    base = summary(direct_wall, sum(m["train_seconds"] for m in direct), direct[0]["first_step_s"],
                   sum(m["samples_per_sec"] for m in direct) / len(direct))
    ray_ = summary(trial["wall_seconds"], trial["train_seconds"], trial["first_step_seconds"], trial["samples_per_sec"])
    lines = [
        f"# Trial overhead: {job.model.name} on digits, strategy {args.strategy}, {args.epochs} epochs, 1 CPU per trial",
        "",
        "| run | wall s | training s | worker start to first step s | samples/s | share of wall not training |",
        "|---|---|---|---|---|---|",
        "| plain Accelerate loop, this process | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.0%} |".format(*base),
        "| Tune trial + Ray Train TorchTrainer | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.0%} |".format(*ray_),
        "",
        f"- throughput ratio, trial / plain loop: **{ray_[3] / base[3]:.2f}x** (target >= 0.95)",
        f"- seconds a trial spends beyond the plain loop's wall time: **{ray_[0] - base[0]:.1f} s** "
        f"(Ray Train worker group, Tune trial actor, result reporting)",
        f"- whole sweep of this one trial, Ray start included: {sweep_wall:.1f} s",
        f"- data: prepared once per job in {prep_s:.2f} s; a trial loads it in {load_s * 1000:.0f} ms. A job of "
        f"N trials pays {prep_s:.2f} + N x {load_s:.3f} s for data, not N x {prep_s:.2f} s "
        f"(1 / 8 / 32 trials: {prep_s + load_s:.1f} / {prep_s + 8 * load_s:.1f} / {prep_s + 32 * load_s:.1f} s "
        f"instead of {prep_s:.1f} / {8 * prep_s:.1f} / {32 * prep_s:.1f} s)",
    ]
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / "trial_overhead.md"
    out.write_text(text + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
