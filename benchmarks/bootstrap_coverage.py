"""How far the confirm stage's numbers can be trusted: measured on simulated seeds whose truth we know.

    .venv/bin/python benchmarks/bootstrap_coverage.py [--sims 3000] [--resamples 2000]

1. Coverage of a nominal 95 % interval for a mean over n = 3, 5, 10 seeds, for continuous scores (normal;
   gamma, skewness 1; exponential, skewness 2) and for test accuracies on a fixed split of N samples (a seed's
   latent accuracy p ~ normal, scored round(N p) / N, capped at 1: tied and saturated). Methods: Student's t
   with the spread floored at the grid's rounding error (raytune_ft.analysis.intervals.mean_ci, what the
   report uses), plain Student's t, the studentized bootstrap as the project used it before (resamples
   without spread dropped) and the percentile bootstrap.
2. Decisions under the null: k strategies of one true mean (paired seeds, a shared seed effect), how often
   any claim is made: the project's rule (analysis/stats.py: every pair at once, no claim below the seeds
   a sign-flip test needs) against Hsu's MCB read as "below" (Bonferroni over k - 1), continuous and gridded.
3. Budget curves under the null: two strategies of one score distribution, 8 trials each: how often the
   crossover sentences (analysis/budget.py) name a leader.

Writes benchmarks/results/bootstrap_coverage.md; the coverage numbers are in the docstring of
raytune_ft/analysis/intervals.py.
"""
from __future__ import annotations

import argparse
import math
import time

import _bench  # noqa: F401  (the repository root on sys.path)

NS = (3, 5, 10)
OURS, MCB = "ours (all pairs, seeds gate)", "MCB read as 'below'"


def gridded(n_test: int, mu: float, sd: float):
    import numpy as np

    def draw(rng, shape):
        return np.clip(np.round(n_test * rng.normal(mu, sd, shape)), 0, n_test) / n_test

    return draw, float(draw(np.random.default_rng(99), (2_000_000,)).mean()), 1.0 / n_test


def cases():
    """name -> (draw(rng, shape), true mean, grid step or 0)."""
    return {
        "normal": (lambda rng, shape: rng.normal(0.8, 0.02, shape), 0.8, 0.0),
        "gamma k=4 (skew 1)": (lambda rng, shape: rng.gamma(4.0, 1.0, shape), 4.0, 0.0),
        "exponential (skew 2)": (lambda rng, shape: rng.exponential(1.0, shape), 1.0, 0.0),
        "accuracy N=270, p~N(0.95, 0.004)": gridded(270, 0.95, 0.004),
        "accuracy N=270, p~N(0.98, 0.006)": gridded(270, 0.98, 0.006),
        "accuracy N=270, p~N(0.995, 0.006), saturated": gridded(270, 0.995, 0.006),
        "accuracy N=100, p~N(0.90, 0.01)": gridded(100, 0.90, 0.01),
        "accuracy N=1000, p~N(0.97, 0.002)": gridded(1000, 0.97, 0.002),
    }


def bootstrap(x, rng, resamples: int, alpha: float = 0.05):
    """(studentized bootstrap as before: resamples without spread dropped, percentile bootstrap) per row."""
    import numpy as np

    n = x.shape[-1]
    idx = rng.integers(0, n, x.shape[:-1] + (resamples, n))
    r = np.take_along_axis(x[..., None, :], idx, axis=-1)
    m, se = x.mean(-1), x.std(-1, ddof=1) / math.sqrt(n)
    ms, ses = r.mean(-1), r.std(-1, ddof=1) / math.sqrt(n)
    ok = ses > 1e-9 * se[..., None]
    with np.errstate(all="ignore"):
        t = np.where(ok, (ms - m[..., None]) / np.where(ok, ses, 1.0), np.nan)
        q_low, q_high = np.nanquantile(t, [alpha / 2, 1 - alpha / 2], axis=-1)
    p_low, p_high = np.quantile(ms, [alpha / 2, 1 - alpha / 2], axis=-1)
    return (m - q_high * se, m - q_low * se), (p_low, p_high)


