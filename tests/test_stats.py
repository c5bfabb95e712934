"""raytune_ft.analysis.stats against a known truth: simulated seeds whose true means, true difference and true
chance of winning we know, continuous and on the grid of a small test split. Seeded: the same numbers every run.
Each rate is measured over 2000-3000 simulated experiments, so it is within about +-0.01 of its true value."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from raytune_ft.analysis.intervals import mean_ci, resolution_of, sign_flip_p, win_rate_interval
from raytune_ft.analysis.stats import compare_pair, comparisons, p_a_better_reading, seeds_for_a_claim, versus_best

SIMS = 3000


def gridded(n_test: int, mu: float, sd: float):
    """Test accuracy on a fixed split of n_test samples: round(n_test * p) / n_test, p ~ N(mu, sd) per seed,
    capped at 1; and its true mean over seeds."""
    def draw(rng, shape):
        return np.clip(np.round(n_test * rng.normal(mu, sd, shape)), 0, n_test) / n_test
    return draw, float(draw(np.random.default_rng(99), (2_000_000,)).mean())


def coverage(draw, truth: float, n: int, resolution: float, seed: int) -> tuple[float, int]:
    x = draw(np.random.default_rng(seed), (SIMS, n))
    intervals = [mean_ci(row, resolution=resolution) for row in x]
    covered = np.mean([lo <= truth <= hi for lo, hi in intervals])
    # an interval with an end at the mean although the seeds' scores differ (the bootstrap-t's failure)
    at_mean = sum(np.ptp(row) > 0 and min(abs(lo - row.mean()), abs(hi - row.mean())) < 1e-12
                  for row, (lo, hi) in zip(x, intervals))
    return float(covered), int(at_mean)


@pytest.mark.parametrize("mu, sd", [(0.95, 0.004), (0.98, 0.006), (0.995, 0.006)])
@pytest.mark.parametrize("n", [5, 10])
def test_interval_covers_95_percent_on_tied_saturated_accuracies(mu, sd, n):
    # the issue's case: a 270-sample test split, seeds moving accuracy by a sample or two; the bootstrap-t
    # covered 0.845 at (0.95, 0.004) and 5 seeds, with intervals ending at the mean
    draw, truth = gridded(270, mu, sd)
    covered, at_mean = coverage(draw, truth, n, 1 / 270, seed=n)
    assert 0.93 <= covered <= 0.97
    assert at_mean == 0


def test_with_three_tied_seeds_the_interval_is_conservative_not_collapsed():
    # 3 seeds tie on ~8 % of experiments here: Student's t alone gives those a zero-width interval (0.916
    # overall); the grid's floor covers them, so the interval errs on the wide side
    draw, truth = gridded(270, 0.95, 0.004)
    assert coverage(draw, truth, 3, 1 / 270, seed=3)[0] >= 0.93
    draw, truth = gridded(100, 0.90, 0.01)
    assert 0.93 <= coverage(draw, truth, 3, 1 / 100, seed=4)[0] <= 0.99


@pytest.mark.parametrize("n", [3, 5, 10])
def test_interval_covers_95_percent_on_continuous_scores(n):
    def normal(rng, shape):
        return rng.normal(0.8, 0.02, shape)

    def skewed(rng, shape):
        return rng.gamma(4.0, 1.0, shape)

    assert 0.93 <= coverage(normal, 0.8, n, 0.0, seed=n)[0] <= 0.97
    assert 0.92 <= coverage(skewed, 4.0, n, 0.0, seed=n)[0] <= 0.97  # 0.929 at n = 3 (module docstring)


def test_the_issues_examples():
    # tied seeds: Student's t, not an interval ending at the mean (0.7975, 0.8040)
    assert mean_ci([0.80, 0.80, 0.80, 0.80, 0.82], resolution=1 / 270) == pytest.approx((0.7929, 0.8151), abs=1e-4)
    # a constant difference over two seeds is not "significant": no spread, so no interval and no t-test,
    # and the sign-flip test says what two seeds can say (p >= 2 / 2^2)
    r = compare_pair([0.81, 0.83], [0.80, 0.82], mode="max")
    assert math.isnan(r["diff_ci_low"]) and math.isnan(r["diff_ci_high"]) and math.isnan(r["p_value"])
    assert r["p_value_exact"] == 0.5
    # all seeds equal: no interval on a continuous metric, one as wide as the grid allows on accuracy
    assert all(math.isnan(v) for v in mean_ci([0.8, 0.8, 0.8]))
    low, high = mean_ci([0.8, 0.8, 0.8], resolution=0.01)
    assert low < 0.8 < high
    # P(A > B) from 3 wins of 3 is not "1.0" flat: its exact interval is [0.29, 1]
    r = compare_pair([0.9, 0.8, 0.7], [0.8, 0.7, 0.6], mode="max")
    assert r["p_a_better"] == 1.0 and r["p_a_better_low"] == pytest.approx(0.2924, abs=1e-4)
    assert p_a_better_reading(r["p_a_better"], r["p_a_better_low"]) == "not significant"


def test_sign_flip_test_is_exact():
    assert sign_flip_p([0.01] * 5) == pytest.approx(2 / 32)
    assert sign_flip_p([0.01] * 5, alternative="greater") == pytest.approx(1 / 32)
    assert sign_flip_p([0.0, 0.0, 0.0]) == 1.0
    # against its definition: 2^4 patterns of [0.3, -0.1, 0.2, 0.05]
    d = np.array([0.3, -0.1, 0.2, 0.05])
    patterns = [np.array(s) for s in np.ndindex(2, 2, 2, 2)]
    means = [np.mean(d * (1 - 2 * p)) for p in patterns]
    assert sign_flip_p(d) == pytest.approx(np.mean([abs(m) >= abs(d.mean()) - 1e-12 for m in means]))
    # beyond the exact limit: sampled, close to the normal approximation's value for many seeds
    big = np.random.default_rng(0).normal(0.3, 1.0, 40)
    assert sign_flip_p(big) == pytest.approx(scipy_stats.ttest_1samp(big, 0).pvalue, abs=0.03)


def test_win_rate_interval_and_its_reading():
    assert win_rate_interval(3, 3) == pytest.approx((0.2924, 1.0), abs=1e-4)
    low, high = win_rate_interval(10, 20)
    assert (low, high) == pytest.approx(scipy_stats.binomtest(10, 20).proportion_ci(method="exact"), abs=1e-9)
    assert p_a_better_reading(0.9, 0.6) == "meaningful"
    assert p_a_better_reading(0.7, 0.55) == "significant"
    assert p_a_better_reading(0.9, 0.45) == "not significant"


def test_p_a_better_estimates_the_chance_of_winning_on_a_fresh_seed():
    rng = np.random.default_rng(2021)
    delta, sd = 0.01, 0.02  # A - B on one seed: normal(0.01, 0.02)
    rows = [compare_pair(0.8 + delta + rng.normal(0, sd, 10), np.full(10, 0.8), mode="max") for _ in range(2000)]
    truth = scipy_stats.norm.cdf(delta / sd)
    assert np.mean([r["p_a_better"] for r in rows]) == pytest.approx(truth, abs=0.01)
    # the difference's interval covers the true difference
    assert 0.93 <= np.mean([r["diff_ci_low"] <= delta <= r["diff_ci_high"] for r in rows]) <= 0.97
    # the exact interval for P(A beats B) covers the truth at least 95 % of the time (exact: conservative)
    assert np.mean([r["p_a_better_low"] <= truth <= r["p_a_better_high"] for r in rows]) >= 0.95


def test_p_values_and_mode():
    a, b = [0.81, 0.84, 0.79, 0.86, 0.80], [0.80, 0.81, 0.80, 0.83, 0.78]
    r = compare_pair(a, b, mode="max")
    assert r["p_value"] == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)
    assert r["diff_mean"] == pytest.approx(np.mean(np.subtract(a, b)))
    assert r["p_a_better"] == pytest.approx(4 / 5)
    assert compare_pair(a, b, mode="min")["p_a_better"] == pytest.approx(1 / 5)
    with pytest.raises(ValueError, match="paired"):
        compare_pair([0.8, 0.9], [0.8], mode="max")
    with pytest.raises(ValueError, match="finite"):
        mean_ci([0.8, math.nan])


def test_comparisons_rows_pair_every_ordered_pair_on_shared_seeds():
    scores = {"full": {0: 0.9, 1: 0.92, 2: 0.91}, "lora": {0: 0.85, 1: 0.86, 2: None}, "fe": {1: 0.8, 2: 0.81}}
    rows = comparisons(scores, mode="max", metric="test_accuracy", train_size=100)
    by = {(r["strategy_a"], r["strategy_b"]): r for r in rows}
    assert len(rows) == 6 and by["full", "lora"]["n"] == 2 and by["lora", "fe"]["n"] == 1
    assert by["full", "lora"]["diff_mean"] == pytest.approx(-by["lora", "full"]["diff_mean"])
    assert by["full", "lora"]["p_a_better"] == 1 - by["lora", "full"]["p_a_better"]
    # three strategies: three pairs, each interval at 1 - 0.05 / 3, so all hold at once
    assert {r["family"] for r in rows} == {3}
    alone = compare_pair([0.9, 0.92], [0.85, 0.86], mode="max", resolution=0.0)
    assert by["full", "lora"]["diff_ci_high"] - by["full", "lora"]["diff_ci_low"] > alone["diff_ci_high"] - alone["diff_ci_low"]


def test_seeds_for_a_claim():
    assert [seeds_for_a_claim(k) for k in (2, 3, 4, 5, 6, 7)] == [6, 7, 8, 9, 10, 10]
    for k in (2, 3, 5, 9):  # the smallest n whose best two-sided sign-flip p, 2/2^n, is <= 0.05 / pairs
        n, pairs = seeds_for_a_claim(k), k * (k - 1) / 2
        assert 2 * 0.5 ** n <= 0.05 / pairs < 2 * 0.5 ** (n - 1)


def standings(scores: dict, mode: str = "max", resolution: float = 0.0) -> dict:
    rows = comparisons(scores, mode=mode, metric="test_accuracy", train_size=None, resolution=resolution)
    means = {s: np.mean([v for v in sc.values() if v is not None]) if sc else None for s, sc in scores.items()}
    return versus_best(rows, means, mode=mode)


def _null_claims(draw, k: int, n: int, resolution: float, sims: int = 2000) -> float:
    """Share of simulated experiments (k strategies, one true mean) in which versus_best claims anything."""
    rng = np.random.default_rng(k * 100 + n)
    claims = 0
    for _ in range(sims):
        seed_effect = rng.normal(0, 0.01, n)  # what one seed does to every strategy (paired)
        scores = {f"s{i}": dict(enumerate(draw(rng, n) + seed_effect)) for i in range(k)}
        claims += any(v["standing"] in ("best", "below") for v in standings(scores, resolution=resolution).values())
    return claims / sims


@pytest.mark.parametrize("k, n", [(3, 7), (3, 12), (5, 9)])
def test_under_the_null_at_most_5_percent_of_experiments_claim_anything(k, n):
    def normal(rng, m):
        return rng.normal(0.8, 0.02, m)

    def gridded_draw(rng, m):
        return np.clip(np.round(270 * rng.normal(0.95, 0.006, m)), 0, 270) / 270

    assert _null_claims(normal, k, n, 0.0) <= 0.05
    assert _null_claims(gridded_draw, k, n, 1 / 270) <= 0.05


def test_too_few_seeds_make_no_claim_whatever_the_gap():
    scores = {"full": {i: 0.95 for i in range(6)}, "lora": {i: 0.50 + 0.01 * i for i in range(6)},
              "fe": {i: 0.40 for i in range(6)}}
    got = standings(scores, resolution=0.01)  # 3 strategies need 7 seeds
    assert got["full"]["standing"] == "highest mean"
    assert got["lora"]["standing"] == got["fe"]["standing"] == "too few seeds"
    assert all(v["vs_best_low"] is None for v in got.values())


def test_versus_best_tells_a_clear_gap_and_its_interval_says_the_same():
    rng = np.random.default_rng(7)
    truth = {"full": 0.90, "lora": 0.89, "fe": 0.80}
    covered, found_fe_below, sims = 0, 0, 1000
    for _ in range(sims):
        seed_effect = rng.normal(0, 0.01, 8)
        scores = {s: dict(enumerate(mu + seed_effect + rng.normal(0, 0.01, 8))) for s, mu in truth.items()}
        got = standings(scores)
        # every strategy's interval for "it minus the best of the others", all at once
        covered += all(v["vs_best_low"] - 1e-12 <= truth[s] - max(t for o, t in truth.items() if o != s)
                       <= v["vs_best_high"] + 1e-12 for s, v in got.items())
        found_fe_below += got["fe"]["standing"] == "below"
        for v in got.values():  # the decision is read off the interval
            assert (v["standing"] == "below") == (v["vs_best_high"] < 0)
            assert (v["standing"] == "best") == (v["vs_best_low"] > 0)
    assert covered / sims >= 0.95
    assert found_fe_below / sims >= 0.99


def test_versus_best_for_a_loss_and_when_one_is_told_apart_from_all():
    scores = {"full": {i: 0.20 + 0.001 * i for i in range(6)}, "fe": {i: 0.50 + 0.002 * i for i in range(6)}}
    got = standings(scores, mode="min")
    assert got["full"]["standing"] == "best" and got["fe"]["standing"] == "below"
    assert got["full"]["vs_best_high"] < 0  # lower is better: "it minus the best of the others" below 0
    assert got["fe"]["vs_best_low"] > 0
    assert got["full"]["vs_best_low"] == pytest.approx(-got["fe"]["vs_best_high"])


def test_versus_best_says_how_many_seeds_would_tell_them_apart():
    rng = np.random.default_rng(3)
    scores = {"full": dict(enumerate(0.90 + rng.normal(0, 0.02, 6))),
              "lora": dict(enumerate(0.89 + rng.normal(0, 0.02, 6)))}
    got = standings(scores)
    leader, other = sorted(got, key=lambda s: got[s]["standing"] != "highest mean")
    assert got[other]["standing"] == "not told apart" and got[other]["seeds_needed"] > 6
    assert standings({"a": {}, "b": {0: 0.5}})["a"]["standing"] == "not confirmed"
    assert standings({"a": {}, "b": {0: 0.5}})["b"]["standing"] == "highest mean"


def test_resolution_of_a_metric():
    assert resolution_of("test_accuracy", 270) == pytest.approx(1 / 270)
    assert resolution_of("val_accuracy.topic", 100) == pytest.approx(1 / 100)
    assert resolution_of("test_accuracy", 100, tasks=3) == pytest.approx(1 / 300)
    assert resolution_of("test_loss", 270) == 0.0 and resolution_of("test_accuracy", None) == 0.0
