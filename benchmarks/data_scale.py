"""Data larger than memory: peak memory of preparation (the driver) and of a trial's worker against the
number of images, and the training throughput of the streamed data against the data held in memory.

    .venv/bin/python benchmarks/data_scale.py [--sizes 2000 20000] [--old-checkout DIR]

1. Image folders of N photo-like JPEGs (256 x 256 sources, 10 classes; made once, kept under
   /tmp/raytune_ft_bench_images), prepared as a job does (`image_size: 96`, validation_fraction 0.1) in a
   fresh process: its wall seconds and peak RSS (the driver's share of a run). With --old-checkout, the
   same in a checkout of the code before streaming (for the before / after table).
2. One epoch of a trial's worker function (train_trial, as a Ray Train worker runs it; a small
   torchvision model, mobilenet_v3_small, random init, so that the data path dominates) on the prepared
   data, in a fresh process, three ways: rows read with pread (what trials do), the same files
   memory-mapped, and every split loaded into memory first. Its peak RSS for each.
3. Throughput on the quickstart's data and model (digits, EfficientNet-Lite0 at 32 px, full fine-tuning,
   2 epochs, 1 thread): samples/s with the streamed reads against the data held in memory, alternated
   three times each.

Peak RSS is the process's own ru_maxrss. Prints a table and writes it to benchmarks/results/data_scale.md.
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

from _bench import ROOT, publish  # noqa: E402  (puts the repository on sys.path)

IMAGES = Path("/tmp/raytune_ft_bench_images")

PREPARE = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from raytune_ft.data import prepare_data
from raytune_ft.spec import parse_job
spec = json.loads(sys.argv[2])
t = time.perf_counter()
meta = prepare_data(parse_job(spec), __import__("pathlib").Path(sys.argv[3]))
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "train": meta["splits"]["train"]["samples"]}))
"""

WORKER = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
mode = sys.argv[3]
import numpy as np, torch
import raytune_ft.train.recipe as recipe
from raytune_ft.data import load_split
from raytune_ft.data.store import Column
if mode != "pread":
    def load(data_dir, split):
        columns = load_split(data_dir, split)
        if mode == "memory":
            return {k: v[:] if isinstance(v, Column) else v for k, v in columns.items()}
        return {k: torch.from_numpy(np.load(v.path, mmap_mode="c")) if isinstance(v, Column) else v
                for k, v in columns.items()}
    recipe.load_split = load
