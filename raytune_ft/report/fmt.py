"""How numbers read, in the report and on the terminal alike: one function per kind of cell, '-' for a value
a table does not have (None or NaN)."""
from __future__ import annotations

from raytune_ft.results.tables import num


def fmt(v, spec: str = ".4f") -> str:
    return "-" if num(v) is None else format(v, spec)


def whole(v) -> str:
    return "-" if num(v) is None else str(int(v))


def pct(v) -> str:
    return "-" if num(v) is None else f"{v:.2%}"


def count(v, spec: str = ".1f") -> str:
    """3.4 M, 12.8 K: a parameter count."""
    if num(v) is None:
        return "-"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if v >= div:
            return f"{v / div:{spec}} {unit}"
    return str(int(v))


def mean_std(mean, std) -> str:
    return "-" if num(mean) is None else f"{mean:.4f} ± {fmt(std)}"


def interval(low, high, spec: str = ".4f") -> str:
    return "-" if num(low) is None or num(high) is None else f"[{low:{spec}}, {high:{spec}}]"


def signed(v) -> str:
    return "-" if num(v) is None else f"{v:+.4f}"


def signed_interval(low, high) -> str:
    return "-" if num(low) is None or num(high) is None else f"[{low:+.4f}, {high:+.4f}]"


def p_text(p) -> str:
    return "-" if num(p) is None else "< 0.001" if p < 0.001 else f"{p:.3f}"


def value(v) -> str:
    """A hyperparameter's value: 3 significant digits for a float."""
    if isinstance(v, float):
        return f"{v:.3g}"
    return "-" if v is None else str(v)


def seconds(v) -> str:
    return "-" if num(v) is None else f"{v:,.0f}"


def megabytes(v) -> str:
    return "-" if num(v) is None else f"{v:,.0f} MB"
