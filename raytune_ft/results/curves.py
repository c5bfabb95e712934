"""The run's curves, written once the sweep has ended: what each strategy gives for a budget
(`budget_curves.parquet`, from the search stage's trials) and against the size of the training set
(`data_size.parquet`, from the strategy table: the confirmed test score with its interval where the
sweep had a confirm stage, else the search's best validation score)."""
from __future__ import annotations

from raytune_ft.layout import RunLayout
from raytune_ft.results.tables import metric_on_test, read_table, write_table


def data_size_rows(strategies: list[dict], metric: str) -> list[dict]:
    """One row per strategy and train size: score, ci_low, ci_high, score_kind."""
    out = []
    for r in strategies:
        confirmed = r.get("confirm_mean") is not None
        out.append({
            "strategy": r["strategy"], "train_size": r.get("train_size"),
            "score": r["confirm_mean"] if confirmed else r.get("best_score"),
            "ci_low": r.get("ci_low") if confirmed else None, "ci_high": r.get("ci_high") if confirmed else None,
            "n": r.get("confirm_n") if confirmed else None,
            "score_kind": f"confirmed {metric_on_test(metric)}" if confirmed else f"search best {metric}",
        })
    return sorted(out, key=lambda r: (r["strategy"], r["train_size"] or 0))


def write_curves(run_dir, trials: list[dict], mode: str, metric: str) -> None:
    """budget_curves.parquet and data_size.parquet of a run whose tables are written."""
    from raytune_ft.results.budget import budget_curves, metric_bounds

    layout = RunLayout(run_dir)
    search = [t for t in trials if t.get("stage", "search") == "search"]
    curves = budget_curves(search, mode=mode, bounds=metric_bounds(metric))
    if curves:
        write_table(curves, layout.budget_curves)
    if layout.strategies.exists():
        write_table(data_size_rows(read_table(layout.strategies), metric), layout.data_size)
