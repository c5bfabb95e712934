"""The run's tables: `trials.parquet` (one row per trial), `strategies.parquet` (one per strategy) and
`epochs.parquet` (one row per reported epoch of every trial, running ones included: the curves).

They are rewritten whole and atomically (write a temporary file, then rename) while the sweep runs (soon
after a trial ends, every ~10 s while epochs are reported: sweep/callback.py) and at the end of each stage, so a
crash at any moment leaves readable tables of what was done. The columns are declared in results/schema.py.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from raytune_ft.files import replacing
from raytune_ft.hparams import HParams
from raytune_ft.metric import arg_best_of, best_of, sign
from raytune_ft.metric import best as metric_best

HPARAM_COLUMNS = list(HParams.model_fields)
# stopped_early: by the scheduler (ASHA, HyperBand, median); stopped_patience: by training.patience
STATUSES = ("completed", "stopped_early", "stopped_patience", "error")


def trial_row(*, job: str, run_id: str, trial_id: str, strategy: dict, status: str, history: list[dict],
              metric: str, mode: str, wall_seconds: float, error: str = "", resumes: int = 0,
              seed: Optional[int] = None, stage: str = "search", train_size: Optional[int] = None,
              source_trial_id: Optional[str] = None, started_at: Optional[float] = None,
              ended_at: Optional[float] = None, run_dir: Optional[Path] = None,
              checkpoint_bytes: Optional[int] = None) -> dict:
    """One trials.parquet row from a trial's per-epoch metrics. A confirm trial's test_* are those of its
    best-validation epoch (the worker scores the test split at each epoch better than all before).
    started_at / ended_at: epoch seconds; run_dir: the run folder, which checkpoint_path is made relative to
    (so the folder can move)."""
    knobs = {k: v for k, v in strategy.items() if k not in ("name", "hparams")}
    row = {"job": job, "run_id": run_id, "trial_id": trial_id, "strategy": strategy["name"], "seed": seed,
           "stage": stage, "train_size": train_size, "source_trial_id": source_trial_id}
    row.update({k: strategy["hparams"].get(k) for k in HPARAM_COLUMNS})
    row.update({f"{strategy['name']}.{k}": _cell(v) for k, v in knobs.items()})
    best = metric_best(history, lambda m: m[metric], mode) if history else {}
    last = history[-1] if history else {}
    trainable, total = last.get("trainable_params"), last.get("total_params")
    row.update({
        "status": status,
        "epochs_run": len(history),
        "score": best.get(metric),
        "best_epoch": best.get("epoch"),
        "best_val_accuracy": best.get("val_accuracy"),
        "best_val_f1": best.get("val_f1"),
        "best_val_loss": best.get("val_loss"),
        "last_val_accuracy": last.get("val_accuracy"),
        "last_val_f1": last.get("val_f1"),
        "last_val_loss": last.get("val_loss"),
        "test_accuracy": best.get("test_accuracy"),
        "test_f1": best.get("test_f1"),
        "test_loss": best.get("test_loss"),
        "test_score": best.get(metric_on_test(metric)),
        "test_samples": best.get("test_samples"),  # the test split's size: the grid its accuracy moves on
        "val_samples": last.get("val_samples"),  # what it validated on (data.cap_validation)
        "data_seed": last.get("data_seed"),  # search.confirm.vary_data: the seed that drew its split
        "trainable_params": trainable,
        "total_params": total,
        "trainable_fraction": trainable / total if trainable and total else None,
        "wall_seconds": wall_seconds,
        "train_seconds": sum(m["train_seconds"] for m in history) if history else None,
        "eval_seconds": sum(m.get("eval_seconds") or 0.0 for m in history) if history else None,
        "checkpoint_seconds": sum(m.get("checkpoint_seconds") or 0.0 for m in history) if history else None,
        "first_step_seconds": history[0].get("first_step_s") if history else None,
        "data_load_seconds": history[0].get("data_load_s") if history else None,
        "samples_per_sec": sum(m["samples_per_sec"] for m in history) / len(history) if history else None,
        "peak_memory_mb": max(m["peak_memory_mb"] for m in history) if history else None,
        # the best epoch's: kept by Ray (or locally); relative to the run folder, or a bucket URI
        "checkpoint_path": relative_to(best.get("checkpoint_path") or None, run_dir),
        "checkpoint_bytes": checkpoint_bytes,  # what is kept of its checkpoints (sweep/retention.py)
        "resumes": resumes,
        "started_at": started_at,
        "ended_at": ended_at,
        "error_reason": error_reason(error) or None,
        "error": error or None,
    })
    for k in task_metrics(history):  # a multi-task trial's per-task scores: best_val_accuracy.topic, ...
        if k.startswith("val_"):
            row[f"best_{k}"], row[f"last_{k}"] = best.get(k), last.get(k)
        else:  # test_accuracy.topic: the best-validation epoch's (confirm trials)
            row[k] = best.get(k)
    return row


def task_metrics(history: list[dict]) -> list[str]:
    """The per-task metrics a multi-task trial reported (val_accuracy.topic, test_f1.topic, ...), in report
    order; [] for a single-task trial. The plain val_accuracy / val_f1 / val_loss are their means."""
    return list(dict.fromkeys(k for m in history for k in m if "." in k and k.startswith(("val_", "test_"))))


EPOCH_COLUMNS = ("epoch", "train_loss", "val_loss", "val_accuracy", "val_f1", "lr", "samples_per_sec",
                 "train_seconds", "peak_memory_mb", "param_bytes", "optimizer_bytes", "distributed_type", "resumes",
                 "node_id")


def epoch_rows(*, run_id: str, trial_id: str, strategy: str, status: str, history: list[dict],
               stage: str = "search", train_size: Optional[int] = None) -> list[dict]:
    """epochs.parquet rows of one trial: its per-epoch metrics, and its status at the time of writing."""
    return [{"run_id": run_id, "trial_id": trial_id, "strategy": strategy, "stage": stage, "train_size": train_size,
             "status": status, **{k: m.get(k) for k in EPOCH_COLUMNS},
             **{k: m.get(k) for k in task_metrics(history) if k.startswith("val_")}} for m in history]


def metric_on_test(metric: str) -> str:
    """The test split's counterpart of a validation metric: val_accuracy -> test_accuracy."""
    return "test_" + metric.removeprefix("val_")


