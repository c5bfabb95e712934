"""After the sweep: each strategy's best trial, reloaded from its best checkpoint, on the test split.

Writes `reports/<strategy>/test_report.json` (accuracy, macro-F1, loss, per-class precision /
recall / F1 / support, confusion matrix) and `confusion_matrix.csv`; returns the test metrics
that go into strategies.parquet. A multi-task model's report has each task's under "tasks" (and a
`confusion_matrix.<task>.csv` each); its accuracy, f1 and loss are the means over the tasks, and its
top-level confusion matrix and per-class rows are the first task's.
"""
from __future__ import annotations

import json
from pathlib import Path

from raytune_ft.layout import RunLayout


def per_class_report(cm: list[list[int]], classes: list[str]) -> list[dict]:
    """Precision / recall / F1 / support of each class from a confusion matrix (rows: true classes); a ratio
    with nothing to divide by (a class never predicted, or never true) is 0.0."""
    import numpy as np
    from sklearn.metrics import precision_recall_fscore_support

    n = len(classes)
    # the matrix back to (true, predicted) pairs, one per sample, which is what scikit-learn takes
    y_true, y_pred = np.divmod(np.repeat(np.arange(n * n), np.asarray(cm, dtype=int).ravel()), n)
    stats = (precision_recall_fscore_support(y_true, y_pred, labels=range(n), zero_division=0) if len(y_true)
             else np.zeros((4, n)))  # scikit-learn refuses empty input
    return [{"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(classes, *stats)]


def evaluate_trial(checkpoint, data_dir: Path, split: str = "test") -> dict:
    """A trial's checkpoint (a folder, a trial folder's best, or a bucket URI) on one split, on this
    process's CPU (or its GPU if it has one), evaluated as the trial validated it: the same loop,
    batch size and mixed precision."""
    import torch

    from raytune_ft.data import load_meta, load_split
    from raytune_ft.train.evaluate import TensorDict, evaluate, loader
    from raytune_ft.train.model import load_trial_model
    from raytune_ft.train.tasks import Tasks

    model, config = load_trial_model(checkpoint)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    meta, data = load_meta(data_dir), load_split(data_dir, split)
    batches = loader(TensorDict(data), config.training.eval_batch_size)
    tasks = Tasks.from_meta(meta)
    m = evaluate(model, batches, meta, device, len(meta["classes"]),
                 mixed_precision=config.training.mixed_precision, tasks=tasks)
    if not tasks.multi:
        return {"accuracy": m["accuracy"], "f1": m["f1"], "loss": m["loss"], "samples": len(data["labels"]),
                "confusion_matrix": m["confusion_matrix"], "classes": meta["classes"],
                "per_class": per_class_report(m["confusion_matrix"], meta["classes"])}
    per_task = {task: {"accuracy": t["accuracy"], "f1": t["f1"], "loss": t["loss"],
                       "confusion_matrix": t["confusion_matrix"], "classes": tasks.classes[task],
                       "per_class": per_class_report(t["confusion_matrix"], tasks.classes[task])}
                for task, t in m["tasks"].items()}
    first = per_task[tasks.names[0]]
    return {"accuracy": m["accuracy"], "f1": m["f1"], "loss": m["loss"], "samples": len(data["labels"]),
            "confusion_matrix": first["confusion_matrix"], "classes": first["classes"],
            "per_class": first["per_class"], "tasks": per_task}


def _confusion_csv(report: dict) -> str:
    lines = ["true/predicted," + ",".join(report["classes"])]
    lines += [f"{c}," + ",".join(map(str, r)) for c, r in zip(report["classes"], report["confusion_matrix"])]
    return "\n".join(lines) + "\n"


def test_columns(report: dict) -> dict:
    """strategies.parquet's test_* columns from a test report: test_accuracy / test_f1 / test_loss, and for a
    multi-task model each task's (test_accuracy.topic, ...)."""
    out = {"test_accuracy": report.get("accuracy"), "test_f1": report.get("f1"), "test_loss": report.get("loss")}
    for task, t in (report.get("tasks") or {}).items():
        out.update({f"test_{k}.{task}": t[k] for k in ("accuracy", "f1", "loss")})
    return out


def summary(strategy: str, report: dict) -> str:
    """One strategy's test scores in the printed line: 'full acc 0.9 f1 0.9' (+ each task's, multi-task)."""
    text = f"{strategy} acc {report['accuracy']:.4f} f1 {report['f1']:.4f}"
    if report.get("tasks"):
        text += " (" + ", ".join(f"{task} acc {t['accuracy']:.4f} f1 {t['f1']:.4f}"
                                 for task, t in report["tasks"].items()) + ")"
    return text


def evaluate_best_trials(run_dir: Path, strategies: list[dict], trials: list[dict], printer=print) -> dict[str, dict]:
    """{strategy: test metrics} for each strategy whose best trial kept a checkpoint (trials.parquet's
    checkpoint_path: relative to the run folder, or where Ray stored it in the run's bucket)."""
    layout = RunLayout(run_dir)
    from raytune_ft.data import has_split

    if not has_split(layout.data, "test"):
        return {}
    from raytune_ft.results.tables import checkpoint_location

    checkpoints = {t["trial_id"]: checkpoint_location(layout.root, t.get("checkpoint_path")) for t in trials}
    out = {}
    for row in strategies:
        checkpoint = checkpoints.get(row.get("best_trial_id"))
        if not checkpoint:
            continue
        try:
            report = evaluate_trial(checkpoint, layout.data)
        except Exception as e:  # a broken checkpoint must not take the other strategies' reports down
            printer(f"test evaluation of {row['strategy']} ({row['best_trial_id']}) failed: {e}")
            continue
        folder = layout.report(row["strategy"])
        folder.mkdir(parents=True, exist_ok=True)
        layout.test_report(row["strategy"]).write_text(json.dumps({"trial_id": row["best_trial_id"], **report}, indent=1))
        (folder / "confusion_matrix.csv").write_text(_confusion_csv(report))
        for task, t in (report.get("tasks") or {}).items():
            (folder / f"confusion_matrix.{task}.csv").write_text(_confusion_csv(t))
        out[row["strategy"]] = report
    return out
