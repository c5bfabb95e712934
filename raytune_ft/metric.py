"""The metrics a sweep can rank by, and their direction: the one place that knows which way is better.

Everything that compares, sorts or picks a best score goes through these, so a `min` metric
(val_loss) is handled the same in the trial loop, the live view, the tables and the report.
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional, TypeVar

MODES = {"val_accuracy": "max", "val_f1": "max", "val_loss": "min"}

T = TypeVar("T")


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
