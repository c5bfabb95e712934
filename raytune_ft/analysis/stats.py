"""Statistics over seeds for the confirm stage: is strategy A really better than B, or did it get lucky?

The confirm stage trains each strategy's chosen configuration again with a few fresh seeds, the same seeds
for every strategy, so scores come in pairs: seed i of A against seed i of B. Everything here works on those
paired test scores, and every number rests on one model, said once: a strategy's score over seeds (and the
difference of two strategies' scores on a seed) varies around its mean roughly normally. Student's t then
gives the intervals and the decisions alike:

- `mean_ci`: a 95 % interval for a mean over seeds;
- `compare_pair`: A against B over their shared seeds (the difference and its interval, P(A beats B on a
  fresh seed) with its interval, the paired t-test and an exact sign-flip test that assumes nothing);
- `comparisons`: every pair of one train size, with intervals that hold all at once (Bonferroni over the
  pairs), and whether the pair is told apart;
- `versus_best`: each strategy against the best of the others, read off those same intervals: "best",
  "below", or not told apart. One family of intervals makes every claim, so an interval and its label never
  disagree; under one true mean for all, at most 5 % of experiments make any claim (tests/test_stats.py);
- `seeds_for_a_claim`: how many seeds any claim needs.

Which way is better (accuracy up, loss down) comes from raytune_ft.metric and nowhere else.

Scores on a grid. Test accuracy on a split of N samples moves in steps of 1/N, so seeds often tie, and a
sample spread of 0 says only that the spread is below the grid, not that there is none. Every spread here is
at least the rounding error of the grid, `resolution` / sqrt(12) (a score rounded to the grid is off by up
to half a step, evenly); a spread of exactly 0 on a continuous metric (no grid) gives no interval: nan,
"cannot tell". How often a nominal 95 % interval for the mean covers the true mean (benchmarks/
bootstrap_coverage.py: 3000 simulated experiments per cell, so a cell is within about +-0.01 of the truth;
"accuracy" rows draw a seed's latent accuracy p from a normal and score round(N p) / N, capped at 1):

    scores                                  n=3    n=5    n=10
    normal                                  0.945  0.956  0.949
    gamma k=4 (skew 1)                      0.929  0.941  0.944
    exponential (skew 2)                    0.877  0.874  0.897   <- strongly skewed: under-covered
    accuracy, N=270, p ~ N(0.95, 0.004)     0.987  0.949  0.952
    accuracy, N=270, p ~ N(0.98, 0.006)     0.965  0.951  0.951
    accuracy, N=270, p ~ N(0.995, 0.006)    0.957  0.936  0.946   (saturated: many seeds score 1.0)
    accuracy, N=100, p ~ N(0.90, 0.01)      0.963  0.960  0.956
    accuracy, N=1000, p ~ N(0.97, 0.002)    0.950  0.953  0.954

The studentized bootstrap this module used before covered 0.87 (n = 5, N = 270) on tied accuracies: its
resamples of tied seeds have no spread, and dropping them left intervals with an end at the mean. Student's
t with the grid's floor is within 0.93-0.97 at 3, 5 and 10 seeds for normal, moderately skewed and gridded
scores; it is conservative (0.99) when 3 seeds often tie, and too narrow for strongly skewed scores (a
strategy that sometimes diverges): look at the per-seed scores in trials.parquet when one seed is far off.

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
from functools import lru_cache
from typing import Optional, Sequence

from raytune_ft.metric import sign

CONFIDENCE = 0.95
MAX_EXACT_FLIPS = 16  # the sign-flip test enumerates every flip up to this many seeds, samples them beyond
FLIP_SAMPLES = 100_000
MAX_SEEDS_NEEDED = 1000  # "seeds_needed" is not searched beyond this (None: more)

COLUMNS = ("train_size", "metric", "strategy_a", "strategy_b", "n", "diff_mean", "diff_sd", "diff_ci_low",
           "diff_ci_high", "p_value", "p_value_adjusted", "p_value_exact", "p_a_better", "p_a_better_low",
           "p_a_better_high", "family", "told_apart")
STANDINGS = ("best", "highest mean", "not told apart", "below", "too few seeds", "not confirmed")


def resolution_of(metric: str, test_samples: Optional[int], tasks: int = 1) -> float:
    """The grid a test score moves on: 1 / (samples x tasks) for accuracy (a multi-task score is the mean of
    the tasks' accuracies); F1 is not on a regular grid, and is floored at one sample's step as well; a
    loss is continuous (0). No known test size: 0."""
    kind = metric.partition(".")[0].rsplit("_", 1)[-1]
    if kind not in ("accuracy", "f1") or not test_samples:
        return 0.0
    return 1.0 / (test_samples * (max(1, tasks) if kind == "accuracy" else 1))


def spread(values, resolution: float = 0.0) -> float:
    """The sample standard deviation, never below the grid's rounding error resolution / sqrt(12)."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    sd = float(x.std(ddof=1)) if len(x) > 1 else math.nan
    if _all_same(x):
        sd = 0.0
    return max(sd, resolution / math.sqrt(12))


def mean_ci(values: Sequence[float], *, confidence: float = CONFIDENCE, resolution: float = 0.0) -> tuple[float, float]:
    """A `confidence` interval for the mean of `values` (one score per seed): Student's t, the spread floored
    at the grid's rounding error (module docstring: how often it covers).

    Fewer than two values, or no spread at all on a continuous metric (resolution 0), give (nan, nan): one
    score, or scores that never move, say nothing about how much the mean moves from seed to seed. Values
    must be finite (drop failed seeds before calling)."""
    import numpy as np

    x = _finite_1d(values)
    s = spread(x, resolution) if len(x) > 1 else 0.0
    if len(x) < 2 or s == 0:
        return math.nan, math.nan
    half = t_quantile(0.5 + confidence / 2, len(x) - 1) * s / math.sqrt(len(x))
    return float(np.mean(x) - half), float(np.mean(x) + half)


@lru_cache(maxsize=4096)
def t_quantile(q: float, df: int) -> float:
    """Student's t quantile (scipy's, cached: the same few are asked for over and over)."""
    from scipy import stats

    return float(stats.t.ppf(q, df))


def sign_flip_p(diffs: Sequence[float], *, alternative: str = "two-sided", seed: int = 0) -> float:
    """The exact sign-flip (randomisation) test of "the differences are symmetric around 0": the share of the
    2^n sign patterns whose mean is at least as extreme as the one seen. It assumes no distribution, and so
    cannot go below 1/2^n (one-sided) or 2/2^n (two-sided). alternative: "two-sided" or "greater" (the
    differences are above 0). Beyond MAX_EXACT_FLIPS seeds, FLIP_SAMPLES random patterns (seeded). nan
    for no difference."""
    import numpy as np

    d = _finite_1d(diffs)
    n = len(d)
    if n == 0:
        return math.nan
    if n <= MAX_EXACT_FLIPS:
        signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
    else:
        signs = np.random.default_rng(seed).choice([-1, 1], (FLIP_SAMPLES, n))
    means = signs @ d / n
    observed = d.mean()
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    if alternative == "two-sided":
        hits = np.abs(means) >= abs(observed) - tol
    elif alternative == "greater":
        hits = means >= observed - tol
    else:
        raise ValueError(f"alternative must be 'two-sided' or 'greater', not {alternative!r}")
    if n <= MAX_EXACT_FLIPS:
        return float(hits.mean())
    return float((hits.sum() + 1) / (len(hits) + 1))


@lru_cache(maxsize=4096)
def win_rate_interval(wins: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval for the chance of winning, from `wins` of `n` paired seeds (a tie
    counts 1/2, so wins may be a half number). 3 wins of 3: [0.29, 1]."""
    from scipy import stats

    if n == 0:
        return math.nan, math.nan
    alpha = 1 - confidence
    low = 0.0 if wins <= 0 else float(stats.beta.ppf(alpha / 2, wins, n - wins + 1))
    high = 1.0 if wins >= n else float(stats.beta.ppf(1 - alpha / 2, wins + 1, n - wins))
    return low, high


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

    x, y = _finite_1d(a), _finite_1d(b)
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


def _finite_1d(values):
    import numpy as np

    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"values must be one score per seed (1-D), not shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite: drop the seeds that have no score")
    return x


def _all_same(x) -> bool:
    """Whether every value is the same, up to rounding (0.81 - 0.80 and 0.91 - 0.90 differ in the last bit)."""
    import numpy as np

    return len(x) == 0 or bool(np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())))
