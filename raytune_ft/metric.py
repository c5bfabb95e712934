"""The metrics a sweep can rank by, and their direction, in one place."""
from __future__ import annotations

MODES = {"val_accuracy": "max", "val_f1": "max", "val_loss": "min"}


def sign(mode: str) -> float:
    """+1 where higher is better (mode max), -1 where lower is: `sign(mode) * score` is maximised."""
    return 1.0 if mode == "max" else -1.0


def best(rows, key, mode: str):
    """The row whose `key(row)` is best for `mode`."""
    return max(rows, key=lambda r: sign(mode) * key(r))