def coverage(draw, truth: float, step: float, n: int, sims: int, resamples: int, seed: int) -> dict[str, float]:
    import numpy as np
    from scipy import stats

    from raytune_ft.analysis.intervals import mean_ci

    rng = np.random.default_rng(seed)
    x = draw(rng, (sims, n))
    ours = np.array([mean_ci(row, resolution=step) for row in x]).T
    half = stats.t.ppf(0.975, n - 1) * x.std(-1, ddof=1) / math.sqrt(n)
    boot_t, percentile = zip(*(bootstrap(chunk, rng, resamples) for chunk in np.array_split(x, max(1, sims // 200))))
    found = {"Student t, grid floor (ours)": ours, "Student t": (x.mean(-1) - half, x.mean(-1) + half),
             "bootstrap-t (before)": tuple(np.concatenate(v) for v in zip(*boot_t)),
             "percentile bootstrap": tuple(np.concatenate(v) for v in zip(*percentile))}
    return {k: float(np.mean((lo <= truth) & (truth <= hi))) for k, (lo, hi) in found.items()}


def null_claims(k: int, n: int, step: float, sims: int, seed: int) -> dict[str, float]:
    import numpy as np
    from scipy import stats as sps

    from raytune_ft.analysis.stats import comparisons, versus_best

    rng = np.random.default_rng(seed)
    ours = mcb = 0
    for _ in range(sims):
        shared = rng.normal(0, 0.01, n)
        raw = rng.normal(0.95, 0.006, (k, n)) + shared
        scores = np.clip(np.round(raw / step), 0, 1 / step) * step if step else raw
        table = {f"s{i}": dict(enumerate(scores[i])) for i in range(k)}
        rows = comparisons(table, mode="max", metric="m", train_size=None, resolution=step)
        got = versus_best(rows, {s: float(np.mean(list(v.values()))) for s, v in table.items()}, mode="max")
        ours += any(v["standing"] in ("best", "below") for v in got.values())
        crit = sps.t.ppf(1 - 0.05 / (k - 1), n - 1)  # MCB, Bonferroni over k - 1, read strictly
        claim = False
        for i in range(k):
            for j in range(k):
                if i != j:
                    d = scores[i] - scores[j]
                    sd = max(d.std(ddof=1), step / math.sqrt(12))
                    claim |= sd > 0 and d.mean() + crit * sd / math.sqrt(n) < 0
        mcb += claim
    return {OURS: ours / sims, MCB: mcb / sims}


def budget_null(sims: int, seed: int) -> float:
    import numpy as np

    from raytune_ft.analysis.budget import budget_curves, crossovers

    rng = np.random.default_rng(seed)
    claims = 0
    for _ in range(sims):
        trials = [{"strategy": s, "train_size": 100, "score": float(v), "wall_seconds": 10.0, "status": "completed"}
                  for s in ("a", "b") for v in rng.beta(8, 3, 8)]
        rows = budget_curves(trials, mode="max", bounds=(0.0, 1.0))
        said = crossovers(rows, mode="max") + crossovers(rows, mode="max", x="compute_seconds")
        claims += any("leads" in s for s in said)
    return claims / sims


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=3000)
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    start = time.monotonic()
    rows = [(name, n, coverage(draw, truth, step, n, args.sims, args.resamples, seed=n))
            for name, (draw, truth, step) in cases().items() for n in NS]
    methods = list(rows[0][2])
    lines = ["# How far the confirm stage's numbers can be trusted: simulated seeds whose truth is known", "",
             f"## 1. Coverage of a nominal 95 % interval for a mean over n seeds ({args.sims} simulated experiments "
             f"per cell, {args.resamples} resamples for the bootstraps; a cell is within about +-0.01)", "",
             "| scores | n | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    lines += [f"| {name} | {n} | " + " | ".join(f"{c[k]:.3f}" for k in methods) + " |" for name, n, c in rows]
    sims = max(500, args.sims // 3)
    lines += ["", f"## 2. Share of experiments that claim anything when every strategy has one true mean "
              f"({sims} experiments per cell; target <= 0.05)", "",
              f"| strategies | seeds | scores | {OURS} | {MCB} |", "|---|---|---|---|---|"]
    for k, n in ((2, 6), (3, 7), (3, 12), (5, 9)):
        for label, step in (("normal", 0.0), ("accuracy N=270", 1 / 270)):
            got = null_claims(k, n, step, sims, seed=k * 100 + n)
            lines.append(f"| {k} | {n} | {label} | {got[OURS]:.3f} | {got[MCB]:.3f} |")
    lines += ["", f"## 3. Budget curves of two strategies drawn from one distribution, 8 trials each: share of "
              f"sweeps whose sentences name a leader ({sims} sweeps; target <= 0.05): {budget_null(sims, 5):.3f}",
              "", f"{time.monotonic() - start:.0f} s"]
    _bench.publish(lines, "bootstrap_coverage")


if __name__ == "__main__":
    main()
