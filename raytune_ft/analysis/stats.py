"""Statistics over seeds for the confirm stage: is strategy A really better than B, or did it get lucky?

The confirm stage trains each strategy's chosen configuration again with a few fresh seeds, the same seeds
for every strategy, so scores come in pairs: seed i of A against seed i of B. Everything here works on those
paired test scores, and every number rests on one model, said once: a strategy's score over seeds (and the
difference of two strategies' scores on a seed) varies around its mean roughly normally. Student's t then
gives the intervals and the decisions alike:

- `mean_ci` (analysis/intervals.py): a 95 % interval for a mean over seeds, the spread floored at the grid a
  test score moves on (a test split of N samples: steps of 1/N);
- `compare_pair`: A against B over their shared seeds (the difference and its interval, P(A beats B on a
  fresh seed) with its interval, the paired t-test and an exact sign-flip test that assumes nothing);
- `comparisons`: every pair of one train size, with intervals that hold all at once (Bonferroni over the
  pairs), and whether the pair is told apart;
- `versus_best`: each strategy against the best of the others, read off those same intervals: "best",
  "below", or not told apart. One family of intervals makes every claim, so an interval and its label never
  disagree; under one true mean for all, at most 5 % of experiments make any claim (tests/test_stats.py);
- `seeds_for_a_claim`: how many seeds any claim needs.

Which way is better (accuracy up, loss down) comes from raytune_ft.metric and nowhere else.

Claims and the seeds they need. With n seeds, an exact sign-flip test (no assumption on the shape of the
differences) cannot go below p = 2/2^n: even a difference in the same direction on every seed could be chance
below that, and a claim from fewer seeds would rest on the normal model alone. So no claim ("A is below the
best", "A is the best") is made with fewer seeds than `seeds_for_a_claim(k)`: 6 for two strategies, 7 for
three, 8 for four, 9 for five, 10 for six or seven (alpha 0.05, split over the k(k-1)/2 pairs); with fewer, the intervals
are shown and no strategy is told apart from another.

Why every pair, and not Hsu's comparisons with the best (MCB), whose critical values are smaller: MCB's
"not the best" means "not better than the best of the others", which is also true of a strategy tied with
the best; with five strategies of one true mean, reading it as "below" made a claim in 18 % of simulated
experiments (8 seeds). A claim that one strategy is worse than another, strictly, needs the intervals of
every pair at once.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

from raytune_ft.analysis.intervals import (CONFIDENCE, finite_1d, mean_ci, sign_flip_p, spread, t_quantile,
                                           win_rate_interval)
from raytune_ft.metric import sign

MAX_SEEDS_NEEDED = 1000  # "seeds_needed" is not searched beyond this (None: more)

COLUMNS = ("train_size", "metric", "strategy_a", "strategy_b", "n", "diff_mean", "diff_sd", "diff_ci_low",
           "diff_ci_high", "p_value", "p_value_adjusted", "p_value_exact", "p_a_better", "p_a_better_low",
           "p_a_better_high", "family", "told_apart")
STANDINGS = ("best", "highest mean", "not told apart", "below", "too few seeds", "not confirmed")


def compare_pair(a: Sequence[float], b: Sequence[float], *, mode: str, confidence: float = CONFIDENCE,
                 resolution: float = 0.0, family: int = 1) -> dict:
    """A against B, paired by seed (`a[i]` and `b[i]` were trained with the same seed).

    Returns n (pairs), diff_mean (mean of a - b, in the metric's units: negative is good for A when `mode` is
    "min") and diff_sd (its spread, floored at the grid), diff_ci_low / diff_ci_high (Student's t interval of
    the mean difference, simultaneous over a `family` of that many pairs: each at 1 - alpha / family,
    Bonferroni), p_value (the two-sided paired t-test, the same floored spread) and p_value_adjusted (x family,
    at most 1), p_value_exact (the two-sided sign-flip test: no assumption on the differences' shape), and
    p_a_better with p_a_better_low / p_a_better_high: the chance that A beats B on a fresh seed (Bouthillier et
    al. 2021, "Accounting for variance in machine learning benchmarks"; a tie counts 1/2) and its exact
    `confidence` interval (not adjusted for the family). Bouthillier et al. read an improvement as significant
    when that interval's low end is above 0.5, and as meaningful when the estimate is also above about 0.75
    (`p_a_better_reading`).
    """
    import numpy as np
    from scipy import stats

    x, y = finite_1d(a), finite_1d(b)
    if x.shape != y.shape:
        raise ValueError(f"a and b must be paired by seed (same length), not shapes {x.shape} and {y.shape}")
    diff = x - y
    n = len(diff)
    low, high = mean_ci(diff, confidence=1 - (1 - confidence) / family, resolution=resolution)
    s = spread(diff, resolution) if n > 1 else math.nan
    p_t = math.nan if n < 2 or not s > 0 else float(2 * stats.t.sf(abs(diff.mean()) / (s / math.sqrt(n)), n - 1))
    wins = float(np.sum((np.sign(sign(mode) * diff) + 1) / 2))  # +1: A better, 1/2: tie
    p_low, p_high = win_rate_interval(wins, n, confidence)
    return {"n": n, "diff_mean": float(diff.mean()) if n else math.nan, "diff_sd": s, "diff_ci_low": low,
            "diff_ci_high": high, "p_value": p_t, "p_value_adjusted": min(1.0, p_t * family),
            "p_value_exact": sign_flip_p(diff), "p_a_better": wins / n if n else math.nan,
            "p_a_better_low": p_low, "p_a_better_high": p_high}


def p_a_better_reading(p: Optional[float], low: Optional[float]) -> str:
    """Bouthillier et al.'s reading of P(A beats B): 'meaningful' (interval above 0.5, estimate >= 0.75),
    'significant' (interval above 0.5), else 'not significant'."""
    if p is None or low is None or math.isnan(p) or math.isnan(low) or low <= 0.5:
        return "not significant"
    return "meaningful" if p >= 0.75 else "significant"


def seeds_for_a_claim(strategies: int, alpha: float = 1 - CONFIDENCE) -> int:
    """The fewest seeds with which an exact sign-flip test could tell two of `strategies` apart at `alpha`,
    split over every pair (two-sided, Bonferroni): the smallest n with 2 / 2^n <= alpha / pairs."""
    pairs = max(1, strategies * (strategies - 1) // 2)
    return max(2, math.ceil(math.log2(2 * pairs / alpha) - 1e-12))


def comparisons(scores: dict[str, dict[int, float]], *, mode: str, metric: str, train_size, resolution: float = 0.0,
                confidence: float = CONFIDENCE) -> list[dict]:
    """comparisons.parquet rows for one train size: one per ordered pair (a, b), a != b, each over the seeds
    where both have a finite score. `scores` is strategy -> {seed: test score} (the confirmed scores).

    The intervals are simultaneous over every pair of the strategies with scores (`compare_pair`'s family),
    so any claim read from them at once holds with `confidence`. told_apart: the interval excludes 0 and the
    pair shares at least `seeds_for_a_claim` seeds (module docstring)."""
    finite = _finite_scores(scores)
    k = sum(1 for s in finite if finite[s])
    family, need = max(1, k * (k - 1) // 2), seeds_for_a_claim(k, 1 - confidence)
    rows = []
    for a in scores:
        for b in scores:
            if a != b:
                shared = sorted(set(finite[a]) & set(finite[b]))
                r = compare_pair([finite[a][x] for x in shared], [finite[b][x] for x in shared], mode=mode,
                                 confidence=confidence, resolution=resolution, family=family)
                told = r["n"] >= need and (r["diff_ci_low"] > 0 or r["diff_ci_high"] < 0)
                rows.append({"train_size": train_size, "metric": metric, "strategy_a": a, "strategy_b": b, **r,
                             "family": family, "told_apart": bool(told)})
    return rows


def versus_best(rows: list[dict], means: dict[str, Optional[float]], *, mode: str,
                confidence: float = CONFIDENCE) -> dict[str, dict]:
    """Each strategy against the best of the others, read off one train size's `comparisons` rows: the same
    simultaneous intervals, so the interval and the decision never disagree.

    theta_i = (mean of i) - (the best mean of the others) lies, at once for every i, between the worst and the
    best of i's pairwise bounds (for accuracy: min over j of the low ends .. min over j of the high ends; for a
    loss, max over j). Returns strategy -> {standing, vs_best_low, vs_best_high, seeds_needed}, standing one of
      "best": better than every other (theta's interval beyond 0 on the good side);
      "below": worse than some other (beyond 0 on the bad side);
      "highest mean": the best mean, not told apart from all the others;
      "not told apart": neither;
      "too few seeds": some pair shares fewer than `seeds_for_a_claim(k)` seeds: no claim, no interval;
      "not confirmed": no confirmed score (`means` None or nan).
    seeds_needed: for a strategy not told apart from the best mean, about how many seeds would tell them apart
    if the gap and spread stayed as seen (a plan, not a promise); None otherwise.
    """
    scored = [s for s, m in means.items() if m is not None and not math.isnan(m)]
    out = {s: {"standing": "not confirmed", "vs_best_low": None, "vs_best_high": None, "seeds_needed": None}
           for s in means}
    if not scored:
        return out
    s_ = sign(mode)
    leader = max(scored, key=lambda s: s_ * means[s])  # the first of equals
    pair = {(r["strategy_a"], r["strategy_b"]): r for r in rows
            if r["strategy_a"] in scored and r["strategy_b"] in scored}
    k = len(scored)
    need = seeds_for_a_claim(k, 1 - confidence)
    enough = k > 1 and all(pair.get((a, b), {}).get("n", 0) >= need for a in scored for b in scored if a != b)
    for i in scored:
        if k == 1:
            out[i]["standing"] = "highest mean"  # nothing to compare it with
            continue
        if not enough:
            out[i]["standing"] = "highest mean" if i == leader else "too few seeds"
            continue
        # in better-is-higher units: theta_i between min_j(low) and min_j(high)
        bounds = [sorted((s_ * pair[i, j]["diff_ci_low"], s_ * pair[i, j]["diff_ci_high"])) for j in scored if j != i]
        low, high = min(b[0] for b in bounds), min(b[1] for b in bounds)
        standing = ("below" if high < 0 else "best" if low > 0 else "highest mean" if i == leader
                    else "not told apart")
        out[i].update(standing=standing, vs_best_low=s_ * low if s_ > 0 else -high,
                      vs_best_high=s_ * high if s_ > 0 else -low)
    family = max(1, k * (k - 1) // 2)
    for i in scored:
        r = pair.get((leader, i))
        if i == leader or out[i]["standing"] in ("below", "best") or r is None:
            continue
        gap, sd = s_ * r["diff_mean"], r["diff_sd"]
        if gap > 0 and sd is not None and sd > 0:
            out[i]["seeds_needed"] = _seeds_to_resolve(gap, sd, max(need, r["n"] + 1), family, confidence)
    return out


def _seeds_to_resolve(gap: float, sd: float, start: int, family: int, confidence: float) -> Optional[int]:
    """The smallest n >= start whose simultaneous interval half-width, t(1 - alpha / (2 family), n - 1) x sd /
    sqrt(n), is below `gap` (it shrinks as n grows: a bisection); None beyond MAX_SEEDS_NEEDED."""
    q = 1 - (1 - confidence) / (2 * family)

    def resolves(n: int) -> bool:
        return t_quantile(q, n - 1) * sd / math.sqrt(n) < gap

    low, high = start, MAX_SEEDS_NEEDED
    if not resolves(high):
        return None
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if resolves(mid) else (mid + 1, high)
    return low


def _finite_scores(scores: dict[str, dict[int, float]]) -> dict[str, dict[int, float]]:
    return {s: {k: float(v) for k, v in scores[s].items() if v is not None and math.isfinite(v)} for s in scores}


