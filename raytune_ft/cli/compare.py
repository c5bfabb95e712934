"""`raytune-ft compare A B`: two runs' strategies side by side, on the metric both were ranked by."""
from __future__ import annotations

from typing import Annotated

import typer

from raytune_ft.cli.app import app
from raytune_ft.cli.tables import RUN_HELP, find_run, job_metric
from raytune_ft.errors import UserError
from raytune_ft.layout import RunLayout


@app.command()
def compare(
    run_a: Annotated[str, typer.Argument(help=f"run A, the reference: {RUN_HELP}")],
    run_b: Annotated[str, typer.Argument(help=f"run B, compared with A: {RUN_HELP}")],
):
    """Compare two runs' strategies: A's score, B's, and B − A.

    Both runs with a confirm stage: their confirmed test means; else their searches' best validation scores.
    The runs must be ranked by the same metric; strategies (and train sizes) only one run has are shown with '-'.
    """
    from raytune_ft.cli.render import console, print_board
    from raytune_ft.metric import mode_of
    from raytune_ft.report.compare import compare_board
    from raytune_ft.results.tables import read_table

    a, b = find_run(run_a), find_run(run_b)
    if a.resolve() == b.resolve():
        raise UserError(f"A and B are the same run folder ({a.resolve()}): nothing to compare; give two runs")
    metrics = {}
    for name, run in (("A", a), ("B", b)):
        if not RunLayout(run).strategies.exists():
            raise UserError(f"{name} ({run}) has no strategies.parquet yet: it is written when its first trials end")
        metrics[name] = _metric(run, read_table(RunLayout(run).strategies))
    if metrics["A"] != metrics["B"]:
        raise UserError(f"A ({a}) was ranked by {metrics['A']} and B ({b}) by {metrics['B']}: their scores are "
                        "different measures; compare runs whose search.metric is the same")
    metric = metrics["A"]
    typer.echo(f"A = {a}\nB = {b}")
    board = compare_board(read_table(RunLayout(a).strategies), read_table(RunLayout(b).strategies), metric,
                          mode_of(metric, "max"))
    print_board(console(), board)


def _metric(run_dir, rows: list[dict]) -> str:
    """The metric a run was ranked by: strategies.parquet's metric column, else its job.yaml's."""
    return next((r["metric"] for r in rows if r.get("metric")), None) or job_metric(run_dir)
