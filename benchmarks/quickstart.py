"""The job users run: the quickstart end to end, as the README runs it, and where its seconds go.

    .venv/bin/python benchmarks/quickstart.py [--plain-epochs 2] [--skip-plain] [--public-path]

--public-path runs the quickstart with RAYTUNE_FT_RAY_FAST_PATH=0: every trial Ray's documented
TorchTrainer, as on a Ray release the fast path was not tested on (raytune_ft/internals.py); the same is
RAYTUNE_FT_RAY_FAST_PATH=0 in the environment. The table says which path ran (and the Ray release).

1. quickstart: `raytune-ft run jobs/quickstart.yaml` in a fresh process (its own local Ray cluster),
   wall time and the load average sampled every 5 s while it runs;
2. split:      the trials' wall seconds summed, and what of them is training, validation,
   checkpointing, our start-up (worker start to first step: imports, data, model, Accelerate) and
   the rest: Ray's (trial actor, Train controller and helpers, start and teardown);
3. throughput: the quickstart's `full` trials (two at a time) against two plain Accelerate loops
   (`train_trial` called directly, no Ray, one thread each) run side by side, same model, data,
   batch size and 1 CPU each: the concurrent-throughput ratio.

Nothing else may run beside it (a second Ray cluster, a test suite): the load is in the table.
Prints a table and writes it to benchmarks/results/quickstart.md (the fast path), quickstart_public.md
(--public-path), or quickstart_ray<version>.md (a Ray release the fast path was not tested on, e.g. the
floor: `PYTHONPATH=. /path/to/floor-venv/bin/python benchmarks/quickstart.py`). The table also has what the
run kept of its checkpoints (sweep/retention.py) and the run folder's size.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _bench import ROOT, publish  # noqa: E402  (puts the repository on sys.path)

PLAIN = """
import json, sys
from raytune_ft.train.config import TrialConfig
from raytune_ft.train.loop import train_trial
config = TrialConfig.model_validate_json(open(sys.argv[1]).read()).model_copy(update={"trial_dir": sys.argv[2]})
history = train_trial(config, report=lambda m: None)
print(json.dumps({"sps": [m["samples_per_sec"] for m in history]}))
"""


class LoadSampler(threading.Thread):
    """The 1-minute load average every `every` seconds while the job runs."""

    def __init__(self, every: float = 5.0):
        super().__init__(daemon=True)
        self.every, self.samples, self._halt = every, [], threading.Event()

    def run(self):
        while not self._halt.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> tuple[float, float]:
        self._halt.set()
        self.join()
        s = self.samples or [os.getloadavg()[0]]
        return sum(s) / len(s), max(s)


def run_quickstart(run_dir: Path, env: dict) -> tuple[float, tuple[float, float], str]:
    sampler = LoadSampler()
    sampler.start()
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "raytune_ft.cli", "run", str(ROOT / "jobs" / "quickstart.yaml"),
                          "--run-dir", str(run_dir)], cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    load = sampler.stop()
    if out.returncode != 0:
        sys.exit(f"the quickstart failed (exit {out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return wall, load, out.stdout + out.stderr


def plain_side_by_side(run_dir: Path, epochs: int) -> list[float]:
    """samples/s of two plain loops (a `full` quickstart trial, no Ray) run at the same time."""
    import yaml

    from raytune_ft.spec import parse_job
    from raytune_ft.train.config import trial_config

    spec = yaml.safe_load((ROOT / "jobs" / "quickstart.yaml").read_text())
    spec["training"]["epochs"] = epochs
    job = parse_job(spec)
    from raytune_ft.searchable import Sampler

    hp = {k: getattr(job.search.hparams, k) for k in type(job.search.hparams).model_fields}
    hp = {k: v.values[0] if isinstance(v, Sampler) else v for k, v in hp.items()}
    hp["lr"] = 1e-3
    work = Path(tempfile.mkdtemp(prefix="bench_plain_"))
    config = trial_config(job, run_dir / "data", work / "t", {"name": "full"}, hp)
    (work / "config.json").write_text(config.model_dump_json())
    # one thread each, as Ray gives a 1-CPU worker (OMP_NUM_THREADS=1)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", PLAIN, str(work / "config.json"), str(work / f"t{i}")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    sps = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"a plain loop failed:\n{err[-3000:]}")
        sps.append(sum(json.loads(out.strip().splitlines()[-1])["sps"]) / epochs)
    return sps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plain-epochs", type=int, default=2)
    parser.add_argument("--skip-plain", action="store_true", help="the quickstart and its split only")
    parser.add_argument("--public-path", action="store_true",
                        help="RAYTUNE_FT_RAY_FAST_PATH=0: every trial Ray's documented TorchTrainer")
    args = parser.parse_args()

    import ray

    from raytune_ft import internals
    from raytune_ft.results.tables import read_table

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if args.public_path:
        env[internals.FAST_PATH_ENV] = "0"
    os.environ.update({k: v for k, v in env.items() if k == internals.FAST_PATH_ENV})
    path = "fast path (in-process controller)" if internals.fast_path() else "public path (Ray's TorchTrainer)"
    load_before = os.getloadavg()[0]
    run_dir = Path(tempfile.mkdtemp(prefix="bench_quickstart_")) / "run"
    wall, (load_mean, load_max), log = run_quickstart(run_dir, env)
    trials = read_table(run_dir / "trials.parquet")

    def total(column):
        return sum(t[column] or 0.0 for t in trials)

    trial_wall = total("wall_seconds")
    parts = {"training": total("train_seconds"), "validation": total("eval_seconds"),
             "checkpoints": total("checkpoint_seconds"), "start to first step (ours)": total("first_step_seconds")}
    parts["the rest: Ray's"] = trial_wall - sum(parts.values())
    full = [t["samples_per_sec"] for t in trials if t["strategy"] == "full" and t["samples_per_sec"]]
    full_sps = sum(full) / len(full) if full else float("nan")

    python = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) else \
        f"PYTHONPATH=. {sys.executable}"
    lines = ["# The quickstart end to end (`raytune-ft run jobs/quickstart.yaml`)",
             "", f"Command: `{python} benchmarks/quickstart.py{''.join(' ' + a for a in sys.argv[1:])}`. Load average (1 min) before "
             f"{load_before:.2f}; during the run mean {load_mean:.2f}, max {load_max:.2f}; {os.cpu_count()} cores.", "",
             "| what | value |", "|---|---|",
             f"| trial path | {path}, Ray {ray.__version__} |",
             f"| quickstart wall time | **{wall:.0f} s** (target <= 300 s) |",
             f"| trials | {len(trials)}: " + ", ".join(
                 f"{s} {sum(t['status'] == s for t in trials)}" for s in sorted({t['status'] for t in trials})) + " |",
             f"| trials' wall seconds, summed | {trial_wall:.0f} s ({trial_wall / len(trials):.1f} s per trial) |"]
    for name, seconds in parts.items():
        lines.append(f"| - {name} | {seconds:.0f} s ({seconds / trial_wall:.0%}) |")
    lines.append(f"| `full` trials' samples/s (two trials at a time) | {full_sps:.1f} |")
    kept = sum(f.stat().st_size for f in (run_dir / "ray").rglob("*") if f.is_file() and "checkpoint_" in str(f))
    lines.append(f"| checkpoints kept after the run | {kept / 2**20:.1f} MB (checkpoint_bytes summed: "
                 f"{total('checkpoint_bytes') / 2**20:.1f} MB); run folder {folder_mb(run_dir):.0f} MB |")
    if not args.skip_plain:
        plain = plain_side_by_side(run_dir, args.plain_epochs)
        plain_mean = sum(plain) / len(plain)
        lines += [f"| two plain loops side by side, samples/s each | {plain[0]:.1f}, {plain[1]:.1f} (load after: "
                  f"{os.getloadavg()[0]:.2f}) |",
                  f"| concurrent-throughput ratio (`full` trial / plain loop) | **{full_sps / plain_mean:.2f}x** "
                  "(target >= 0.9x) |"]
    lines += ["", "Ray's share: a trial's wall seconds (Tune's, from the trial's start to its end) less what the worker "
              "measured itself (training, validation, checkpoint writing, and its start to the first step).",
              *([] if args.skip_plain else [
                  "The plain loops: `train_trial` called directly in two processes at once (no Ray), "
                  f"{args.plain_epochs} epochs of the `full` strategy at the quickstart's batch size, one thread each."])]
    tested = ray.__version__ in internals.TESTED_RAY
    publish(lines, "quickstart" if internals.fast_path() else
            "quickstart_public" if tested else f"quickstart_ray{ray.__version__.replace('.', '_')}")


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


if __name__ == "__main__":
    main()
