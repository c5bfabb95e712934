"""What early stopping saves: the quickstart's search space and samples, with ASHA and without (FIFO:
every trial runs all epochs), one after the other on the same machine.

    .venv/bin/python benchmarks/early_stopping.py [--num-samples 4]

Prints total compute seconds (sum of trial wall times), sweep wall time and the best score per
strategy and overall, and writes the table to benchmarks/results/early_stopping.md.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _bench import ROOT, publish  # noqa: E402  (puts the repository on sys.path)


def sweep(scheduler: dict, num_samples: int, work: Path):
    import ray
    import yaml

    from raytune_ft.sweep.run import run_sweep
    from raytune_ft.results.tables import read_table
    from raytune_ft.spec import parse_job

    spec = yaml.safe_load((ROOT / "jobs" / "quickstart.yaml").read_text())
    spec["search"].update(scheduler=scheduler, num_samples=num_samples)
    run_dir = work / scheduler["name"]
    t = time.perf_counter()
    rows = run_sweep(parse_job(spec), run_dir, printer=lambda line: None, num_cpus=2)
    wall = time.perf_counter() - t
    ray.shutdown()
    return rows, read_table(run_dir / "strategies.parquet"), wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--num-samples", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_es_"))
    load_before = os.getloadavg()[0]
    results = {name: sweep(sched, args.num_samples, work) for name, sched in (
        ("asha", {"name": "asha", "grace_period": 1, "reduction_factor": 2}), ("none", {"name": "none"}))}

    lines = ["# Early stopping: quickstart space, ASHA (per strategy) vs FIFO, "
             f"{args.num_samples} samples per strategy, same seed", "",
             f"Load average (1 min) before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores. "
             "Compute s: the sum of the trials' wall seconds (Ray start-up included); training s: the sum of "
             "their training steps' seconds.", "",
             "| scheduler | trials | stopped early | epochs run | compute s | training s | wall s | best overall | "
             + " | ".join(f"best {r['strategy']}" for r in results["none"][1]) + " |",
             "|---" * (8 + len(results["none"][1])) + "|"]
    for name, (rows, table, wall) in results.items():
        best = {r["strategy"]: r["best_score"] for r in table}
        compute = sum(r["wall_seconds"] for r in rows)
        lines.append(f"| {name} | {len(rows)} | {sum(r['status'] == 'stopped_early' for r in rows)} | "
                     f"{sum(r['epochs_run'] for r in rows)} | {compute:.0f} | {sum(r['train_seconds'] or 0 for r in rows):.0f} | "
                     f"{wall:.0f} | {max(best.values()):.4f} | "
                     + " | ".join(f"{best[r['strategy']]:.4f}" for r in results["none"][1]) + " |")
    (a_rows, a_table, a_wall), (f_rows, f_table, f_wall) = results["asha"], results["none"]
    a_c, f_c = sum(r["wall_seconds"] for r in a_rows), sum(r["wall_seconds"] for r in f_rows)
    a_best, f_best = max(r["best_score"] for r in a_table), max(r["best_score"] for r in f_table)
    a_t, f_t = (sum(r["train_seconds"] or 0 for r in rows) for rows in (a_rows, f_rows))
    lines += ["", f"- compute saved by ASHA: **{f_c / a_c:.2f}x** less (target >= 3x); training seconds "
              f"{f_t / a_t:.2f}x less; wall time {f_wall / a_wall:.2f}x",
              f"- best score: ASHA {a_best:.4f} vs FIFO {f_best:.4f} ({(a_best - f_best) * 100:+.2f} points; target within 1)"]
    publish(lines, "early_stopping")


if __name__ == "__main__":
    main()
