"""Metrics match scikit-learn; the tables summarise trials correctly."""
from __future__ import annotations

import json

import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from raytune_ft.train.metrics import classification_metrics
from raytune_ft.results.tables import read_table, strategy_rows, trial_row, write_table


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_sklearn(seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 5, (200,), generator=g)
    preds = torch.where(torch.rand(200, generator=g) < 0.6, labels, torch.randint(0, 4, (200,), generator=g))
    m = classification_metrics(labels, preds, 6)  # class 5 never occurs: excluded like sklearn does
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, preds))
    assert m["f1"] == pytest.approx(f1_score(labels, preds, average="macro"))
    assert m["confusion_matrix"] == confusion_matrix(labels, preds, labels=range(6)).tolist()


def epochs(*accs):
    return [{"epoch": i + 1, "val_accuracy": a, "val_f1": a - 0.01, "val_loss": 1 - a, "trainable_params": 10,
             "total_params": 100, "samples_per_sec": 50.0, "train_seconds": 2.0, "first_step_s": 5.0,
             "peak_memory_mb": 300.0 + i, "checkpoint_path": "/ckpt"} for i, a in enumerate(accs)]


def row(tid, name, status, history, mode="max", metric="val_accuracy", **knobs):
    strategy = {"name": name, **knobs, "hparams": {"lr": 0.01, "weight_decay": 0.0, "batch_size": 8,
                                                     "warmup_ratio": 0.1, "label_smoothing": 0.0}}
    return trial_row(job="j", run_id="r", trial_id=tid, strategy=strategy, status=status, history=history,
                     metric=metric, mode=mode, wall_seconds=10.0, error="boom" if status == "error" else "")


def test_trial_row_best_and_last():
    r = row("a", "lora", "stopped_early", epochs(0.5, 0.8, 0.7), r=4, target_modules=["q", "v"])
    assert (r["score"], r["best_epoch"], r["best_val_accuracy"], r["last_val_accuracy"]) == (0.8, 2, 0.8, 0.7)
    assert r["epochs_run"] == 3 and r["lr"] == 0.01 and r["lora.r"] == 4
    assert json.loads(r["lora.target_modules"]) == ["q", "v"]
    assert r["trainable_fraction"] == 0.1 and r["peak_memory_mb"] == 302.0 and r["train_seconds"] == 6.0
    loss = row("b", "full", "completed", epochs(0.5, 0.8, 0.7), mode="min", metric="val_loss")
    assert loss["score"] == pytest.approx(0.2) and loss["best_epoch"] == 2


def test_strategy_table_counts_and_ranks(tmp_path):
    trials = [
        row("a", "full", "completed", epochs(0.6, 0.9)),
        row("b", "full", "stopped_early", epochs(0.5)),
        row("c", "full", "error", []),
        row("d", "lora", "completed", epochs(0.7, 0.95), r=8),
    ]
    table = strategy_rows(trials, "max")
    assert [t["strategy"] for t in table] == ["lora", "full"]
    full = table[1]
    assert (full["trials"], full["completed"], full["stopped_early"], full["errored"]) == (3, 1, 1, 1)
    assert full["best_score"] == 0.9 and full["best_trial_id"] == "a"
    assert full["mean_score"] == pytest.approx(0.7) and full["std_score"] == pytest.approx(0.28284, rel=1e-3)
    assert json.loads(table[0]["best_config"])["lora.r"] == 8 and full["compute_seconds"] == 30.0
    write_table(trials, tmp_path / "trials.parquet")
    back = read_table(tmp_path / "trials.parquet")
    assert [r["trial_id"] for r in back] == ["a", "b", "c", "d"]
    assert back[0]["lora.r"] is None and back[3]["lora.r"] == 8 and back[2]["error"] == "boom"
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed into place
