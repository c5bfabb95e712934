"""Which bootstrap interval to trust for a mean over a handful of seeds: measured, not assumed.

    .venv/bin/python benchmarks/bootstrap_coverage.py [--sims 2000] [--resamples 2000]

For each score distribution with a known mean (normal; gamma with shape 4, skewness 1; exponential,
skewness 2) and each number of seeds n (3, 5, 10, 20, 30), draws `--sims` simulated experiments, builds
a 95 % interval for the mean with each method, and counts how often it covers the true mean. Methods:
percentile, basic and BCa bootstrap (scipy.stats.bootstrap), the studentized bootstrap (bootstrap-t, as
raytune_ft.analysis.stats does it), and for reference the plain Student t interval (not a bootstrap).
Writes the table to benchmarks/results/bootstrap_coverage.md; its numbers are in the docstring of
raytune_ft/results/stats.py.
"""
from __future__ import annotations

import argparse

import _bench  # noqa: F401  (the repository root on sys.path)

NS = (3, 5, 10, 20, 30)


def distributions():
    """name -> (draw(rng, shape), true mean)."""
    return {
        "normal": (lambda rng, shape: rng.normal(0.8, 0.02, shape), 0.8),
        "gamma k=4 (skew 1)": (lambda rng, shape: rng.gamma(4.0, 1.0, shape), 4.0),
        "exponential (skew 2)": (lambda rng, shape: rng.exponential(1.0, shape), 1.0),
    }


def coverage(draw, truth: float, n: int, sims: int, resamples: int, seed: int) -> dict[str, float]:
    import numpy as np
    from scipy import stats

    from raytune_ft.analysis.stats import _bootstrap_t

    rng = np.random.default_rng(seed)
    x = draw(rng, (sims, n))
    alpha = 0.05
    found: dict[str, list] = {}
    for rows in np.array_split(x, max(1, sims // 100)):  # a chunk at a time: (rows, resamples, n) fits in memory
        idx = rng.integers(0, n, (len(rows), resamples, n))
        means = np.take_along_axis(rows[:, None, :], idx, axis=2).mean(axis=2)
        m = rows.mean(axis=1)
        lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2], axis=1)
        bca = stats.bootstrap((rows,), np.mean, axis=-1, vectorized=True, method="BCa", n_resamples=resamples,
                              batch=100, confidence_level=1 - alpha, random_state=rng).confidence_interval
        se = rows.std(axis=1, ddof=1) / np.sqrt(n)
        t = stats.t.ppf(1 - alpha / 2, n - 1)
        for name, interval in {"percentile": (lo, hi), "basic": (2 * m - hi, 2 * m - lo),
                               "BCa": (bca.low, bca.high),
                               "bootstrap-t": _bootstrap_t(rows, 1 - alpha, rng, resamples),
                               "Student t (not bootstrap)": (m - t * se, m + t * se)}.items():
            found.setdefault(name, []).append(np.stack(interval))
    found = {k: np.concatenate(v, axis=1) for k, v in found.items()}
    return {k: float(np.mean((lo <= truth) & (truth <= hi))) for k, (lo, hi) in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000)
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    rows = []
    for name, (draw, truth) in distributions().items():
        for n in NS:
            rows.append((name, n, coverage(draw, truth, n, args.sims, args.resamples, seed=n)))
    methods = list(rows[0][2])
    lines = [f"Coverage of a nominal 95 % interval for the mean ({args.sims} simulated experiments, "
             f"{args.resamples} resamples each)", "",
             "| scores | n | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    lines += [f"| {name} | {n} | " + " | ".join(f"{c[k]:.3f}" for k in methods) + " |" for name, n, c in rows]
    _bench.publish(lines, "bootstrap_coverage")


if __name__ == "__main__":
    main()
