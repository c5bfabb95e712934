"""The run's curves, written once the sweep has ended: what each strategy gives for a budget
(`budget_curves.parquet`, from the search stage's trials: analysis/budget.py) and against the size of the
training set (`data_size.parquet`, from the strategy table: analysis/data_size.py)."""
from __future__ import annotations

from raytune_ft.layout import RunLayout
from raytune_ft.results.tables import metric_on_test, read_table, write_table


def write_curves(run_dir, trials: list[dict], mode: str, metric: str) -> None:
    """budget_curves.parquet and data_size.parquet of a run whose tables are written."""
    from raytune_ft.analysis.budget import budget_curves, metric_bounds
    from raytune_ft.analysis.data_size import data_size_rows

    layout = RunLayout(run_dir)
    search = [t for t in trials if t.get("stage", "search") == "search"]
    curves = budget_curves(search, mode=mode, bounds=metric_bounds(metric))
    if curves:
        write_table(curves, layout.budget_curves)
    if layout.strategies.exists():
        write_table(data_size_rows(read_table(layout.strategies), metric_on_test(metric), metric), layout.data_size)