def error_reason(error: str) -> str:
    """The line of a trial's error text that says what went wrong (Ray wraps it in its own lines)."""
    lines = [ln.strip() for ln in error.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.split(":")[0].endswith(("Error", "Exception", "Interrupt")) and not ln.startswith(("ray.", "During")):
            return ln
    return lines[-1] if lines else ""


def relative_to(location: Optional[str], run_dir: Optional[Path]) -> Optional[str]:
    """A checkpoint's location as trials.parquet keeps it: inside the run folder, relative to it; a bucket URI
    or a path elsewhere as it is."""
    if not location or run_dir is None or "://" in location:
        return location
    try:
        return str(Path(location).resolve().relative_to(Path(run_dir).resolve()))
    except ValueError:
        return location


def checkpoint_location(run_dir: Path, location: Optional[str]) -> Optional[str]:
    """Where trials.parquet's checkpoint_path is: a path relative to the run folder joined to it; a URI or an
    absolute path (runs made before paths were relative) as it is."""
    if not location or "://" in location or Path(location).is_absolute():
        return location
    return str(Path(run_dir) / location)


def num(value):
    """A cell's value, or None where the table has none (null, or NaN in a float column)."""
    return None if value is None or (isinstance(value, float) and value != value) else value


def _cell(value):
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def strategy_rows(trials: list[dict], mode: str) -> list[dict]:
    """Per-strategy summary: counts by status; best / mean / std score over the trials that did not fail (std
    sample, 0.0 for one score); the best trial (the first of equals), its config and cost; the compute of all
    the strategy's trials, and the median peak memory and samples/s of its trials. Best strategy first (the first to appear among equals), those without a score last."""
    import pandas as pd

    if not trials:
        return []
    df = pd.DataFrame(trials, columns=["strategy", "status", "score", "wall_seconds", "peak_memory_mb",
                                       "samples_per_sec", "checkpoint_bytes"])
    df = df.astype({"score": float, "wall_seconds": float, "peak_memory_mb": float, "samples_per_sec": float,
                    "checkpoint_bytes": float})
    by = df.groupby("strategy", sort=False)
    scored = df[df["score"].notna() & (df["status"] != "error")].groupby("strategy", sort=False)["score"]
    table = pd.concat([
        by.size().rename("trials"),
        pd.crosstab(df["strategy"], df["status"]).reindex(columns=list(STATUSES), fill_value=0),
        scored.agg(scored="count", best_score=best_of(mode), best=arg_best_of(mode), mean_score="mean",
                   std_score="std"),
        by["wall_seconds"].sum().rename("compute_seconds"),
        by["peak_memory_mb"].median().rename("median_peak_memory_mb"),
        by["samples_per_sec"].median().rename("median_samples_per_sec"),
        by["checkpoint_bytes"].sum(min_count=1).rename("checkpoint_bytes"),
    ], axis=1).reindex(by.size().index).fillna({"scored": 0})
    table = table.sort_values("best_score", ascending=sign(mode) < 0, kind="stable", na_position="last")
    out = []
    for name, r in zip(table.index, table.to_dict("records")):
        best = trials[int(r["best"])] if r["scored"] > 0 else None
        config = {k: v for k, v in best.items() if k in HPARAM_COLUMNS or k.startswith(f"{name}.")} if best else None
        out.append({
            "strategy": name,
            "trials": r["trials"],
            "completed": r["completed"],
            "stopped_early": r["stopped_early"],
            "stopped_patience": r["stopped_patience"],
            "errored": r["error"],
            "best_score": best["score"] if best else None,
            "mean_score": r["mean_score"] if best else None,
            "std_score": (r["std_score"] if r["scored"] > 1 else 0.0) if best else None,
            "best_trial_id": best["trial_id"] if best else None,
            "best_config": json.dumps(config) if config else None,
            "trainable_fraction": best["trainable_fraction"] if best else None,
            "trainable_params": best["trainable_params"] if best else None,
            "compute_seconds": r["compute_seconds"],
            # what a trial of it costs besides time: medians over its trials (failed ones have none)
            "median_peak_memory_mb": num(r["median_peak_memory_mb"]),
            "median_samples_per_sec": num(r["median_samples_per_sec"]),
            "checkpoint_bytes": num(r["checkpoint_bytes"]),  # what its trials' kept checkpoints hold
            # a multi-task job: the best trial's best-epoch score of each task (best_val_accuracy.topic, ...)
            **({k: v for k, v in best.items() if k.startswith("best_val_") and "." in k} if best else {}),
        })
    return out


def write_table(rows: list[dict], path: Path, table: Optional[str] = None) -> None:
    """Atomic Parquet write of `rows` as the table its file name says (trials.parquet: "trials"; or `table`),
    with the columns and types results/schema.py declares for it, so that runs' tables concatenate. A file
    of no declared table gets every row's columns, types inferred. The run's provenance.json beside `path`,
    if there is one, goes in as schema metadata (raytune_ft/provenance.py)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raytune_ft.provenance import with_provenance
    from raytune_ft.results.schema import TABLES, arrow_schema, column

    name = table or path.stem
    if name in TABLES:
        schema = arrow_schema(name, rows)
        data = pa.Table.from_arrays([column([r.get(f.name) for r in rows], f.type) for f in schema], schema=schema)
    else:
        columns = list(dict.fromkeys(k for r in rows for k in r))
        data = pa.Table.from_pydict({c: [r.get(c) for r in rows] for c in columns})
    with replacing(path) as tmp:
        pq.write_table(with_provenance(data, path.parent), tmp)


def read_table(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()
