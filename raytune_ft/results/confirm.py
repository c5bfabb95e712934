"""The strategy table with the confirm stage's verdict, and the pairwise comparisons behind it.

    strategies, comparisons = strategy_table(trial_rows, mode, metric)

Search columns (best / mean score, counts, compute) come from the search stage's trials, one row per
strategy and train size (tables.strategy_rows). When the sweep had a confirm stage (search.confirm),
each row also gets the strategy's confirmed test score:

- the strategy's top_k configurations were each trained again with the same fresh seeds; the one
  whose mean *validation* score over those seeds is best is its confirmed configuration (chosen on
  validation, so the test split stays a fair judge);
- its test scores over the seeds give confirm_mean / confirm_std / ci_low / ci_high / confirm_n;
- strategies are compared pairwise over the seeds they share (stats.comparisons: the difference and
  its interval, P(A beats B on a fresh seed), a paired p-value, Holm over all pairs), and those that
  cannot be told apart from the best are `tied_with_best`.
"""
from __future__ import annotations

import json
import math
from typing import Optional

from raytune_ft.metric import best_first, sign
from raytune_ft.results.tables import HPARAM_COLUMNS, metric_on_test, strategy_rows

CONFIRM_COLUMNS = ("confirm_mean", "confirm_std", "ci_low", "ci_high", "confirm_n", "confirm_config",
                   "confirm_trial_id", "confirm_compute_seconds", "tied_with_best")


def strategy_table(trials: list[dict], mode: str, metric: str) -> tuple[list[dict], list[dict]]:
    """(strategies.parquet rows, comparisons.parquet rows) from trials.parquet rows.

    Ordered by train size (smallest first), then best first: by the confirmed mean where there is one,
    else by the search's best score."""
    search = [r for r in trials if r.get("stage", "search") == "search"]
    confirm = [r for r in trials if r.get("stage") == "confirm"]
    sizes = sorted({r.get("train_size") for r in search}, key=lambda s: (s is None, s or 0))
    table, comparisons = [], []
    for size in sizes:
        rows = [{"train_size": size, **r} for r in strategy_rows([t for t in search if t.get("train_size") == size], mode)]
        at_size = [t for t in confirm if t.get("train_size") == size]
        if at_size:
            pairs = _confirm_columns(rows, at_size, mode, metric, size)
            comparisons += pairs
            rows = best_first(rows, lambda r: _sort_key(r, mode), mode)
        table += rows
    return table, comparisons


def _sort_key(row: dict, mode: str) -> float:
    value = row.get("confirm_mean")
    return value if value is not None and not math.isnan(value) else -sign(mode) * math.inf


def _confirm_columns(rows: list[dict], confirm: list[dict], mode: str, metric: str, size) -> list[dict]:
    """Fill each row's confirm columns (in place); return the comparisons of this train size."""
    from raytune_ft.results.stats import comparisons, mean_ci, tied_with_best

    test_key = metric_on_test(metric)
    scores: dict[str, dict[int, float]] = {}
    for row in rows:
        mine = [t for t in confirm if t["strategy"] == row["strategy"]]
        row.update({c: None for c in CONFIRM_COLUMNS})
        row["confirm_compute_seconds"] = sum(t.get("wall_seconds") or 0.0 for t in mine) if mine else None
        chosen = _chosen_configuration(mine, mode)
        if chosen is None:
            continue
        runs = [t for t in mine if t.get("source_trial_id") == chosen and _ok(t, test_key)]
        values = [float(t[test_key]) for t in runs]
        if not values:  # its runs failed, or scored no test split
            continue
        scores[row["strategy"]] = {int(t["seed"]): float(t[test_key]) for t in runs}
        low, high = mean_ci(values)
        row.update(
            confirm_mean=sum(values) / len(values),
            confirm_std=_std(values),
            ci_low=_nan_to_none(low), ci_high=_nan_to_none(high),
            confirm_n=len(values),
            confirm_trial_id=chosen,
            confirm_config=json.dumps({k: v for k, v in runs[0].items()
                                       if k in HPARAM_COLUMNS or k.startswith(f"{row['strategy']}.")}),
        )
    pairs = comparisons(scores, mode=mode, metric=test_key, train_size=size) if len(scores) > 1 else []
    means = {r["strategy"]: r["confirm_mean"] for r in rows if r["confirm_mean"] is not None}
    ties = tied_with_best(means, pairs, mode=mode) if means else {}
    for row in rows:
        if row["strategy"] in ties:
            row["tied_with_best"] = bool(ties[row["strategy"]])
    return pairs


def _chosen_configuration(runs: list[dict], mode: str) -> Optional[str]:
    """The source trial id whose confirm runs have the best mean validation score (the first of equals)."""
    by_source: dict[str, list[float]] = {}
    for t in runs:
        if _ok(t, "score") and t.get("source_trial_id"):
            by_source.setdefault(t["source_trial_id"], []).append(float(t["score"]))
    if not by_source:
        return None
    means = [(sum(v) / len(v), src) for src, v in by_source.items()]
    return best_first(means, lambda m: m[0], mode)[0][1]


def _ok(row: dict, key: str) -> bool:
    value = row.get(key)
    return row.get("status") != "error" and value is not None and not math.isnan(value)


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _nan_to_none(x: float) -> Optional[float]:
    return None if x is None or math.isnan(x) else float(x)
