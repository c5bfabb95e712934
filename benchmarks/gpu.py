"""The GPU path, proven on one GPU: one prepared command, no Ray, a table in benchmarks/results/gpu.md.

    bash benchmarks/gpu_wheels.sh                        # here, once: the wheels that machine lacks, into .whl/
    # there (the device tool, `carry: [".whl"]`), one command:
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \\
        PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 python3 benchmarks/gpu.py --out $OUT
    .venv/bin/python benchmarks/gpu.py --smoke-on-cpu    # here: every case, tiny, on the CPU, with the packages
                                                         # the GPU machine lacks (Ray, Optuna, opda) hidden

The GPU machine has no Ray and no network, so each case calls a trial's worker function directly
(raytune_ft.train.loop.train_trial: the loop a Ray Train worker runs) on prepared data:
- a CNN at 224 px (torchvision ResNet-50, random init) on digits, fp32 with TF32, bf16, fp16 (gradient scaler),
  and bf16 with augmentation in loader workers; against a plain Accelerate loop on the same GPU;
- a decoder LM (Llama architecture, random init, ~0.2 B parameters) on generated sentences: full and LoRA in
  bf16, with gradient checkpointing and QLoRA where this checkout has them, and L2-SP's cost; full against a
  plain Accelerate loop (last-token pooling, a linear head);
- two trials sharing the GPU (gpus_per_worker 0.5 each, two processes, each held to half the memory);
- a trial that runs out of memory under a small cap: it must end as an error that would repeat.
Every row records the device it ran on, samples/s, validation accuracy and peak memory (allocated and
reserved); a run on a CPU without --smoke-on-cpu stops at once.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from _bench import ROOT, publish  # noqa: F401  (puts the repository on sys.path)

HIDDEN = ("ray", "optuna", "opda")  # what the GPU machine does not have: hidden in a smoke run


def words_csv(path: Path, n: int, seed: int) -> None:
    from tests.tiny_models import WORDS

    good, bad = WORDS[:7], WORDS[7:14]
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        sentence = [rng.choice(good if label else bad)] + rng.sample(WORDS[14:], 6)
        rng.shuffle(sentence)
        rows.append(f"{' '.join(sentence)},{label}")
    path.write_text("text,label\n" + "\n".join(rows) + "\n")


def decoder_spec(work: Path, smoke: bool) -> dict:
    from tests.tiny_models import save_decoder

    model = save_decoder(work / "decoder", "llama", **({} if smoke else {"hidden": 1024, "layers": 16, "heads": 16}))
    for split, n in (("train", 256 if smoke else 4096), ("validation", 64 if smoke else 512)):
        words_csv(work / f"{split}.csv", n, seed=len(split))
    return {"name": "gpu-decoder", "model": {"source": "transformers", "name": str(model), "max_length": 32},
            "data": {"source": "text_table", "train": str(work / "train.csv"), "validation": str(work / "validation.csv")},
            "strategies": [{"name": "full"}]}


def vision_spec(smoke: bool) -> dict:
    return {"name": "gpu-vision", "model": {"source": "torchvision", "name": "resnet18" if smoke else "resnet50",
                                            "weights": None, "image_size": 32 if smoke else 224},
            "data": {"source": "digits", "max_train_samples": 256 if smoke else 1200},
            "strategies": [{"name": "full"}]}


def job(base: dict, *, precision: str, epochs: int, batch: int, gpus: float, smoke: bool, augment: bool = False,
        strategy: dict | None = None, **training) -> dict:
    spec = {**base, "strategies": [strategy or {"name": "full"}],
            "training": {"epochs": epochs, "mixed_precision": "no" if smoke else precision,
                         **({"augment": {"random_resized_crop": True, "color_jitter": 0.2}} if augment else {}),
                         **training},
            "search": {"num_samples": 1, "hparams": {"batch_size": batch, "lr": 3e-4}},
            "resources": {"cpus_per_worker": 1 if smoke else 6, "gpus_per_worker": 0 if smoke else gpus}}
    return spec


def run_trial(spec: dict, work: Path, **hp) -> dict:
    """One trial's worker function, directly; its last epoch's numbers."""
    from raytune_ft.data import prepare_data
    from raytune_ft.spec import parse_job
    from raytune_ft.train.config import trial_config
    from raytune_ft.train.loop import train_trial

    parsed = parse_job(spec)
    data = work / f"data-{spec['name']}"
    if not (data / "meta.json").exists():
        prepare_data(parsed, data)
    strategy = {k: v for k, v in spec["strategies"][0].items() if k != "hparams"}
    config = trial_config(parsed, data, Path(tempfile.mkdtemp(dir=work)), strategy,
                          {**spec["search"]["hparams"], **hp})
    start = time.perf_counter()
    history = train_trial(config, report=lambda m: None)
    last = history[-1]
    return {"samples_per_sec": max(m["samples_per_sec"] for m in history[1:] or history),
            "val_accuracy": last["val_accuracy"], "peak_mb": last["peak_memory_mb"],
            "reserved_mb": last.get("peak_memory_reserved_mb"), "seconds": time.perf_counter() - start,
            "trainable": last["trainable_params"], "total": last["total_params"]}


def plain_loop(spec: dict, work: Path, smoke: bool) -> float:
    """The same model, data and batch size in a plain Accelerate loop: samples/s of its last epoch."""
    import torch
    from accelerate import Accelerator

    from raytune_ft.data import load_meta, load_split
    from raytune_ft.spec import parse_job
    from raytune_ft.train.model import build_trial_model

    parsed = parse_job(spec)
    data = work / f"data-{spec['name']}"
    meta, train = load_meta(data), load_split(data, "train")
    model, _, _ = build_trial_model(parsed.resolved()["model"], {"name": "full"}, 0.0, len(meta["classes"]))
    acc = Accelerator(mixed_precision=spec["training"]["mixed_precision"], cpu=smoke)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    model, optimizer = acc.prepare(model, optimizer)
    columns = {k: (v.read() if hasattr(v, "read") else v) for k, v in train.items()}
    labels, batch = columns.pop("labels"), spec["search"]["hparams"]["batch_size"]
    from raytune_ft.train.evaluate import model_inputs

    rate = 0.0
    for _ in range(spec["training"]["epochs"]):
        order = torch.randperm(len(labels))
        start, seen = time.perf_counter(), 0
        for i in range(0, len(labels) - batch + 1, batch):
            rows = order[i:i + batch]
            inputs = model_inputs({k: v[rows] for k, v in columns.items()}, meta, acc.device)
            loss = torch.nn.functional.cross_entropy(model(**inputs), labels[rows].to(acc.device))
            acc.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            seen += batch
        if acc.device.type == "cuda":
            torch.cuda.synchronize()
        rate = seen / (time.perf_counter() - start)
    return rate


def sharing(spec: dict, work: Path, queue) -> None:
    """One of two trials sharing a GPU (a process each: what two Ray trials on 0.5 GPU are)."""
    queue.put(run_trial(spec, work))


def cases(work: Path, smoke: bool, epochs: int):
    """(group, case, spec, trial hparams, plain-loop baseline?) in the order they run."""
    from raytune_ft.strategies import STRATEGIES

    vision, decoder = vision_spec(smoke), decoder_spec(work, smoke)
    batch_v, batch_d = (16, 8) if smoke else (128, 32)
    yield "vision 224 px ResNet-50", "fp32 + TF32", job(vision, precision="no", epochs=epochs, batch=batch_v,
                                                          gpus=1, smoke=smoke), {}, False
    yield "vision 224 px ResNet-50", "bf16", job(vision, precision="bf16", epochs=epochs, batch=batch_v, gpus=1,
                                                   smoke=smoke), {}, True
    yield "vision 224 px ResNet-50", "fp16 (gradient scaler)", job(vision, precision="fp16", epochs=epochs,
                                                                     batch=batch_v, gpus=1, smoke=smoke), {}, False
    yield "vision 224 px ResNet-50", "bf16, augmentation in loader workers", job(
        vision, precision="bf16", epochs=epochs, batch=batch_v, gpus=1, smoke=smoke, augment=True), {}, False
    yield "decoder LM", "full, bf16", job(decoder, precision="bf16", epochs=epochs, batch=batch_d, gpus=1,
                                          smoke=smoke), {}, True
    yield "decoder LM", "full, bf16, L2-SP 0.01", job(decoder, precision="bf16", epochs=epochs, batch=batch_d,
                                                      gpus=1, smoke=smoke), {"l2sp": 0.01}, False
    yield "decoder LM", "lora r 16, bf16", job(decoder, precision="bf16", epochs=epochs, batch=batch_d, gpus=1,
                                               smoke=smoke, strategy={"name": "lora", "r": 16}), {}, False
    yield "decoder LM", "full, bf16, gradient checkpointing", job(
        decoder, precision="bf16", epochs=epochs, batch=batch_d, gpus=1, smoke=smoke), \
        {"gradient_checkpointing": True}, False
    if "qlora" in STRATEGIES and not smoke:
        yield "decoder LM", "qlora r 16 (NF4 base)", job(decoder, precision="bf16", epochs=epochs, batch=batch_d,
                                                         gpus=1, smoke=smoke, strategy={"name": "qlora", "r": 16}), {}, False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--smoke-on-cpu", action="store_true", help="every case tiny on the CPU: checks the script")
    parser.add_argument("--out", type=Path, help="also write the table here (the device tool's $OUT)")
    args = parser.parse_args()
    smoke = args.smoke_on_cpu
    if smoke:
        for name in HIDDEN:
            sys.modules[name] = None  # as on the GPU machine: importing them fails
    import torch

    if not smoke and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: run this on a GPU machine, or --smoke-on-cpu to check the script")
    device = "CPU (smoke run: no figure here is a GPU measurement)" if smoke else torch.cuda.get_device_name(0)
    epochs = 1 if smoke else args.epochs
    work = Path(tempfile.mkdtemp(prefix="bench_gpu_"))
    lines = [f"# GPU paths: one trial's worker function against a plain Accelerate loop, on {device}", "",
             f"Command: `python3 benchmarks/gpu.py{' --smoke-on-cpu' if smoke else ''}`; torch {torch.__version__}; "
             f"{epochs} epoch(s) per case, samples/s of the fastest epoch after the first; load before "
             f"{os.getloadavg()[0]:.2f}.", "",
             "| model | case | samples/s | plain loop | ratio | val acc | peak MB (allocated / reserved) | trainable | s |",
             "|---|---|---|---|---|---|---|---|---|"]

    def row(group, case, got, plain=None):
        ratio = f"{got['samples_per_sec'] / plain:.2f}x" if plain else "-"
        lines.append(f"| {group} | {case} | {got['samples_per_sec']:.0f} | {f'{plain:.0f}' if plain else '-'} | "
                     f"{ratio} | {got['val_accuracy']:.3f} | {got['peak_mb']:.0f} / {got['reserved_mb'] or 0:.0f} | "
                     f"{got['trainable'] / got['total']:.1%} | {got['seconds']:.0f} |")
        print(lines[-1], flush=True)

    for group, case, spec, hp, baseline in cases(work, smoke, epochs):
        try:
            got = run_trial(spec, work, **hp)
        except Exception as e:  # a case that breaks is a row, not the end of the check
            lines.append(f"| {group} | {case} | FAILED: {type(e).__name__}: {str(e)[:300]} | | | | | | |")
            print(lines[-1], flush=True)
            continue
        row(group, case, got, plain_loop(spec, work, smoke) if baseline else None)
    lines += two_trials(work, smoke, epochs) + out_of_memory(work, smoke)
    text = "\n".join(lines)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / ("gpu_smoke_cpu.md" if smoke else "gpu.md")).write_text(text + "\n")
    if not smoke:  # a smoke run checks the script; its figures are no GPU measurement and are not published
        publish(lines, "gpu")  # then include it in docs/explanation/benchmarks.md (tests/test_docs.py checks)
    else:
        print("\n".join(lines[-4:]))


def two_trials(work: Path, smoke: bool, epochs: int) -> list[str]:
    """Two trials at once on one GPU, 0.5 each: both finish, each within half the GPU's memory."""
    import multiprocessing as mp

    import torch

    spec = job(vision_spec(smoke), precision="bf16", epochs=epochs, batch=16 if smoke else 128, gpus=0.5, smoke=smoke)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=sharing, args=(spec, work, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [queue.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    half = torch.cuda.get_device_properties(0).total_memory / 2**20 / 2 if not smoke else float("inf")
    return ["", "Two trials sharing the GPU (gpus_per_worker 0.5, one process each): samples/s "
            + ", ".join(f"{g['samples_per_sec']:.0f}" for g in got) + "; peak reserved MB "
            + ", ".join(f"{g['reserved_mb'] or 0:.0f}" for g in got) + f" (each within half the GPU, {half:.0f} MB: "
            + f"{all((g['reserved_mb'] or 0) <= half for g in got)})."]


def out_of_memory(work: Path, smoke: bool) -> list[str]:
    """A trial held to 2 % of the GPU's memory with a batch that cannot fit: an error that would repeat."""
    from raytune_ft.train.failures import would_repeat

    if smoke:
        return ["", "Out of memory: not run on the CPU."]
    spec = job(vision_spec(False), precision="bf16", epochs=1, batch=1024, gpus=0.02, smoke=False)
    try:
        run_trial(spec, work)
        said = "the trial did not run out of memory (the check is void)"
    except Exception as e:
        said = f"{type(e).__name__}, would repeat: {would_repeat(e)} ({json.dumps(str(e)[:160])})"
    return ["", f"Out of memory under a 2 % cap (gpus_per_worker 0.02, batch 1,024 at 224 px): {said}."]


if __name__ == "__main__":
    main()
