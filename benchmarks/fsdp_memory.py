"""Per-worker memory of a two-worker trial, DDP against FSDP, with and without gradient checkpointing, and
the loss curves of each (CPU, gloo: two local processes, train/processes.py).

    .venv/bin/python benchmarks/fsdp_memory.py [--hidden 256] [--layers 4] [--tokens 128] [--epochs 3]

A random Llama-style decoder (tests/tiny_models.py; hidden 256, 4 layers: ~3.3M weights), `full` (every
weight trains, AdamW), batch 16 per worker of texts of ~`tokens` words, on two workers:

- the trial itself (`train_in_processes`, the worker loop of a Ray Train trial without Ray): each epoch's
  train / validation loss, its seconds, the largest worker's `param_bytes` and `optimizer_bytes` (its
  shards under FSDP) and rank 0's peak RSS, as epochs.parquet has them;
- one training step in each worker, set up as the trial sets it up (build_trial_model, gradient checkpointing,
  Sharding.shard or DDP, build_optimizer), after two warm-up steps: the peak of tensor memory above what the
  worker held before the step (torch.profiler's CPU memory events, tests/memory.py): activations, gradients,
  a unit's gathered weights. Its seconds are the mean of 3 steps (rough: the machine is shared).

Prints the tables and writes them to benchmarks/results/fsdp_memory.md.
"""
from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from _bench import ROOT, publish  # noqa: E402  (puts the repository on sys.path)

CASES = [("DDP", "ddp", False), ("FSDP", "fsdp", False), ("DDP + checkpointing", "ddp", True),
         ("FSDP + checkpointing", "fsdp", True)]


def make_job(work: Path, hidden: int, layers: int, tokens: int, epochs: int):
    from raytune_ft.data import prepare_data
    from raytune_ft.spec import parse_job
    from tests.conftest import FILLER, NEG, POS
    from tests.tiny_models import save_decoder

    save_decoder(work / "model", "llama", hidden=hidden, layers=layers, positions=max(64, tokens + 8))
    rng = random.Random(0)
    files = {}
    for split, n in (("train", 128), ("validation", 64)):
        rows = []
        for i in range(n):
            label = "pos" if i % 2 == 0 else "neg"
            words = [rng.choice(FILLER) for _ in range(tokens - 2)] + rng.sample(POS if label == "pos" else NEG, 2)
            rng.shuffle(words)
            rows.append(f"{' '.join(words)},{label}")
        files[split] = work / f"{split}.csv"
        files[split].write_text("text,label\n" + "\n".join(rows) + "\n")
    spec = {"name": "fsdp-memory", "model": {"source": "transformers", "name": str(work / "model"), "max_length": tokens},
            "data": {"source": "text_table", **{k: str(v) for k, v in files.items()}},
            "strategies": [{"name": "full"}], "training": {"epochs": epochs},
            "resources": {"workers_per_trial": 2},
            "search": {"num_samples": 1, "hparams": {"lr": 1e-3, "batch_size": 16, "warmup_ratio": 0.0}}}
    job = parse_job(spec)
    prepare_data(job, work / "data")
    return spec


def trial_config_of(spec: dict, work: Path, distributed: str, checkpointing: bool, name: str):
    from raytune_ft.spec import parse_job
    from raytune_ft.train.config import trial_config

    job = parse_job({**spec, "resources": {"workers_per_trial": 2, "distributed": distributed}})
    return trial_config(job, work / "data", work / name, {"name": "full"},
                        {**spec["search"]["hparams"], "gradient_checkpointing": checkpointing})


