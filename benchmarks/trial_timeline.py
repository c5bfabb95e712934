"""Where a trial's start-up goes in Ray: every actor a small sweep starts, when, and how long it took.

    .venv/bin/python benchmarks/trial_timeline.py [--samples 1]

Runs the quickstart's job cut to 1 epoch and `--samples` trials per strategy, in this process, on a
fresh local Ray cluster (with the dashboard, for the State API's task events), then reads Ray's task
events for every actor-creation task: when it was submitted, when its process ran it (a worker
process started, or one was leased) and when its `__init__` finished (imports included). Per actor
class: how many, and the mean seconds to a running process and to a finished `__init__`. Per trial:
from its trial actor's creation to its Train worker's finished `__init__`, the Ray part of the
trial's start-up, before our worker function starts. Nothing else may run beside it.

Prints a table and writes it to benchmarks/results/trial_timeline.md.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

from _bench import ROOT, publish  # noqa: E402  (puts the repository on sys.path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=1)
    args = ap.parse_args()
    os.environ["RAYTUNE_FT_RAY_DASHBOARD"] = "1"  # the State API's task events

    from ray.util.state import list_tasks

    from raytune_ft.spec.load import parse_job
    from raytune_ft.sweep.run import run_sweep

    spec = yaml.safe_load((ROOT / "jobs" / "quickstart.yaml").read_text())
    spec["search"]["num_samples"], spec["training"]["epochs"] = args.samples, 1
    load_before = os.getloadavg()[0]
    run = Path(tempfile.mkdtemp()) / "run"
    start = time.monotonic()
    run_sweep(parse_job(spec), run, printer=lambda line: None)
    wall = time.monotonic() - start
    tasks = [t for t in list_tasks(detail=True, limit=10_000, raise_on_missing_output=False)
             if t.type == "ACTOR_CREATION_TASK" and t.events]
    shutil.rmtree(run.parent, ignore_errors=True)

    by_class, rows = defaultdict(list), []
    for t in tasks:
        ev = {e["state"]: e["created_ms"] / 1000 for e in t.events}
        created = min(ev.values())
        cls = t.func_or_class_name.split(".")[0]
        running, finished = ev.get("RUNNING"), ev.get("FINISHED")
        by_class[cls].append((running - created if running else None, finished - created if finished else None))
        rows.append((created, cls, finished))
    rows.sort()

    # a trial: its ImplicitFunc's creation, then the next RayTrainWorker whose __init__ finished
    chains, used = [], set()
    for created, cls, _ in rows:
        if cls != "ImplicitFunc":
            continue
        worker = next((r for r in rows if r[1] == "RayTrainWorker" and r[0] > created and id(r) not in used), None)
        if worker and worker[2]:
            used.add(id(worker))
            chains.append(worker[2] - created)

    def mean(xs):
        xs = [x for x in xs if x is not None]
        return sum(xs) / len(xs) if xs else float("nan")

    lines = [
        "# Where a trial's start-up goes in Ray",
        "",
        f"Command: `.venv/bin/python benchmarks/trial_timeline.py --samples {args.samples}`: the quickstart's "
        f"job, 1 epoch, {args.samples} trial(s) per strategy, 2 at a time; the sweep took {wall:.0f} s. "
        f"Load average (1 min) before {load_before:.2f}, after {os.getloadavg()[0]:.2f}; 2 cores.",
        "",
        "| actor (each its own process) | started | to a running process, s (mean) | to a finished `__init__`, s (mean) |",
        "|---|---|---|---|",
    ]
    for cls, xs in sorted(by_class.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"| {cls} | {len(xs)} | {mean(x[0] for x in xs):.1f} | {mean(x[1] for x in xs):.1f} |")
    lines += [
        "",
        f"Per trial, from its trial actor's creation to its Train worker's finished `__init__` (Ray's part of "
        f"the start-up, before our worker function runs): {', '.join(f'{c:.1f}' for c in chains)} s "
        f"(mean {mean(chains):.1f} s).",
        "",
        "ImplicitFunc: Tune's trial actor, which builds the TorchTrainer and runs Ray Train's controller "
        "(sweep/trial.py). RayTrainWorker: the Train worker. SynchronizationActor: Train's barrier for "
        "reports. _AutoscalingCoordinatorActor: one per cluster.",
    ]
    publish(lines, "trial_timeline")


if __name__ == "__main__":
    main()
