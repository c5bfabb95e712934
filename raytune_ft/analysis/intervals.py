"""One strategy's scores over seeds: an interval for their mean, and the small exact tools the comparisons
(analysis/stats.py) are built from: Student's t quantiles, the sign-flip test, the interval of a win rate.

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
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional, Sequence

CONFIDENCE = 0.95
MAX_EXACT_FLIPS = 16  # the sign-flip test enumerates every flip up to this many seeds, samples them beyond
FLIP_SAMPLES = 100_000


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
    if all_same(x):
        sd = 0.0
    return max(sd, resolution / math.sqrt(12))


def mean_ci(values: Sequence[float], *, confidence: float = CONFIDENCE, resolution: float = 0.0) -> tuple[float, float]:
    """A `confidence` interval for the mean of `values` (one score per seed): Student's t, the spread floored
    at the grid's rounding error (module docstring: how often it covers).

    Fewer than two values, or no spread at all on a continuous metric (resolution 0), give (nan, nan): one
    score, or scores that never move, say nothing about how much the mean moves from seed to seed. Values
    must be finite (drop failed seeds before calling)."""
    import numpy as np

    x = finite_1d(values)
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

    d = finite_1d(diffs)
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


def finite_1d(values):
    import numpy as np

    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"values must be one score per seed (1-D), not shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite: drop the seeds that have no score")
    return x


def all_same(x) -> bool:
    """Whether every value is the same, up to rounding (0.81 - 0.80 and 0.91 - 0.90 differ in the last bit)."""
    import numpy as np

    return len(x) == 0 or bool(np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())))
