"""Metrics match scikit-learn; the tables summarise trials correctly."""
from __future__ import annotations

import json

import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from raytune_ft.hparams import HParams
from raytune_ft.results.tables import read_table, strategy_rows, trial_row, write_table
from raytune_ft.train.metrics import classification_metrics


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


# ---------------------------------------------------------------- hand-computed expectations (issue 12: library code)


def test_macro_f1_leaves_out_a_class_absent_from_labels_and_predictions():
    """Class 3 never occurs: it gets F1 0 in per_class_f1 but is not averaged in; class 2 is only predicted
    (a false positive): it counts, with F1 0."""
    m = classification_metrics(torch.tensor([0, 0, 1, 1, 1]), torch.tensor([0, 2, 1, 1, 0]), 4)
    f1_0, f1_1 = 2 * 1 / (2 * 1 + 0 + 1 + 1), 2 * 2 / (2 * 2 + 0 + 1)  # 2TP / (2TP + FP + FN)
    assert m["per_class_f1"] == pytest.approx([f1_0, f1_1, 0.0, 0.0])
    assert m["f1"] == pytest.approx((f1_0 + f1_1 + 0.0) / 3)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["confusion_matrix"] == [[1, 0, 1, 0], [1, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert all(type(v) is int for r in m["confusion_matrix"] for v in r) and type(m["f1"]) is float


def test_metrics_of_an_empty_split_are_zero():
    m = classification_metrics(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 2)
    assert (m["accuracy"], m["f1"], m["confusion_matrix"], m["per_class_f1"]) == (0.0, 0.0, [[0, 0], [0, 0]], [0.0, 0.0])


def test_per_class_report_from_a_confusion_matrix():
    from raytune_ft.results.evaluation import per_class_report

    # a: 2 of 3 right, predicted 3 times; b: never true, predicted once; c: true once, never predicted
    report = per_class_report([[2, 1, 0], [0, 0, 0], [1, 0, 0]], ["a", "b", "c"])
    assert report == [{"class": "a", "precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3),
                       "f1": pytest.approx(2 / 3), "support": 3},
                      {"class": "b", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
                      {"class": "c", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}]
    assert all(type(r["support"]) is int and type(r["f1"]) is float for r in report)
    assert json.dumps(report)  # goes into test_report.json
    assert [r["support"] for r in per_class_report([[0, 0], [0, 0]], ["a", "b"])] == [0, 0]


STRATEGY_COLUMNS = ["strategy", "trials", "completed", "stopped_early", "stopped_patience", "errored", "best_score",
                    "mean_score", "std_score", "best_trial_id", "best_config", "trainable_fraction",
                    "trainable_params", "compute_seconds", "median_peak_memory_mb", "median_samples_per_sec", "checkpoint_bytes"]
HPARAMS = {"lr": 0.01, "weight_decay": 0.0, "batch_size": 8, "warmup_ratio": 0.1, "label_smoothing": 0.0}


def test_strategy_table_by_hand_ties_and_a_strategy_that_only_failed():
    trials = [
        row("a", "full", "completed", epochs(0.6, 0.8)),
        row("b", "full", "stopped_patience", epochs(0.8, 0.7)),  # ties with a: a came first, a is the best
        row("c", "ia3", "error", []),
        row("d", "lora", "stopped_early", epochs(0.8), r=4),  # ties with full: full came first, full ranks first
        row("e", "ia3", "error", epochs(0.9)),  # a score, but the trial failed: not counted
        row("f", "full", "stopped_early", epochs(0.5)),
    ]
    table = strategy_rows(trials, "max")
    assert [list(r) for r in table] == [STRATEGY_COLUMNS] * 3
    full, lora, ia3 = table
    mean = (0.8 + 0.8 + 0.5) / 3
    std = ((2 * (0.8 - mean) ** 2 + (0.5 - mean) ** 2) / 2) ** 0.5
    assert full == {"strategy": "full", "trials": 3, "completed": 1, "stopped_early": 1, "stopped_patience": 1,
                    "errored": 0, "best_score": 0.8, "mean_score": pytest.approx(mean), "std_score": pytest.approx(std),
                    "best_trial_id": "a", "best_config": json.dumps({k: HPARAMS.get(k) for k in HParams.model_fields}),
                    "trainable_fraction": 0.1, "trainable_params": 10, "compute_seconds": 30.0,
                    "median_peak_memory_mb": 301.0, "median_samples_per_sec": 50.0, "checkpoint_bytes": None}
    assert lora == {"strategy": "lora", "trials": 1, "completed": 0, "stopped_early": 1, "stopped_patience": 0,
                    "errored": 0, "best_score": 0.8, "mean_score": 0.8, "std_score": 0.0, "best_trial_id": "d",
                    "best_config": lora["best_config"], "trainable_fraction": 0.1, "trainable_params": 10,
                    "compute_seconds": 10.0, "median_peak_memory_mb": 300.0, "median_samples_per_sec": 50.0,
                    "checkpoint_bytes": None}
    assert json.loads(lora["best_config"])["lora.r"] == 4
    assert ia3 == {"strategy": "ia3", "trials": 2, "completed": 0, "stopped_early": 0, "stopped_patience": 0,
                   "errored": 2, "best_score": None, "mean_score": None, "std_score": None, "best_trial_id": None,
                   "best_config": None, "trainable_fraction": None, "trainable_params": None, "compute_seconds": 20.0,
                   "median_peak_memory_mb": 300.0, "median_samples_per_sec": 50.0,  # what the failed trial used
                   "checkpoint_bytes": None}
    for r in table:
        assert all(type(r[k]) is int for k in ("trials", "completed", "stopped_early", "stopped_patience", "errored"))
        assert type(r["compute_seconds"]) is float
    assert all(type(full[k]) is float for k in ("best_score", "mean_score", "std_score", "trainable_fraction"))
    assert type(full["trainable_params"]) is int


def test_strategy_table_min_mode_for_val_loss(tmp_path):
    def loss_row(tid, name, status, history, **knobs):
        return row(tid, name, status, history, mode="min", metric="val_loss", **knobs)

    trials = [loss_row("a", "full", "completed", epochs(0.6, 0.7)),  # val_loss 0.4 then 0.3: score 0.3
              loss_row("b", "lora", "completed", epochs(0.9), r=8),  # 0.1
              loss_row("c", "lora", "stopped_early", epochs(0.5), r=4),  # 0.5
              loss_row("d", "head", "error", [])]
    write_table(trials, tmp_path / "trials.parquet")
    for given in (trials, read_table(tmp_path / "trials.parquet")):  # also as report.load_run reads them back
        table = strategy_rows(given, "min")
        assert [(r["strategy"], r["best_trial_id"]) for r in table] == [("lora", "b"), ("full", "a"), ("head", None)]
        lora = table[0]
        assert lora["best_score"] == pytest.approx(0.1) and lora["mean_score"] == pytest.approx(0.3)
        assert lora["std_score"] == pytest.approx(((0.1 - 0.3) ** 2 + (0.5 - 0.3) ** 2) ** 0.5)
        assert json.loads(lora["best_config"])["lora.r"] == 8 and "lora.r" not in json.loads(table[1]["best_config"])
        assert table[1]["std_score"] == 0.0 and table[2]["std_score"] is None
    assert strategy_rows([], "min") == []
