"""search.budget: the num_samples per strategy that the forecast fits in the budget, the same for every strategy.

    n, fc = samples_for_budget(job.search.budget, lambda n: forecast(..., num_samples=n))

The rule: the largest n (1 to MAX_SAMPLES) whose forecast is within the budget, found by doubling then halving
the interval (a forecast costs more with more samples). The confirm stage's trials count too: they do not
depend on n, so a budget smaller than they alone need leaves no n at all, which is said.
"""
from __future__ import annotations

from typing import Callable

from raytune_ft.errors import InputError
from raytune_ft.spec.search import MAX_SAMPLES

UNITS = {"gpu_hours": "GPU-hours", "cpu_hours": "CPU-hours", "wall_hours": "hours of wall time"}


def samples_for_budget(budget, make: Callable[[int], object]) -> tuple[int, object]:
    """(num_samples, its forecast) for `budget` (a BudgetSpec); make(n): the forecast with n samples per strategy
    (its `.hours(kind)`). An InputError when one sample per strategy is already over the budget."""
    kind, hours = budget.kind(), budget.hours()
    cache: dict[int, object] = {}

    def cost(n: int) -> float:
        if n not in cache:
            cache[n] = make(n)
        return cache[n].hours(kind)

    if cost(1) > hours:
        raise InputError(f"search.budget.{kind}: {hours:g} {UNITS[kind]}, but one sample per strategy is "
                         f"forecast at {cost(1):.3g} (raytune-ft plan): raise the budget, or lower training.epochs, "
                         "the strategies, the confirm stage's seeds or the data")
    lo, hi = 1, 2
    while hi <= MAX_SAMPLES and cost(hi) <= hours:
        lo, hi = hi, hi * 2
    hi = min(hi, MAX_SAMPLES + 1)
    while hi - lo > 1:  # cost(lo) fits, cost(hi) does not (or hi is past the most)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if cost(mid) <= hours else (lo, mid)
    return lo, cache[lo]


def budget_line(budget, n: int, fc) -> str:
    """What run and plan say about it."""
    kind = budget.kind()
    return (f"search.budget {budget.hours():g} {UNITS[kind]}: num_samples {n} per strategy, every strategy the "
            f"same (forecast {fc.hours(kind):.3g} {UNITS[kind]})")
