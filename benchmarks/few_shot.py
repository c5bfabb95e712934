"""Few-shot: does a prototype head (cosine to class means of the pretrained features) beat a fresh linear
head when there are only k training images per class?

    .venv/bin/python benchmarks/few_shot.py [--seeds 5] [--epochs 8] [--shots 1 5 10]

The quickstart's model and data (EfficientNet-Lite0, ImageNet weights, digits at 32 px), no Ray: each run
is the worker function `train_trial` called directly, as a confirm-stage trial (every epoch, the test split
scored at each epoch better on validation than all before). For each strategy (feature_extraction, full),
head (linear, prototype), k in --shots and seed s: `data.shots: k` with `data.seed: s` (a new k-shot draw
per seed, the same for both heads and both strategies) and trial seed s. Same hyperparameters for both
heads: AdamW, batch 16, cosine schedule with 10% warmup, weight decay 0.01; lr 1e-2 (feature_extraction)
and 1e-3 (full), the middles of the quickstart's ranges. Validation and test are the full digits splits
(270 images each).

Reports test accuracy at the best-validation epoch (what `search.confirm` reports) and validation accuracy
at the last epoch, mean +- std over seeds per cell; writes benchmarks/results/few_shot.md.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _bench import ROOT, publish  # noqa: E402  (puts the repository on sys.path)

LR = {"feature_extraction": 1e-2, "full": 1e-3}
HEADS = ("linear", "prototype")


def spec(shots: int, seed: int, head: str, epochs: int) -> dict:
    import yaml

    base = yaml.safe_load((ROOT / "jobs" / "quickstart.yaml").read_text())
    base["model"]["head"] = head
    base["data"] = {"source": "digits", "shots": shots, "seed": seed}
    base["strategies"] = [{"name": s} for s in LR]
    base["training"] = {"epochs": epochs, "keep_checkpoint": False}
    base["search"] = {"num_samples": 1, "scheduler": {"name": "none"}, "seed": seed,
                      "hparams": {"batch_size": 16, "weight_decay": 0.01, "warmup_ratio": 0.1}}
    return base


def one_run(data: Path, work: Path, strategy: str, head: str, shots: int, seed: int, epochs: int) -> dict:
    from raytune_ft.spec import parse_job
    from raytune_ft.sweep.run import train_subsets
    from raytune_ft.data import load_meta
    from raytune_ft.train.config import trial_config
    from raytune_ft.train.loop import train_trial

    job = parse_job(spec(shots, seed, head, epochs))
    (subset,) = train_subsets(job, load_meta(data))  # data.shots: k, the one train size
    hp = {"lr": LR[strategy], "batch_size": 16, "weight_decay": 0.01, "warmup_ratio": 0.1}
    config = trial_config(job, data, work / f"{strategy}-{head}-{shots}-{seed}", {"name": strategy}, hp,
                          seed=seed, stage="confirm", train_subset=subset)
    history = train_trial(config, report=lambda m: None)
    tested = [m for m in history if "test_accuracy" in m][-1]  # the best-validation epoch's test scores
    assert history[0]["train_samples"] == subset["size"] == 10 * shots
    return {"test": tested["test_accuracy"], "val_last": history[-1]["val_accuracy"], "best_epoch": tested["epoch"]}


def cell(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10])
    args = parser.parse_args()

    import torch

    from raytune_ft.data import prepare_data
    from raytune_ft.spec import parse_job

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="bench_few_shot_"))
    prepare_data(parse_job(spec(1, 0, "linear", args.epochs)), work / "data")  # shots pick rows later, per trial
    started = time.perf_counter()
    results: dict = {}
    for seed in range(args.seeds):
        for shots in args.shots:
            for strategy in LR:
                for head in HEADS:
                    t = time.perf_counter()
                    r = one_run(work / "data", work, strategy, head, shots, seed, args.epochs)
                    results.setdefault((strategy, head, shots), []).append(r)
                    print(f"seed {seed} k={shots} {strategy} {head}: test {r['test']:.3f} (best epoch "
                          f"{r['best_epoch']}), last val {r['val_last']:.3f} [{time.perf_counter() - t:.0f} s]",
                          flush=True)

    def table(key: str) -> list[str]:
        rows = ["| strategy | head | " + " | ".join(f"k = {k}" for k in args.shots) + " |",
                "|---|---|" + "---|" * len(args.shots)]
        for strategy in LR:
            for head in HEADS:
                rows.append(f"| {strategy} | {head} | " + " | ".join(
                    cell([r[key] for r in results[(strategy, head, k)]]) for k in args.shots) + " |")
        return rows

    def wins(strategy: str, k: int) -> str:
        pairs = zip(results[(strategy, "prototype", k)], results[(strategy, "linear", k)])
        return f"{sum(p['test'] > l['test'] for p, l in pairs)}/{args.seeds}"

    lines = ["# Few-shot: prototype head against a fresh linear head", "",
             f"Command: `.venv/bin/python benchmarks/few_shot.py --seeds {args.seeds} --epochs {args.epochs}"
             f" --shots {' '.join(map(str, args.shots))}`. EfficientNet-Lite0 (ImageNet, packaged), digits at 32 px, "
             f"`data.shots: k` (k images of each of the 10 classes, drawn by `data.seed`), {args.epochs} epochs, "
             "`train_trial` called directly (no Ray) as a confirm-stage trial; seeds 0.."
             f"{args.seeds - 1} (each a new k-shot draw and trial seed, shared by every cell). Batch 16, AdamW, "
             "cosine with 10% warmup, lr 1e-2 (feature_extraction) / 1e-3 (full), the same for both heads; "
             "prototype head: fixed scale 16.", "",
             "Test accuracy (270 images) at the best-validation epoch, mean ± std over seeds:", "", *table("test"), "",
             "Validation accuracy (270 images) at the last epoch, mean ± std over seeds:", "", *table("val_last"), "",
             "Seeds where the prototype head's test accuracy is higher (paired, same draw): " + "; ".join(
                 f"{s} k={k}: {wins(s, k)}" for s in LR for k in args.shots) + ".", "",
             f"Total {time.perf_counter() - started:.0f} s on {torch.get_num_threads()} thread(s)."]
    publish(lines, "few_shot")


if __name__ == "__main__":
    main()
