"""Jobs of 1, 8 and 32 trials (data preparation is paid once per job), and 1 vs 2 trials at a time.

    .venv/bin/python benchmarks/scaling.py [--sizes 1 8 32]

The quickstart's model and data (EfficientNet-Lite0, digits at 32 px), feature extraction with a
searched learning rate, 1 epoch per trial, no early stopping: every trial costs about the same, so
job time against trials shows what grows with trials and what is paid once.

1. data preparation: for each job size, the seconds spent preparing the data (once, in the driver)
   and the sum of the seconds trials spent loading it, against what preparing it in every trial
   would cost (trials x preparation);
2. concurrency: the 8-trial job with 1 and with 2 trials at a time on this machine's cores:
   trials per hour and the mean trial wall time.

Prints a table and writes it to benchmarks/results/scaling.md. On a GPU machine, run it with
`resources.gpus_per_worker` set to compare 1 vs several concurrent trials there.
"""
from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

from _bench import ROOT, publish  # noqa: E402  (puts the repository on sys.path)


def job(trials: int, concurrent: int):
    import yaml

    from raytune_ft.spec import parse_job

    spec = yaml.safe_load((ROOT / "jobs" / "quickstart.yaml").read_text())
    spec["strategies"] = [{"name": "feature_extraction"}]
    spec["training"].update(epochs=1)
    spec["search"].update(num_samples=trials, scheduler={"name": "none"}, seed=0)
    spec["search"]["hparams"]["lr"] = {"loguniform": [1e-3, 3e-2]}
    spec["resources"] = {"max_concurrent_trials": concurrent}
    return parse_job(spec)


def sweep(trials: int, concurrent: int, work: Path) -> dict:
    import ray

    from raytune_ft.sweep.run import run_sweep

    lines = []
    t = time.perf_counter()
    rows = run_sweep(job(trials, concurrent), work / f"n{trials}-c{concurrent}", printer=lines.append, num_cpus=2)
    wall = time.perf_counter() - t
    ray.shutdown()
    prep = next(float(m.group(1)) for line in lines if (m := re.search(r"data prepared once in ([\d.]+)s", line)))
    ok = [r for r in rows if r["status"] != "error"]
    return {"trials": trials, "concurrent": concurrent, "wall": wall, "prep": prep, "ok": len(ok),
            "load": sum(r["data_load_seconds"] for r in ok),
            "trial_wall": sum(r["wall_seconds"] for r in ok) / max(1, len(ok)),
            "train": sum(r["train_seconds"] for r in ok) / max(1, len(ok))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_scaling_"))
    load_before = os.getloadavg()[0]
    runs = [sweep(n, 2, work) for n in args.sizes]
    mid = sorted(args.sizes)[len(args.sizes) // 2]
    serial = sweep(mid, 1, work)

    lines = [f"# Scaling: EfficientNet-Lite0 on digits, feature extraction, 1 epoch per trial, {os.cpu_count()} cores",
             "", f"Load average (1 min) before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f}.", "",
             "## Data preparation is paid once per job", "",
             "| trials | job wall s | data prepared (once) s | trials loading it, sum s | trials x preparation s |"
             " wall s per trial |", "|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['trials']} | {r['wall']:.0f} | {r['prep']:.2f} | {r['load']:.2f} | "
                     f"{r['trials'] * r['prep']:.1f} | {r['wall'] / r['trials']:.1f} |")
    same = next(r for r in runs if r["trials"] == mid)
    lines += ["", f"## Trials at a time ({mid}-trial job)", "",
              "| trials at a time | job wall s | trials per hour | mean trial wall s | mean training s per trial |",
              "|---|---|---|---|---|"]
    for r in (serial, same):
        lines.append(f"| {r['concurrent']} | {r['wall']:.0f} | {3600 * r['ok'] / r['wall']:.0f} | "
                     f"{r['trial_wall']:.1f} | {r['train']:.1f} |")
    lines += ["", f"- 2 at a time / 1 at a time, trials per hour: **{serial['wall'] / same['wall']:.2f}x** "
              f"(each trial uses 1 CPU; this machine has {os.cpu_count()})"]
    publish(lines, "scaling")


if __name__ == "__main__":
    main()
