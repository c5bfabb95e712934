"""The metrics a sweep can rank by, and their direction: the one place that knows which way is better.

Everything that compares, sorts or picks a best score goes through these, so a `min` metric
(val_loss) is handled the same in the trial loop, the live view, the tables and the report.
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional, TypeVar

MODES = {"val_accuracy": "max", "val_f1": "max", "val_loss": "min"}
# A multi-task job (data.label_columns) also reports each task's metric as `<metric>.<task>`
# (val_accuracy.topic); the plain name is then the mean over the tasks.

T = TypeVar("T")


def base_metric(metric: str) -> str:
    """val_accuracy.topic -> val_accuracy (a plain metric is its own base)."""
    return metric.partition(".")[0]


def metric_task(metric: str) -> Optional[str]:
    """The task a metric names (val_accuracy.topic -> topic); None for a plain metric (the mean over tasks)."""
    return metric.partition(".")[2] or None


def mode_of(metric: str, default: Optional[str] = None) -> str:
    """'max' or 'min' for a metric or a task's metric; `default` for a name that is neither (KeyError without)."""
    if default is not None:
        return MODES.get(base_metric(metric), default)
    return MODES[base_metric(metric)]


def metric_problem(metric: str, tasks: Optional[list[str]]) -> Optional[str]:
    """Why `metric` cannot rank this job's trials (None if it can): an unknown metric, or a task the job
    does not have. `tasks`: the job's tasks (data.label_columns), None for a single-task job."""
    base, task = base_metric(metric), metric_task(metric)
    if base not in MODES:
        return (f"{metric!r} is not a metric: use {' / '.join(MODES)}"
                + (f", or one task's, e.g. {next(iter(MODES))}.{tasks[0]}" if tasks else ""))
    if task is None:
        return None
    if not tasks:
        return (f"{metric!r} names task {task!r}, but this job has one task: use {base}, or list the tasks "
                "in data.label_columns")
    if task not in tasks:
        return f"{metric!r} names task {task!r}, which is not one of the job's tasks {tasks} (data.label_columns)"
    return None


def sign(mode: str) -> float:
    """+1 where higher is better (mode max), -1 where lower is: `sign(mode) * score` is maximised."""
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', not {mode!r}")
    return 1.0 if mode == "max" else -1.0


def better(a: float, b: Optional[float], mode: str) -> bool:
    """Whether score `a` is strictly better than `b` (anything beats None)."""
    return b is None or sign(mode) * a > sign(mode) * b


def at_least_as_good(a: float, b: float, mode: str) -> bool:
    return sign(mode) * a >= sign(mode) * b


def best(rows: Iterable[T], key: Callable[[T], float], mode: str) -> T:
    """The row whose `key(row)` is best for `mode` (the first of equals)."""
    return max(rows, key=lambda r: sign(mode) * key(r))


def best_first(rows: Iterable[T], key: Callable[[T], float], mode: str) -> list[T]:
    """`rows` sorted best score first (stable among equals)."""
    return sorted(rows, key=lambda r: -sign(mode) * key(r))


def best_of(mode: str) -> str:
    """The pandas reduction that picks the best score: 'max' or 'min'."""
    sign(mode)
    return mode


def arg_best_of(mode: str) -> str:
    """The pandas reduction that picks the best score's index: 'idxmax' or 'idxmin'."""
    return "idx" + best_of(mode)


def direction_word(mode: str) -> str:
    """'higher' or 'lower': what is better, in words."""
    return "higher" if sign(mode) > 0 else "lower"
