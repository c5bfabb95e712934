"""The forecast on a terminal, within 80 columns: one row per strategy (and train size), then the job's
compute, wall time and memory, and what the forecast assumes.

    for line in forecast_lines(fc, scheduler="asha"):
        print(line)
"""
from __future__ import annotations

import textwrap

WIDTH = 80
HEADER = ("trials", "s/epoch", "s/trial", "epochs", "compute", "peak mem")
WIDTHS = (6, 8, 8, 7, 8, 8)
NAME = 26


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def size(mb: float) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def row(name: str, cells) -> str:
    name = name if len(name) <= NAME else name[: NAME - 1] + "~"
    return f"{name:<{NAME}}" + "".join(f" {c:>{w}}" for c, w in zip(cells, WIDTHS))


def wrapped(label: str, text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=f"{label:<10}", subsequent_indent=" " * 10)


def forecast_lines(fc, scheduler: str = "") -> list[str]:
    """The table and the lines under it."""
    sizes = {s.train_size for s in fc.strategies}
    lines = textwrap.wrap(f"forecast for {fc.job}: calibrated on {fc.calibrated_on} in "
                          f"{duration(fc.calibration_seconds)}; {fc.concurrency} trial(s) at a time", WIDTH)
    lines.append(row("strategy", HEADER))
    for s in fc.strategies:
        name = s.strategy + (f" @{s.train_size}" if len(sizes) > 1 else "")
        lines.append(row(name, (str(s.trials), f"{s.epoch_seconds:.1f}", f"{s.trial_seconds:.0f}",
                                f"{s.trial_epochs:.1f}", duration(s.compute_seconds), size(s.peak_memory_mb))))
    trials = sum(s.trials for s in fc.strategies)
    epochs = sum(s.trial_epochs for s in fc.strategies)
    per = "strategy and train size" if len(sizes) > 1 else "strategy"
    under = f" under {scheduler}" if scheduler and scheduler != "none" else ""
    lines += wrapped("search", f"{trials} trials ({fc.num_samples} per {per}), {epochs:.1f} trial-epochs "
                     f"expected{under}, of {trials * fc.epochs} if every trial ran every epoch")
    confirm = sum(s.confirm_trials for s in fc.strategies)
    if confirm:
        lines += wrapped("confirm", f"{confirm} trials, every epoch: "
                         f"{duration(sum(s.confirm_compute_seconds for s in fc.strategies))} of compute")
    hours = f"{fc.gpu_hours:.2f} GPU-hours, " if fc.gpus_per_trial else ""
    lines += wrapped("compute", f"{hours}{fc.cpu_hours:.2f} CPU-hours ({duration(fc.compute_seconds)} of trials)")
    parts = ", ".join(f"{k.replace('_', ' ')} {duration(v)}" for k, v in fc.stages.items() if v >= 0.5)
    lines += wrapped("wall", f"{duration(fc.wall_seconds)} with {fc.concurrency} trial(s) at a time ({parts})")
    peak = max((s.peak_memory_mb for s in fc.strategies), default=0.0)
    have = f"; a worker has {size(fc.capacity_mb)} ({fc.capacity})" if fc.capacity_mb is not None else ""
    lines += wrapped("memory", f"a worker's peak {size(peak)} at most, at its largest searched setting{have}")
    if fc.budget:
        from raytune_ft.plan.budget import UNITS

        b = fc.budget
        lines += wrapped("budget", f"search.budget {b['hours']:g} {UNITS[b['kind']]}: num_samples {b['num_samples']} "
                         f"per strategy, every strategy the same (forecast {b['forecast']:.3g})")
    for note in fc.notes:
        lines += wrapped("note", note)
    return lines
