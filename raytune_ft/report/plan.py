"""The report's section on the forecast (a run with plan.json): per strategy (and train size), what the plan
forecast before the first trial beside what the run did, and the forecast's error; then the job's totals."""
from __future__ import annotations

from raytune_ft.layout import RunLayout
from raytune_ft.report.content import Row, Section, Table
from raytune_ft.report.fmt import fmt, megabytes
from raytune_ft.report.run import Run


def off(actual, forecast) -> str:
    """The forecast's error as a signed percentage: actual / forecast - 1."""
    if actual is None or not forecast:
        return "-"
    return f"{actual / forecast - 1:+.0%}"


def plan_sections(run: Run) -> list[Section]:
    """[] for a run made without its plan (run --no-plan, or before plans)."""
    from raytune_ft.plan.actual import totals, versus
    from raytune_ft.plan.make import read_plan

    fc = read_plan(RunLayout(run.dir).plan)
    if fc is None:
        return []
    trials = run.all_trials or run.trials
    sizes = len({s.train_size for s in fc.strategies}) > 1
    header = ["strategy", "compute s: forecast", "actual", "error", "epochs: forecast", "actual",
              "peak memory: forecast", "actual", "error"]
    rows = []
    for r in versus(fc, trials):
        name = r["strategy"] + (f" ({r['train_size']})" if sizes else "")
        rows.append(Row([name, fmt(r["forecast_compute_seconds"], ".0f"), fmt(r["compute_seconds"], ".0f"),
                         off(r["compute_seconds"], r["forecast_compute_seconds"]), fmt(r["forecast_epochs"], ".1f"),
                         str(r["epochs_run"]), megabytes(r["forecast_peak_memory_mb"]), megabytes(r["peak_memory_mb"]),
                         off(r["peak_memory_mb"], r["forecast_peak_memory_mb"])], run.colors.get(r["strategy"])))
    t = totals(fc, trials)
    caption = (f"What `raytune-ft plan` forecast before the first trial (calibrated on {fc.calibrated_on} in "
               f"{fc.calibration_seconds:.0f} s, {fc.concurrency} trial(s) at a time) beside what the run did. "
               "Compute is the search trials' wall seconds summed; epochs, those its search trials ran under the "
               "scheduler; peak memory, the largest a worker of its trials reported (the forecast: at its largest "
               "searched setting). Error: actual / forecast - 1. All trials: forecast "
               f"{t['forecast_compute_seconds']:.0f} s of compute, actual {t['compute_seconds']:.0f} s "
               f"({off(t['compute_seconds'], t['forecast_compute_seconds'])}); the stages' wall time (the first "
               f"trial's start to the last one's end) forecast {t['forecast_trials_wall_seconds']:.0f} s, actual "
               + (f"{t['trials_wall_seconds']:.0f} s "
                  f"({off(t['trials_wall_seconds'], t['forecast_trials_wall_seconds'])})."
                  if t["trials_wall_seconds"] is not None else "unknown.")
               + (" " + " ".join(n[0].upper() + n[1:] + "." for n in fc.notes) if fc.notes else ""))
    table = Table(header, rows, numeric=set(range(1, len(header))))
    return [Section("plan", "Forecast and actual", "forecast", caption, table=table)]
