"""Statistics over seeds for the confirm stage: is strategy A really better than B, or did it get lucky?

The confirm stage trains each strategy's chosen configuration again with a few fresh seeds, the same seeds
for every strategy, so scores come in pairs: seed i of A against seed i of B. Everything here works on those
paired test scores:

- `mean_ci`: an interval for a mean over seeds (bootstrap-t from 5 seeds, Student's t below);
- `compare_pair`: A against B over their shared seeds (mean difference and its interval, the chance that A
  beats B on a fresh seed, a paired t-test p-value);
- `holm`: the Holm-Bonferroni correction (comparing many pairs makes some look significant by chance);
- `comparisons`: the rows of comparisons.parquet for one train size;
- `tied_with_best`: which strategies cannot be told apart from the best one.

Which way is better (accuracy up, loss down) comes from raytune_ft.metric and nowhere else.

Why the studentized bootstrap (bootstrap-t) for every interval here: measured, not assumed. How often a
nominal 95 % interval for a mean covers the true mean (benchmarks/bootstrap_coverage.py: 2000 simulated
experiments per cell, 2000 resamples each, seeded; a cell is within about +-0.01 of the truth):

    scores                 n   percentile  BCa    bootstrap-t  (Student t, not a bootstrap)
    normal                 3   0.746       0.726  0.808        0.949
    normal                 5   0.847       0.844  0.950        0.959
    normal                10   0.906       0.903  0.948        0.950
    normal                20   0.931       0.928  0.952        0.958
    normal                30   0.933       0.930  0.947        0.949
    gamma k=4 (skew 1)     3   0.726       0.709  0.805        0.929
    gamma k=4 (skew 1)     5   0.838       0.844  0.951        0.949
    gamma k=4 (skew 1)    10   0.893       0.896  0.953        0.941
    gamma k=4 (skew 1)    20   0.913       0.914  0.944        0.938
    gamma k=4 (skew 1)    30   0.934       0.934  0.946        0.947
    exponential (skew 2)   3   0.689       0.668  0.779        0.879
    exponential (skew 2)   5   0.769       0.786  0.915        0.877
    exponential (skew 2)  10   0.864       0.877  0.943        0.900
    exponential (skew 2)  20   0.895       0.906  0.936        0.913
    exponential (skew 2)  30   0.912       0.920  0.951        0.918

The percentile and BCa intervals (and the basic one, not shown, like percentile) are too narrow with few
seeds: at n = 5 they cover ~85 %, not 95 %. Bootstrap-t is at 95 % from n = 5 on for normal and
moderately skewed scores, and stays closest on strongly skewed ones (where Student's t falls to 88-92 %).
At n = 3 nothing resampled does well (a sample of 3 has only 10 distinct resamples): bootstrap-t covers
~80 %. So below BOOTSTRAP_FROM = 5 seeds, `mean_ci` gives Student's t interval instead, which covers 93-95 %
there for normal and moderately skewed scores (88 % for strongly skewed ones); from 5 seeds on, bootstrap-t,
calibrated unless scores are strongly skewed.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

from raytune_ft.metric import best as metric_best
from raytune_ft.metric import sign

N_RESAMPLES = 9999  # bootstrap resamples per interval (scipy.stats.bootstrap's default)
BOOTSTRAP_FROM = 5  # fewer seeds than this: Student's t interval (the bootstrap covers ~80 % at 3; see above)

COLUMNS = ("train_size", "metric", "strategy_a", "strategy_b", "n", "diff_mean", "diff_ci_low", "diff_ci_high",
           "p_a_better", "p_value", "p_value_holm")


def mean_ci(values: Sequence[float], *, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """A `confidence` interval for the mean of `values` (one score per seed): the studentized bootstrap, or,
    with fewer than BOOTSTRAP_FROM values, Student's t (measured to cover better there: module docstring).

    Fewer than two values give (nan, nan): one score says nothing about how much the mean moves from seed
    to seed, and (v, v) would claim it does not move at all. All values equal (up to rounding) give (v, v):
    every resample is the same. Values must be finite (drop failed seeds before calling). The same `seed`
    gives the same interval. See the module docstring for how often it covers the true mean.
    """
    import numpy as np

    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"values must be one score per seed (1-D), not shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite: drop the seeds that have no score")
    if len(x) < 2:
        return math.nan, math.nan
    if _all_same(x):
        return float(np.median(x)), float(np.median(x))
    if len(x) < BOOTSTRAP_FROM:
        from scipy import stats

        half = stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
        return float(x.mean() - half), float(x.mean() + half)
    low, high = _bootstrap_t(x, confidence, np.random.default_rng(seed), N_RESAMPLES)
    return float(low), float(high)


def _bootstrap_t(x, confidence: float, rng, n_resamples: int):
    """The studentized bootstrap (bootstrap-t) interval for the mean of each row of `x` (the last axis).

    Resample each row with replacement, and for each resample compute t* = (mean* - mean) / se*; the
    interval is mean - q(1 - a/2) * se .. mean - q(a/2) * se, with q the quantiles of t*. Unlike the
    percentile bootstrap it widens for the few-seed case the way Student's t does, and unlike Student's t
    it adapts to skewed scores. Resamples whose spread is ~0 (every draw the same score) have no t* and
    are left out (at n = 3, 1 in 9 of them).
    """
    import numpy as np

    n = x.shape[-1]
    idx = rng.integers(0, n, x.shape[:-1] + (n_resamples, n))
    resampled = np.take_along_axis(x[..., None, :], idx, axis=-1)
    mean, se = x.mean(axis=-1), x.std(axis=-1, ddof=1) / math.sqrt(n)
    means, ses = resampled.mean(axis=-1), resampled.std(axis=-1, ddof=1) / math.sqrt(n)
    spread = ses > 1e-9 * se[..., None]
    t = np.where(spread, (means - mean[..., None]) / np.where(spread, ses, 1.0), np.nan)
    alpha = 1 - confidence
    q_low, q_high = np.nanquantile(t, [alpha / 2, 1 - alpha / 2], axis=-1)
    return mean - q_high * se, mean - q_low * se


def compare_pair(a: Sequence[float], b: Sequence[float], *, mode: str, confidence: float = 0.95,
                 seed: int = 0) -> dict:
    """A against B, paired by seed (`a[i]` and `b[i]` were trained with the same seed).

    Returns n (pairs), diff_mean (mean of a - b, in the metric's units: negative is good for A when
    `mode` is "min"), diff_ci_low / diff_ci_high (`mean_ci` of the differences), p_a_better and p_value.

    p_a_better: the estimated probability that A beats B on a fresh seed (Bouthillier et al. 2021,
    "Accounting for variance in machine learning benchmarks"): the fraction of the pairs where A is
    better for `mode`, a tie counting 1/2. 0.5 means a coin flip, whatever the size of the differences.

    p_value: the two-sided paired t-test (scipy.stats.ttest_rel) over the pairs; nan for n < 2. When every
    difference is the same, the test is undefined (zero spread): 1.0 if they are all 0 (no difference at
    all), 0.0 if not (the same nonzero difference on every seed: as consistent as a difference gets).
    """
    import numpy as np

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"a and b must be paired by seed (same length), not shapes {x.shape} and {y.shape}")
    diff = x - y
    n = len(diff)
    low, high = mean_ci(diff, confidence=confidence, seed=seed)
    wins = np.sign(sign(mode) * diff)  # +1: A better, 0: tie, -1: B better
    return {
        "n": n,
        "diff_mean": float(diff.mean()) if n else math.nan,
        "diff_ci_low": low,
        "diff_ci_high": high,
        "p_a_better": float(np.mean((wins + 1) / 2)) if n else math.nan,
        "p_value": _paired_p_value(x, y),
    }


def _paired_p_value(x, y) -> float:
    import numpy as np
    from scipy import stats

    diff = x - y
    if len(diff) < 2:
        return math.nan
    if _all_same(diff):
        return 1.0 if np.all(diff == 0) else 0.0
    return float(stats.ttest_rel(x, y).pvalue)


def _all_same(x) -> bool:
    """Whether every value is the same, up to rounding (0.81 - 0.80 and 0.91 - 0.90 differ in the last bit)."""
    import numpy as np

    return bool(np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())))


def holm(p_values: Sequence[Optional[float]]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given.

    Sort the m p-values ascending; the k-th smallest (k = 1..m) becomes max over j <= k of (m - j + 1) *
    p_(j), capped at 1 (step-down, and never smaller than an adjusted value before it). Rejecting where
    the adjusted value is below alpha keeps the chance of any false "A differs from B" under alpha. nan
    (or None: no test) stays nan and is not counted in m.
    """
    import numpy as np

    p = np.array([math.nan if v is None else v for v in p_values], dtype=float)
    out = np.full(len(p), math.nan)
    tested = ~np.isnan(p)
    m = int(tested.sum())
    order = np.argsort(p[tested], kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[tested][order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    out[tested] = adjusted
    return out.tolist()


def comparisons(scores: dict[str, dict[int, float]], *, mode: str, metric: str, train_size: int,
                seed: int = 0) -> list[dict]:
    """comparisons.parquet rows for one train size: one per ordered pair (a, b), a != b.

    `scores` is strategy -> {seed: test score} (the confirmed scores). Each pair is compared over the
    seeds where both have a finite score. (b, a) mirrors (a, b): the differences and interval negated,
    p_a_better 1 - p, the same p-values. p_value_holm is Holm over the unordered pairs of this call
    (pairs without a test, n < 2, are not counted); missing values are nan.
    """
    names = list(scores)
    finite = {s: {k: float(v) for k, v in scores[s].items() if v is not None and math.isfinite(v)} for s in names}
    tested = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = sorted(set(finite[a]) & set(finite[b]))
            tested[a, b] = compare_pair([finite[a][k] for k in shared], [finite[b][k] for k in shared],
                                        mode=mode, seed=seed)
    for pair, p in zip(tested, holm([r["p_value"] for r in tested.values()])):
        tested[pair]["p_value_holm"] = p
    rows = []
    for a in names:
        for b in names:
            if a != b:
                r = tested[a, b] if (a, b) in tested else _mirrored(tested[b, a])
                rows.append({"train_size": train_size, "metric": metric, "strategy_a": a, "strategy_b": b, **r})
    return rows


def _mirrored(r: dict) -> dict:
    """The (b, a) row from the (a, b) one."""
    return {**r, "diff_mean": -r["diff_mean"], "diff_ci_low": -r["diff_ci_high"], "diff_ci_high": -r["diff_ci_low"],
            "p_a_better": 1.0 - r["p_a_better"]}


def tied_with_best(confirm_means: dict[str, float], rows: list[dict], *, mode: str,
                   alpha: float = 0.05) -> dict[str, bool]:
    """strategy -> whether it cannot be told apart from the best one (the best confirm mean for `mode`).

    `rows` are one train size's `comparisons()` rows. The best is True; another strategy is True when its
    Holm-adjusted p-value against the best is >= `alpha`, and also when there is no test (fewer than two
    shared seeds, or no row): with no evidence of a difference, it cannot be told apart. A strategy with no
    confirm mean (None or nan: no confirmed score at all) is False: there is nothing to tie.
    """
    if len({r["train_size"] for r in rows}) > 1:
        raise ValueError("rows must be of one train size: call tied_with_best once per train size")
    scored = {s: m for s, m in confirm_means.items() if m is not None and not math.isnan(m)}
    if not scored:
        return {s: False for s in confirm_means}
    leader = metric_best(scored, lambda s: scored[s], mode)
    p_holm = {r["strategy_a"]: r["p_value_holm"] for r in rows if r["strategy_b"] == leader}
    tied = {}
    for s in confirm_means:
        p = p_holm.get(s)
        tied[s] = s == leader or (s in scored and (p is None or math.isnan(p) or p >= alpha))
    return tied