from raytune_ft.train.config import TrialConfig
from raytune_ft.train.loop import train_trial
config = TrialConfig.model_validate_json(open(sys.argv[2]).read()).model_copy(update={"trial_dir": sys.argv[4]})
history = train_trial(config, report=lambda m: None)
print(json.dumps({"sps": sum(m["samples_per_sec"] for m in history) / len(history),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_images(n: int) -> Path:
    """N photo-like 256 x 256 JPEGs in train/<class>/: smooth colour gradients, blobs and noise."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    root = IMAGES / str(n) / "train"
    done = root.parent / "done"
    if done.exists():
        return root
    rng = np.random.default_rng(n)
    yy, xx = np.mgrid[0:256, 0:256] / 255.0
    for i in range(n):
        label = i % 10
        folder = root / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        a, b, c = rng.uniform(0, 1, (3, 3))
        base = np.stack([a[k] * xx + b[k] * yy + c[k] * xx * yy for k in range(3)], -1)
        base = (base / base.max() * 200 + rng.normal(0, 12, (256, 256, 3))).clip(0, 255).astype(np.uint8)
        im = Image.fromarray(base)
        draw = ImageDraw.Draw(im)
        for _ in range(3 + label % 4):
            x, y, r = rng.integers(0, 256, 2).tolist() + [int(rng.integers(10, 60))]
            draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        im.filter(ImageFilter.GaussianBlur(1)).save(folder / f"{i:06d}.jpg", quality=88)
    done.write_text("ok")
    return root


def image_spec(train: Path) -> dict:
    return {"name": "scale", "model": {"source": "torchvision", "name": "mobilenet_v3_small", "weights": None,
                                       "image_size": 96},
            "data": {"source": "image_folder", "train": str(train), "validation_fraction": 0.1},
            "strategies": [{"name": "full"}], "training": {"epochs": 1},
            "search": {"num_samples": 1, "scheduler": {"name": "none"},
                       "hparams": {"lr": 1e-3, "batch_size": 64, "warmup_ratio": 0.0}}}


def run_json(code: str, *args: str, threads: int = 1) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def worker_config(job, data: Path, work: Path, name: str) -> Path:
    from raytune_ft.train.config import trial_config

    hp = {k: (v if not hasattr(v, "values") else v.values[0]) for k, v in job.search.hparams.model_dump().items()}
    config = trial_config(job, data, work / name, job.strategies[0].model_dump(), hp)
    path = work / f"{name}.json"
    path.write_text(config.model_dump_json())
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--old-checkout", type=Path, help="a checkout of the code before streaming preparation")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import yaml

    from raytune_ft.spec import parse_job

    work = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    load_before = os.getloadavg()
    lines = ["# Data at scale: peak memory against the number of images, and streamed throughput", "",
             "| images | prepare s | prepare peak RSS MB | " + (
                 "before: prepare s | before: peak RSS MB | " if args.old_checkout else "")
             + "worker peak RSS MB: pread (ours) | mmap | in memory | worker samples/s (pread) |",
             "|---" * (7 + 2 * bool(args.old_checkout)) + "|"]
    peaks = {}
    for n in args.sizes:
        t = time.perf_counter()
        train = make_images(n)
        print(f"{n} images ready ({time.perf_counter() - t:.0f} s)", flush=True)
        spec = image_spec(train)
        prep = run_json(PREPARE, str(ROOT), json.dumps(spec), str(work / f"data{n}"))
        print(f"{n}: prepared {prep}", flush=True)
        old = run_json(PREPARE, str(args.old_checkout), json.dumps(spec), str(work / f"old{n}")) \
            if args.old_checkout else None
        job = parse_job(spec)
        config = worker_config(job, work / f"data{n}", work, f"w{n}")
        workers = {mode: run_json(WORKER, str(ROOT), str(config), mode, str(work / f"t{n}{mode}"))
                   for mode in ("pread", "mmap", "memory")}
        print(f"{n}: workers {workers}", flush=True)
        peaks[n] = (prep["peak_mb"], workers["pread"]["peak_mb"])
        lines.append(f"| {n:,} | {prep['seconds']:.0f} | {prep['peak_mb']:.0f} | "
                     + (f"{old['seconds']:.0f} | {old['peak_mb']:.0f} | " if old else "")
                     + f"{workers['pread']['peak_mb']:.0f} | {workers['mmap']['peak_mb']:.0f} | "
                     f"{workers['memory']['peak_mb']:.0f} | {workers['pread']['sps']:.0f} |")

    # throughput on the quickstart: streamed rows against the data held in memory
    spec = yaml.safe_load((ROOT / "jobs" / "quickstart.yaml").read_text())
    spec["strategies"] = [{"name": "full", "hparams": {"lr": 1e-3}}]
    spec["training"]["epochs"] = 2
    spec["search"].update(num_samples=1, scheduler={"name": "none"})
    job = parse_job(spec)
    run_json(PREPARE, str(ROOT), json.dumps(spec), str(work / "digits"))
    config = worker_config(job, work / "digits", work, "q")
    sps = {"pread": [], "memory": []}
    for i in range(args.repeats):
        for mode in sps:
            sps[mode].append(run_json(WORKER, str(ROOT), str(config), mode, str(work / f"q{mode}{i}"))["sps"])
    ratio = (sum(sps["pread"]) / len(sps["pread"])) / (sum(sps["memory"]) / len(sps["memory"]))

    small, big = min(peaks), max(peaks)
    lines += ["",
              f"Load average before: {load_before[0]:.2f}, after: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores.",
              f"Preparation: {IMAGES}/N/train, image_size 96 (stored 110 x 110), validation_fraction 0.1; worker: "
              "one epoch of train_trial, mobilenet_v3_small (random init), batch 64, 1 thread.",
              "",
              f"- driver (preparation) peak RSS, {big:,} / {small:,} images: **{peaks[big][0] / peaks[small][0]:.2f}x** "
              "(target <= 1.3)",
              f"- worker peak RSS, {big:,} / {small:,} images: **{peaks[big][1] / peaks[small][1]:.2f}x** (target <= 1.3)",
              f"- quickstart trial samples/s, streamed / in memory: {', '.join(f'{v:.0f}' for v in sps['pread'])} / "
              f"{', '.join(f'{v:.0f}' for v in sps['memory'])}: **{ratio:.2f}x** (target >= 0.95)"]
    publish(lines, "data_scale")


if __name__ == "__main__":
    main()
