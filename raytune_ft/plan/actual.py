"""The forecast beside what the run did, per strategy (and train size): strategies.parquet's forecast_* columns,
the report's section, the benchmark's table.

    rows = versus(read_plan(layout.plan), read_table(layout.trials))
    add_forecast(strategy_rows, trial_rows, layout.plan)      # in place, when the run has a plan.json

Actual: the search trials' wall seconds summed (compute_seconds), the epochs they ran, the largest peak memory a
trial's worker reported; the select and confirm trials' wall seconds. Error: actual / forecast - 1.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

FORECAST_COLUMNS = ("forecast_compute_seconds", "compute_forecast_error", "forecast_epochs", "epochs_run",
                    "forecast_confirm_compute_seconds", "forecast_peak_memory_mb", "peak_memory_mb")


def error(actual, forecast) -> Optional[float]:
    return actual / forecast - 1 if actual is not None and forecast else None


def versus(fc, trials: list[dict]) -> list[dict]:
    """One row per strategy (and train size) of the forecast: forecast and actual side by side."""
    out = []
    sizes = {s.train_size for s in fc.strategies}
    for s in fc.strategies:
        mine = [t for t in trials if t["strategy"] == s.strategy
                and (len(sizes) == 1 or t.get("train_size") == s.train_size)]
        search = [t for t in mine if t.get("stage", "search") == "search"]
        later = [t for t in mine if t.get("stage") in ("select", "confirm")]
        compute = sum(t.get("wall_seconds") or 0.0 for t in search) if search else None
        peaks = [t["peak_memory_mb"] for t in mine if t.get("peak_memory_mb") is not None]
        out.append({
            "strategy": s.strategy, "train_size": s.train_size,
            "forecast_compute_seconds": s.compute_seconds, "compute_seconds": compute,
            "forecast_epochs": s.trial_epochs, "epochs_run": sum(t.get("epochs_run") or 0 for t in search),
            "forecast_confirm_compute_seconds": s.confirm_compute_seconds if s.confirm_trials else None,
            "confirm_compute_seconds": sum(t.get("wall_seconds") or 0.0 for t in later) if later else None,
            "forecast_peak_memory_mb": s.peak_memory_mb, "peak_memory_mb": max(peaks) if peaks else None,
            "compute_forecast_error": error(compute, s.compute_seconds),
        })
    return out


def add_forecast(strategies: list[dict], trials: list[dict], plan: Path) -> None:
    """strategies.parquet's rows, with the forecast's columns (FORECAST_COLUMNS) where the run has a plan.json."""
    from raytune_ft.plan.make import read_plan

    fc = read_plan(plan) if Path(plan).exists() else None
    if fc is None:
        return
    rows = versus(fc, trials)
    one_size = len({r["train_size"] for r in rows}) == 1
    for row in strategies:
        match = next((r for r in rows if r["strategy"] == row["strategy"]
                      and (one_size or r["train_size"] == row.get("train_size"))), None)
        if match:
            row.update({k: match[k] for k in FORECAST_COLUMNS})


def totals(fc, trials: list[dict]) -> dict:
    """The job's forecast and actual: every trial's seconds, and the stages' wall time (the first trial's
    start to the last one's end)."""
    started = [t["started_at"] for t in trials if t.get("started_at") is not None]
    ended = [t["ended_at"] for t in trials if t.get("ended_at") is not None]
    span = (max(ended) - min(started)) if started and ended else None
    if span is not None and hasattr(span, "total_seconds"):
        span = span.total_seconds()
    stages = sum(fc.stages.get(k, 0.0) for k in ("search", "select", "confirm"))
    compute = sum(t.get("wall_seconds") or 0.0 for t in trials)
    return {"forecast_compute_seconds": fc.compute_seconds, "compute_seconds": compute,
            "compute_error": error(compute, fc.compute_seconds), "forecast_trials_wall_seconds": stages,
            "trials_wall_seconds": span, "trials_wall_error": error(span, stages)}
