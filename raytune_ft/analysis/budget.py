"""What each strategy gives for a budget: the expected best validation score after n search trials.

A strategy whose best trial is the best of all may only have got there with many trials; another may give
nearly as much after two. Following Dodge et al. 2019 ("Show Your Work: Improved Reporting of Experimental
Results"), treat a strategy's scored search trials as draws from its score distribution and ask: drawing n
trials from it, what is the expected best score? The curve over n = 1 .. N (N = the strategy's scored
trials) is `expected_best`; `compute_seconds` puts the same curve on a compute axis.

The 95 % band around the curve comes from the `opda` package (Lourie, Cho and He 2024, "Show Your Work
with Confidence: Confidence Bands for Tuning Curves"): an exact, distribution-free, simultaneous band for
the score distribution's CDF (method "ld_equal_tailed": the Learned-Miller-DeStefano band; "ld_highest_
density" is a little tighter but several times slower and fails with one trial), turned into a band for
the whole curve at once. It needs the score's possible range (`metric_bounds`): with nothing known beyond
the scores seen, the worst case lies at the bounds. So for a loss, unbounded above, the upper side of the
band is inf (a strategy could always have been unluckier), and with a single trial the band spans nearly
the whole range (one trial says little). Exact for continuous scores; scores with ties (accuracy on a
small validation set) make opda warn that coverage is no longer exact, which is silenced here.

Caveats, read before trusting a curve:
- With early stopping (ASHA, HyperBand, median stopping, patience) a stopped trial enters with the score it
  had reached, lower than a full run of the same configuration would give, and which trials are stopped
  depends on the others. So the curve answers "what does a search of n trials *under this scheduler* find",
  not "what do n fully trained random configurations reach": a strategy that starts slowly is drawn lower
  than it would finish. `stopped_draws` counts them, and the report says so under the figure. With Optuna
  the trials are not independent draws either (each depends on the previous ones).
- Beyond N the curve is not measured: the expected best of n > N draws from N scores stops growing at
  their best, while more real trials could find better.
- Two curves are told apart only where their bands do not overlap (`crossovers`): the order of two curves
  inside each other's bands is not evidence, however it looks.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional, Sequence

from raytune_ft.metric import sign

BAND_CONFIDENCE = 0.95
BAND_METHOD = "ld_equal_tailed"  # opda's exact simultaneous CDF band (see the module docstring)


def metric_bounds(metric: str) -> tuple[float, float]:
    """The range a metric's scores can take: accuracy and F1 (0, 1), loss (0, inf); anything else unbounded.

    Matched on the name's last word, so "val_accuracy", "test_accuracy" and "accuracy" are the same.
    """
    kind = metric.rsplit("_", 1)[-1]
    if kind in ("accuracy", "f1"):
        return 0.0, 1.0
    if kind == "loss":
        return 0.0, math.inf
    return -math.inf, math.inf


def expected_best(scores: Sequence[float], n, mode: str):
    """The expected best of n scores drawn with replacement from `scores` (Dodge et al. 2019's estimator).

    With v_(1) <= .. <= v_(N) the scores sorted worst to best for `mode`, the best of n draws is v_(i) with
    probability (i/N)^n - ((i-1)/N)^n, so E[best of n] = sum_i v_(i) [(i/N)^n - ((i-1)/N)^n]: the mean at
    n = 1, growing towards the best score as n grows. For mode "min" it is the expected minimum. `n` may be
    a number (a float comes back) or an array (an array of the same shape comes back).
    """
    import numpy as np

    s = sign(mode)
    ordered = np.sort(s * np.asarray(scores, dtype=float))  # worst first, in "higher is better" units
    if ordered.ndim != 1 or len(ordered) == 0 or not np.all(np.isfinite(ordered)):
        raise ValueError("scores must be a non-empty list of finite numbers")
    ns = np.asarray(n, dtype=float)
    if np.any(ns < 1):
        raise ValueError(f"n must be at least 1, not {n}")
    share = np.arange(len(ordered) + 1) / len(ordered)  # i / N for i = 0 .. N
    cdf_n = share ** ns[..., None]
    found = s * ((cdf_n[..., 1:] - cdf_n[..., :-1]) @ ordered)
    return float(found) if found.ndim == 0 else found


def budget_curves(trials: list[dict], *, mode: str, bounds: Optional[tuple[float, float]] = None) -> list[dict]:
    """budget_curves.parquet rows: per (strategy, train_size) and n = 1 .. N, the expected best and its band.

    `trials` are trials.parquet rows (keys strategy, train_size, score, wall_seconds, status; stage, where
    present, must be "search": confirm rows are left out). The draws are the scored trials (status not
    "error", score not null), N of them. compute_seconds = n x (the wall seconds of all the strategy's search
    trials at that train size, failed ones included: they cost compute too) / N: what a scored draw costs.
    stopped_draws: how many of the N were stopped early (by the scheduler or by patience) and count with the
    score they had reached (module docstring). `bounds` is the score's possible range, for the band: pass
    `metric_bounds(metric)`; None means unbounded, where the band is infinite on both sides. A (strategy,
    train_size) without a scored trial has no rows.
    """
    import numpy as np

    low_bound, high_bound = bounds if bounds is not None else (-math.inf, math.inf)
    scores: dict[tuple, list[float]] = {}
    walls: dict[tuple, float] = {}
    stopped: dict[tuple, int] = {}
    for r in trials:
        if r.get("stage", "search") not in ("search", None):
            continue
        key = (r["strategy"], r.get("train_size"))
        scores.setdefault(key, [])
        walls[key] = walls.get(key, 0.0) + float(r.get("wall_seconds") or 0.0)
        score = r.get("score")
        if r.get("status") != "error" and score is not None and not math.isnan(score):
            scores[key].append(float(score))
            stopped[key] = stopped.get(key, 0) + (r.get("status") in ("stopped_early", "stopped_patience"))
    rows = []
    for (strategy, train_size), ys in scores.items():
        if not ys:
            continue
        outside = [y for y in ys if not low_bound <= y <= high_bound]
        if outside:
            raise ValueError(f"{strategy}: score {outside[0]} is outside the bounds {bounds}: pass "
                             "metric_bounds(metric) for the metric the trials were scored on")
        ns = np.arange(1, len(ys) + 1)
        per_draw = walls[strategy, train_size] / len(ys)
        curve = expected_best(ys, ns, mode)
        band_low, band_high, method = _band(ys, ns, mode, low_bound, high_bound)
        rows += [{"strategy": strategy, "train_size": train_size, "trials": int(n),
                  "compute_seconds": float(n * per_draw), "expected_best": float(e), "band_low": float(lo),
                  "band_high": float(hi), "band_method": method, "draws": len(ys),
                  "stopped_draws": stopped.get((strategy, train_size), 0)}
                 for n, e, lo, hi in zip(ns, curve, band_low, band_high)]
    return rows


def _band(ys: list[float], ns, mode: str, low_bound: float, high_bound: float):
    """opda's 95 % band for the expected best after each n in `ns`, and a line saying how it was made.

    opda bands the CDF: the upper CDF band (scores pushed down) gives the low side of the curve, the lower
    CDF band (pushed up) the high side; for mode "min" the same holds, as expected minima.
    """
    import warnings
    from importlib.metadata import version

    import numpy as np
    from opda.nonparametric import EmpiricalDistribution

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # ties in ys: "coverage no longer exact"
        lower_cdf, _, upper_cdf = EmpiricalDistribution.confidence_bands(
            ys, BAND_CONFIDENCE, low_bound, high_bound, generator=_generator(len(ys)), method=BAND_METHOD,
            n_jobs=1)  # n_jobs=1: no process pool
        minimize = sign(mode) < 0
        low = upper_cdf.average_tuning_curve(ns, minimize=minimize)
        high = lower_cdf.average_tuning_curve(ns, minimize=minimize)
    method = f"opda {version('opda')} {BAND_METHOD}: simultaneous {BAND_CONFIDENCE:.0%} band (Lourie et al. 2024)"
    return low, high, method


@lru_cache(maxsize=None)
def _generator(n: int):
    """One seeded generator per number of scores, the same object every time: opda simulates the band's
    critical value for n scores with it once (~0.3 s) and keeps it, keyed on the generator, for every later
    band of n scores; seeded by n, so a band is the same whatever was computed before it."""
    import numpy as np

    return np.random.default_rng(n)


def crossovers(curves: list[dict], *, mode: str, x: str = "trials") -> list[str]:
    """Sentences saying, per train size, where one strategy's curve is told apart from every other's as the
    budget grows, and where none is.

    `curves` are `budget_curves` rows; `x` is the budget axis, "trials" or "compute_seconds". At a budget,
    each strategy counts with its curve's last point within that budget (on the compute axis a strategy
    whose single trial costs more is not in the running yet). Only budgets every curve reaches are compared:
    past a strategy's N trials its curve is not measured. A strategy leads at a budget only where the low
    side of its 95 % band is above the high side of every other's (the bands are each simultaneous over the
    whole curve, so under one score distribution for all, a claim is rare: tests/test_budget.py); elsewhere
    the strategies cannot be told apart, whatever the order of their curves. E.g. "With 500 training
    samples: up to 3 trials no strategy is told apart; from 4 trials on, full leads (compared up to 8
    trials)." Train sizes with fewer than two strategies get no sentence.
    """
    if x not in ("trials", "compute_seconds"):
        raise ValueError(f"x must be 'trials' or 'compute_seconds', not {x!r}")
    by_size: dict = {}
    for r in curves:
        if r[x] is not None and not math.isnan(r[x]):
            point = (r[x], sign(mode) * r["band_low"], sign(mode) * r["band_high"])  # higher is better from here
            by_size.setdefault(r["train_size"], {}).setdefault(r["strategy"], []).append(point)
    sentences = []
    for size, points in by_size.items():
        if len(points) < 2:
            continue
        points = {s: sorted(p) for s, p in points.items()}
        end = min(p[-1][0] for p in points.values())
        budgets = sorted({b for p in points.values() for b, _, _ in p if b <= end})
        segments: list[tuple[float, Optional[str]]] = []  # (budget from which, the leader or None)
        for budget in budgets:
            bands = {s: [(lo, hi) for b, lo, hi in p if b <= budget] for s, p in points.items()}
            bands = {s: sorted(band[-1]) for s, band in bands.items() if band}
            leader = next((s for s, (lo, _) in bands.items() if len(bands) == len(points)
                           and all(lo > bands[o][1] for o in bands if o != s)), None)
            if not segments or segments[-1][1] != leader:
                segments.append((budget, leader))
        sentences.append(_sentence(size, segments, budgets, end, x))
    return sentences


def _sentence(size, segments: list[tuple[float, Optional[str]]], budgets: list[float], end: float, x: str) -> str:
    def at(budget: float) -> str:
        if x == "trials":
            return f"{budget:g} trial" + ("" if budget == 1 else "s")
        return f"{budget:,.0f} s"

    def says(leader: Optional[str]) -> str:
        return f"{leader} leads" if leader else "no strategy is told apart from the others"

    head = f"With {size} training samples: " if size is not None else ""
    if len(segments) == 1:
        leader = segments[0][1]
        return head + (f"{leader} leads at every budget ({at(budgets[0])} to {at(end)})." if leader else
                       f"the strategies cannot be told apart at any budget ({at(budgets[0])} to {at(end)}): "
                       "their 95 % bands overlap, whatever the order of the curves.")
    parts = []
    for i, (start, leader) in enumerate(segments):
        if i == len(segments) - 1:
            parts.append(f"from {at(start)} on, {says(leader)}")
            continue
        last = budgets[budgets.index(segments[i + 1][0]) - 1]
        parts.append((f"up to {at(last)}" if i == 0 else f"from {at(start)} to {at(last)}") + f", {says(leader)}")
    return head + "; ".join(parts) + f" (compared up to {at(end)})."