def step_worker(rank: int, port: int, config: dict, out) -> None:
    """One worker of the step measurement (see the module's docstring)."""
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch
    import torch.distributed as dist

    from raytune_ft.data import load_meta, load_split
    from raytune_ft.train.config import TrialConfig
    from raytune_ft.train.evaluate import model_inputs
    from raytune_ft.train.grad_checkpoint import enable_gradient_checkpointing
    from raytune_ft.train.model import build_trial_model
    from raytune_ft.train.optim import build_optimizer
    from raytune_ft.train.sharding import Sharding, local_bytes
    from tests.memory import peak_tensor_bytes

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    config = TrialConfig.model_validate(config)
    meta = load_meta(config.data_dir)
    torch.manual_seed(0)
    model, strategy, cfg = build_trial_model(config.model, config.strategy, 0.0, len(meta["classes"]))
    if config.hparams.gradient_checkpointing:
        enable_gradient_checkpointing(model)

    class Process:  # what Sharding.shard reads of an Accelerator
        device, num_processes = torch.device("cpu"), 2
    sharding = Sharding(config)
    model = sharding.shard(model, Process())
    optimizer = build_optimizer(model, strategy, cfg, config.hparams, config.training)
    if not sharding.fsdp:
        model = torch.nn.parallel.DistributedDataParallel(model)  # what Accelerate does on CPUs
    split = load_split(config.data_dir, "train")
    batch = {k: v[rank * 16:(rank + 1) * 16] for k, v in split.items()}
    inputs = model_inputs(batch, meta, torch.device("cpu"))
    model.train()

    def step():
        loss = torch.nn.functional.cross_entropy(model(**inputs), batch["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(2):
        step()
    peak = peak_tensor_bytes(step)
    start = time.perf_counter()
    for _ in range(3):
        step()
    seconds = (time.perf_counter() - start) / 3
    held = sum(local_bytes(p) for p in model.parameters())
    held += sum(local_bytes(t) for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t))
    out.put((rank, peak, held, seconds))
    dist.destroy_process_group()


def measure_step(config) -> dict:
    import torch.multiprocessing as mp

    from raytune_ft.train.processes import free_port

    ctx = mp.get_context("spawn")
    out, port = ctx.Queue(), free_port()
    procs = [ctx.Process(target=step_worker, args=(r, port, config.model_dump(mode="json"), out)) for r in range(2)]
    for p in procs:
        p.start()
    got = [out.get(timeout=1200) for _ in procs]
    for p in procs:
        p.join(60)
    return {"peak": max(g[1] for g in got), "held": max(g[2] for g in got), "seconds": max(g[3] for g in got)}


def mb(n: float) -> str:
    return f"{n / 2**20:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    from raytune_ft.train.processes import train_in_processes

    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="bench_fsdp_"))
    spec = make_job(work, args.hidden, args.layers, args.tokens, args.epochs)
    results = {}
    for label, distributed, checkpointing in CASES:
        name = label.replace(" + ", "-").lower()
        config = trial_config_of(spec, work, distributed, checkpointing, name)
        history = train_in_processes(config, workers=2)[0]
        results[label] = {"history": history, **measure_step(config)}
        print(label, {k: v for k, v in results[label].items() if k != "history"}, flush=True)
    total = results["DDP"]["history"][0]["total_params"]
    lines = ["# FSDP against DDP: per-worker memory and loss curves (2 workers, CPU, gloo)", "",
             f"Command: `.venv/bin/python benchmarks/fsdp_memory.py --hidden {args.hidden} --layers {args.layers} "
             f"--tokens {args.tokens} --epochs {args.epochs}`. A random Llama-style decoder, hidden {args.hidden}, "
             f"{args.layers} layers, {total:,} weights, `full` (AdamW, fp32), batch 16 per worker of {args.tokens} "
             f"tokens, 128 training texts; two workers (two local processes, gloo), 1 thread each. Load average "
             f"(1 min) before {load_before:.2f}, after {os.getloadavg()[0]:.2f}; 2 cores shared with other jobs "
             "(seconds are rough; memory does not depend on the load).", "",
             "Per worker (the largest of the two): weights and AdamW's two moments held between steps (the trial's "
             "`param_bytes` / `optimizer_bytes`, epochs.parquet); the peak of tensor memory during one training step "
             "above that (activations, gradients, a gathered unit's weights: torch.profiler's CPU memory events); "
             "rank 0's peak resident set over the trial (`peak_memory_mb`, the whole process: Python, torch, "
             "the data); a step's seconds (mean of 3).", "",
             "| case | weights MB | optimizer MB | weights + optimizer vs DDP | step peak above, MB | "
             "held + step peak MB | vs DDP | step s | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
    base = results["DDP"]
    for label, r in results.items():
        last = r["history"][-1]
        held = last["param_bytes"] + last["optimizer_bytes"]
        ratio = held / (base["history"][-1]["param_bytes"] + base["history"][-1]["optimizer_bytes"])
        lines.append(f"| {label} | {mb(last['param_bytes'])} | {mb(last['optimizer_bytes'])} | {ratio:.2f}x | "
                     f"{mb(r['peak'])} | {mb(r['held'] + r['peak'])} | "
                     f"{(r['held'] + r['peak']) / (base['held'] + base['peak']):.2f}x | {r['seconds']:.2f} | "
                     f"{last['peak_memory_mb']:.0f} |")
    lines += ["", "Loss curves (train loss, then validation loss, per epoch; each reduced over both workers):", "",
              "| case | train loss | validation loss | largest gap to DDP (relative) |", "|---|---|---|---|"]
    for label, r in results.items():
        train = ", ".join(f"{m['train_loss']:.6f}" for m in r["history"])
        val = ", ".join(f"{m['val_loss']:.6f}" for m in r["history"])
        gap = max(abs(m[k] - b[k]) / abs(b[k]) for m, b in zip(r["history"], base["history"])
                  for k in ("train_loss", "val_loss"))
        lines.append(f"| {label} | {train} | {val} | {gap:.1e} |")
    publish(lines, "fsdp_memory")


if __name__ == "__main__":
    main()
