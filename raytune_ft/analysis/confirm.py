"""The strategy table with the confirm stage's verdict, and the pairwise comparisons behind it.

    strategies, comparisons = strategy_table(trial_rows, mode, metric)

Search columns (best / mean score, counts, compute) come from the search stage's trials, one row per
strategy and train size (tables.strategy_rows). When the sweep had a confirm stage (search.confirm),
each row also gets the strategy's confirmed test score:

- the strategy's top_k configurations were each trained again with the same fresh seeds; the one
  whose mean *validation* score over those seeds is best is its confirmed configuration (chosen on
  validation, so the test split stays a fair judge);
- its test scores over the seeds give confirm_mean / confirm_std / ci_low / ci_high / confirm_n;
- strategies are compared pairwise over the seeds they share (stats.comparisons: the difference with an
  interval that holds for every pair at once, P(A beats B on a fresh seed) with its interval, p-values),
  and each is placed against the best of the others from those same intervals (stats.versus_best:
  `standing` "best" / "below" / "not told apart" ..., `vs_best_low` / `vs_best_high`, `seeds_needed`).
  Test accuracy moves on the grid of the test split (1 / its samples): the spreads are floored there.
"""
from __future__ import annotations

import json
import math
from typing import Optional

from raytune_ft.metric import best_first, sign
from raytune_ft.results.tables import HPARAM_COLUMNS, metric_on_test, strategy_rows

CONFIRM_COLUMNS = ("confirm_mean", "confirm_std", "ci_low", "ci_high", "confirm_n", "confirm_config",
                   "confirm_trial_id", "confirm_compute_seconds", "standing", "vs_best_low", "vs_best_high",
                   "seeds_needed", "claim_seeds")


def strategy_table(trials: list[dict], mode: str, metric: str) -> tuple[list[dict], list[dict]]:
    """(strategies.parquet rows, comparisons.parquet rows) from trials.parquet rows.

    Ordered by train size (smallest first), then best first: by the confirmed mean where there is one,
    else by the search's best score."""
    search = [r for r in trials if r.get("stage", "search") == "search"]
    confirm = [r for r in trials if r.get("stage") == "confirm"]
    sizes = sorted({r.get("train_size") for r in search}, key=lambda s: (s is None, s or 0))
    table, comparisons = [], []
    for size in sizes:
        rows = [{"train_size": size, "metric": metric, **r}
                for r in strategy_rows([t for t in search if t.get("train_size") == size], mode)]
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
    from raytune_ft.analysis.intervals import mean_ci
    from raytune_ft.analysis.stats import comparisons, seeds_for_a_claim, versus_best

    test_key = metric_on_test(metric)
    scores: dict[str, dict[int, float]] = {}
    resolution = _resolution(confirm, test_key)
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
        low, high = mean_ci(values, resolution=resolution)
        row.update(
            confirm_mean=sum(values) / len(values),
            confirm_std=_std(values),
            ci_low=_nan_to_none(low), ci_high=_nan_to_none(high),
            confirm_n=len(values),
            confirm_trial_id=chosen,
            confirm_config=json.dumps({k: v for k, v in runs[0].items()
                                       if k in HPARAM_COLUMNS or k.startswith(f"{row['strategy']}.")}),
        )
    pairs = comparisons(scores, mode=mode, metric=test_key, train_size=size, resolution=resolution) \
        if len(scores) > 1 else []
    standings = versus_best(pairs, {r["strategy"]: r["confirm_mean"] for r in rows}, mode=mode)
    for row in rows:
        row.update(standings[row["strategy"]], claim_seeds=seeds_for_a_claim(len(scores)) if len(scores) > 1 else None)
    return pairs


def _resolution(confirm: list[dict], test_key: str) -> float:
    """The grid the confirmed test scores move on: from the test split's size, which each confirm trial
    reports (test_samples), and the number of tasks a multi-task score is the mean of."""
    from raytune_ft.analysis.intervals import resolution_of

    sizes = [t.get("test_samples") for t in confirm if t.get("test_samples")]
    if not sizes:
        return 0.0
    tasks = sum(1 for k in confirm[0] if k.startswith(f"{test_key}.")) if "." not in test_key else 1
    return resolution_of(test_key, int(min(sizes)), max(1, tasks))


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
