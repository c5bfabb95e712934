"""A run's tables as the terminal shows them (`raytune-ft results --table ...`): which columns by default, how a
cell reads, and which of the default columns fit in 80 characters.

    view = table_view(rows, names, "trials")      # the default columns that fit, nulls as '-', floats formatted
    view = table_view(rows, names, "trials", ["trial_id", "lr", "score"])     # the user's columns, all of them
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from raytune_ft.hparams import HParams
from raytune_ft.report.fmt import count, p_text, pct, seconds, value
from raytune_ft.results.tables import num

WIDTH = 80  # every default table fits in this many characters
GAP = 2  # spaces between two columns

# Each table's default columns, the most wanted first: where they do not all fit in WIDTH, the last are left
# out; a column no row has a value in is left out too, and one with the same value in every row is said once,
# below the table. They are shown in the table's own column order.
DEFAULTS = {
    "strategies": ["strategy", "train_size", "best_score", "confirm_mean", "standing", "trials", "mean_score",
                   "compute_seconds", "trainable_fraction"],
    "trials": ["strategy", "trial_id", "stage", "status", "score", "test_score", "lr", "train_size", "epochs_run",
               "seed", "wall_seconds"],
    "epochs": ["strategy", "trial_id", "epoch", "val_accuracy", "val_loss", "train_loss", "train_size", "stage",
               "val_f1", "status"],
    "comparisons": ["train_size", "strategy_a", "strategy_b", "diff_mean", "diff_ci_low", "diff_ci_high",
                    "told_apart", "n", "p_a_better"],
    "budget_curves": ["strategy", "train_size", "trials", "expected_best", "band_low", "band_high",
                      "compute_seconds", "draws"],
    "data_size": ["strategy", "train_size", "score", "ci_low", "ci_high", "standing", "n", "score_kind"],
}
HPARAMS = set(HParams.model_fields)


def cell(name: str, v) -> str:
    """A cell as text: '-' for none, 4 decimals for a score, whole seconds, 3 significant digits for a
    hyperparameter, a percentage for a fraction, JSON (best_config) as `key=value` pairs."""
    if num(v) is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return count(v) if name.endswith("_params") else str(v)
    if isinstance(v, float):
        return _float(name, v)
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, (list, dict)):
        return _compact(v)
    text = " ".join(str(v).split())
    if text[:1] in "[{":
        try:
            return _compact(json.loads(text))
        except ValueError:
            pass
    return text


def _float(name: str, v: float) -> str:
    if name in HPARAMS or "." in name and not name.startswith(("best_", "last_", "val_", "test_")):
        return value(v)  # a hyperparameter or a strategy's knob (lora.alpha), not a task's score
    if "seconds" in name or name.endswith("_mb"):
        return seconds(v)
    if name.endswith("fraction"):
        return pct(v)
    if name.startswith("p_value"):
        return p_text(v)
    if "per_sec" in name:
        return f"{v:,.1f}"
    return f"{v:.4f}"


def _compact(v) -> str:
    """{"lr": 0.001, "r": 8} -> 'lr=0.001 r=8'; [4, 8] -> '4, 8'."""
    if isinstance(v, dict):
        return " ".join(f"{k}={_compact(x) if isinstance(x, (list, dict)) else value(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_compact(x) if isinstance(x, (list, dict)) else value(x) for x in v)
    return value(v)


def header(name: str, width: int) -> str:
    """A column's name as its header, broken after underscores where it is wider than its cells
    ('compute_seconds' over cells of 5: 'compute_' / 'seconds'), never inside a word."""
    parts = [p + "_" for p in name.split("_")[:-1]] + [name.split("_")[-1]]
    limit = max(width, *(len(p) for p in parts))
    lines = [""]
    for p in parts:
        if lines[-1] and len(lines[-1]) + len(p) > limit:
            lines.append("")
        lines[-1] += p
    return "\n".join(lines)


def widths(headers: list[str], rows: list[list[str]]) -> list[int]:
    """Each column's width: its widest cell or header line."""
    return [max([len(line) for line in h.split("\n")] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]


def table_width(headers: list[str], rows: list[list[str]]) -> int:
    """The characters a table of these cells takes, GAP between columns."""
    return sum(widths(headers, rows)) + GAP * max(len(headers) - 1, 0)


@dataclass
class View:
    """A table's columns as shown: their headers (names broken after underscores), cells as text."""
    columns: list[str]
    headers: list[str]
    rows: list[list[str]]
    right: list[bool]  # right-aligned: a column of numbers
    left_out: list[str] = field(default_factory=list)  # default columns that did not fit in WIDTH
    same: dict[str, str] = field(default_factory=dict)  # default columns with one value in every row: that value


def table_view(rows: list[dict], names: list[str], table: str, columns: list[str] | None = None,
               width: int = WIDTH) -> View:
    """The view of a table's rows (`names`: the file's columns, in order). Given `columns`: those, as given.
    Else the table's DEFAULTS that have a value in some row, the most wanted first, each that still fits in
    `width`; shown in the file's order."""
    if columns:
        return _view(rows, columns, {c: [cell(c, r.get(c)) for r in rows] for c in columns})
    wanted = [c for c in DEFAULTS.get(table, names) if c in names and any(num(r.get(c)) is not None for r in rows)]
    cells = {c: [cell(c, r.get(c)) for r in rows] for c in wanted or names[:1]}
    same = {c: v[0] for c, v in cells.items() if len(rows) > 1 and len(set(v)) == 1}
    if len(same) < len(cells):
        cells = {c: v for c, v in cells.items() if c not in same}
        wanted = [c for c in wanted if c not in same]
    else:
        same = {}
    need = {c: max([len(line) for line in header(c, max(map(len, v), default=0)).split("\n")] + [len(x) for x in v])
            for c, v in cells.items()}
    shown: list[str] = []
    for c in cells:
        if not shown or sum(need[s] + GAP for s in shown) + need[c] <= width:
            shown.append(c)
    view = _view(rows, sorted(shown, key=names.index), cells)
    view.left_out, view.same = [c for c in wanted if c not in shown], same
    return view


def _view(rows: list[dict], columns: list[str], cells: dict[str, list[str]]) -> View:
    table = [[cells[c][i] for c in columns] for i in range(len(rows))]
    headers = [header(c, max(map(len, cells[c]), default=0)) for c in columns]
    right = [all(isinstance(r.get(c), (int, float, datetime)) for r in rows if num(r.get(c)) is not None)
             for c in columns]
    return View(columns, headers, table, right)
