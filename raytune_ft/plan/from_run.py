"""A finished run of the same job as the calibration: each of its search trials a measured point.

    points, ray = points_from_run(run_dir, job)     # -> CostModel.fit(space, points, **ray)

From trials.parquet: a trial's seconds per batch (its training seconds over the batches its epochs took), per
validation sample, per checkpoint, its start to the first step, its peak memory; its knobs from its columns
(hparams.batch_size: `batch_size`; a strategy's knob: `<strategy>.<knob>`). Ray's own seconds per trial are
what its wall seconds hold beyond what the worker measured, the mean over the trials.
"""
from __future__ import annotations

from pathlib import Path

from raytune_ft.errors import UserError
from raytune_ft.layout import RunLayout
from raytune_ft.plan.calibrate import Point
from raytune_ft.plan.costs import batches_per_epoch
from raytune_ft.plan.memory import MB
from raytune_ft.plan.space import BATCH, cost_knobs


def points_from_run(run_dir: Path, job) -> tuple[list[Point], dict]:
    """(points, {"start_s": ..., "end_s": ...}) from the run's search trials that ran at least one epoch."""
    from raytune_ft.results.tables import num, read_table
    from raytune_ft.sweep.space import strategy_spaces

    layout = RunLayout(Path(run_dir))
    if not layout.trials.exists():
        raise UserError(f"--from-run {run_dir}: no trials.parquet there (a run folder of `raytune-ft run`)")
    trials = [t for t in read_table(layout.trials) if t.get("stage", "search") == "search"
              and t["status"] != "error" and (t.get("epochs_run") or 0) > 0 and num(t.get("train_seconds"))]
    spaces = {sp["name"]: sp for sp in strategy_spaces(job)}
    missing = sorted(set(spaces) - {t["strategy"] for t in trials})
    if missing:
        raise UserError(f"--from-run {run_dir}: no finished search trial of {', '.join(missing)} there; calibrate "
                        "instead (leave --from-run out)")
    points, extra = [], []
    workers = job.resources.workers_per_trial
    for t in trials:
        if t["strategy"] not in spaces:
            continue
        knobs = {k: t.get("batch_size") if k == BATCH else t.get(f"{t['strategy']}.{k}")
                 for k in cost_knobs(spaces[t["strategy"]])}
        epochs, batch = t["epochs_run"], int(t["batch_size"])
        val = num(t.get("val_samples")) or 1
        measured = sum(num(t.get(k)) or 0.0 for k in ("train_seconds", "eval_seconds", "checkpoint_seconds",
                                                       "first_step_seconds"))
        extra.append(max(0.0, (num(t.get("wall_seconds")) or measured) - measured))
        trainable, total = num(t.get("trainable_params")) or 0, num(t.get("total_params")) or 0
        per = 2 if job.training.optimizer == "adamw" else 1
        points.append(Point(
            strategy=t["strategy"], knobs={k: v for k, v in knobs.items() if v is not None}, batch_size=batch,
            batch_s=t["train_seconds"] / (epochs * batches_per_epoch(t["train_size"], batch, workers)),
            eval_sample_s=(num(t.get("eval_seconds")) or 0.0) / (epochs * val),
            checkpoint_s=(num(t.get("checkpoint_seconds")) or 0.0) / epochs,
            startup_s=num(t.get("first_step_seconds")) or 0.0, peak_memory_mb=num(t.get("peak_memory_mb")) or 0.0,
            base_mb=0.0, parameters_mb=total * 4 / MB, gradients_mb=trainable * 4 / MB,
            optimizer_mb=per * trainable * 4 / MB))
    ray_s = sum(extra) / len(extra) if extra else 0.0
    return points, {"start_s": 0.8 * ray_s, "end_s": 0.2 * ray_s}
