"""raytune_ft.results.stats against a known truth: simulated seeds whose true difference and true chance of
winning we know, and hand-computed Holm values. Seeded: the same numbers every run."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from raytune_ft.results import stats
from raytune_ft.results.stats import comparisons, compare_pair, holm, mean_ci, tied_with_best

SIMS, SEEDS = 2000, 10
DELTA, SEED_SD, NOISE_SD = 0.01, 0.03, 0.02 / math.sqrt(2)  # A - B on one seed: normal(0.01, 0.02)


@pytest.fixture(scope="module")
def simulated():
    """SIMS experiments of SEEDS paired seeds: a seed effect both strategies share, plus each one's noise."""
    rng = np.random.default_rng(2021)
    seed_effect = rng.normal(0.0, SEED_SD, (SIMS, SEEDS))
    a = 0.80 + DELTA + seed_effect + rng.normal(0.0, NOISE_SD, (SIMS, SEEDS))
    b = 0.80 + seed_effect + rng.normal(0.0, NOISE_SD, (SIMS, SEEDS))
    with pytest.MonkeyPatch.context() as mp:
        # 2000 resamples, as in the coverage measurement, to keep this fast; 9999 only adds precision
        mp.setattr(stats, "N_RESAMPLES", 2000)
        return [compare_pair(a[i], b[i], mode="max", seed=i) for i in range(SIMS)]


def test_difference_interval_covers_the_true_difference_95_percent_of_the_time(simulated):
    # At n = 10 the bootstrap-t interval is calibrated (module docstring: 0.948 for normal scores); the
    # percentile bootstrap would give ~0.90 here.
    covered = np.mean([r["diff_ci_low"] <= DELTA <= r["diff_ci_high"] for r in simulated])
    assert 0.93 <= covered <= 0.97
    assert all(r["n"] == SEEDS for r in simulated)


def test_with_three_seeds_the_interval_is_students_t_and_still_covers_95_percent():
    # bootstrap-t covers ~80 % at n = 3 (module docstring), so below 5 seeds mean_ci is Student's t
    rng = np.random.default_rng(3)
    a = 0.80 + DELTA + rng.normal(0.0, 0.02, (SIMS, 3))
    b = np.full((SIMS, 3), 0.80)
    rows = [compare_pair(a[i], b[i], mode="max", seed=i) for i in range(SIMS)]
    assert 0.93 <= np.mean([r["diff_ci_low"] <= DELTA <= r["diff_ci_high"] for r in rows]) <= 0.97
    low, high = mean_ci([0.80, 0.82, 0.87])
    half = scipy_stats.t.ppf(0.975, 2) * np.std([0.80, 0.82, 0.87], ddof=1) / math.sqrt(3)
    assert (low, high) == pytest.approx((0.83 - half, 0.83 + half))
    five = np.array([0.80, 0.82, 0.87, 0.90, 0.84])  # from 5 seeds on: the bootstrap
    assert mean_ci(five) == pytest.approx(stats._bootstrap_t(five, 0.95, np.random.default_rng(0), stats.N_RESAMPLES))


def test_p_a_better_estimates_the_chance_of_winning_on_a_fresh_seed(simulated):
    # A - B on one seed is normal(DELTA, sd of the difference): P(A beats B) = Phi(DELTA / sd)
    truth = scipy_stats.norm.cdf(DELTA / (math.sqrt(2) * NOISE_SD))
    estimated = np.mean([r["p_a_better"] for r in simulated])
    assert truth == pytest.approx(0.6915, abs=1e-4)
    assert estimated == pytest.approx(truth, abs=0.01)  # its standard error here: ~0.003


def test_p_value_is_the_paired_t_test_and_diff_mean_the_mean_difference():
    a, b = [0.81, 0.84, 0.79, 0.86, 0.80], [0.80, 0.81, 0.80, 0.83, 0.78]
    r = compare_pair(a, b, mode="max")
    assert r["p_value"] == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)
    assert r["diff_mean"] == pytest.approx(np.mean(np.subtract(a, b)))
    assert r["diff_ci_low"] < r["diff_mean"] < r["diff_ci_high"]
    assert r["p_a_better"] == pytest.approx(4 / 5)


def test_mean_ci_is_reproducible_and_around_the_mean():
    values = [0.81, 0.84, 0.79, 0.86, 0.80]
    low, high = mean_ci(values, seed=3)
    assert (low, high) == mean_ci(values, seed=3)
    assert low < np.mean(values) < high
    assert mean_ci(values, confidence=0.5)[1] - mean_ci(values, confidence=0.5)[0] < high - low


def test_holm_matches_hand_computed_values():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> 0.06 (step-down: monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # nan stays nan and is not counted: m = 4, as above
    adjusted = holm([0.01, math.nan, 0.04, 0.03, None, 0.005])
    assert math.isnan(adjusted[1]) and math.isnan(adjusted[4])
    assert [adjusted[i] for i in (0, 2, 3, 5)] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.6, 0.7]) == [1.0, 1.0]  # 0.6 * 2 = 1.2, capped at 1; 0.7 * 1 stepped up to 1
    assert holm([0.2]) == [0.2] and holm([]) == []


def test_holm_matches_its_definition_on_random_p_values():
    # Holm (1979): with p sorted ascending, adjusted p_(k) = max over j <= k of min(1, (m - j + 1) p_(j))
    p = np.random.default_rng(0).uniform(0, 0.2, 12)
    ranked = sorted(p)
    by_definition = {v: max(min(1.0, (len(p) - j) * ranked[j]) for j in range(k + 1)) for k, v in enumerate(ranked)}
    assert holm(p) == pytest.approx([by_definition[v] for v in p])


def three_strategies() -> dict[str, dict[int, float]]:
    rng = np.random.default_rng(1)
    seed_effect = rng.normal(0, 0.02, 8)
    return {name: {s: 0.80 + shift + seed_effect[s] + rng.normal(0, 0.01) for s in range(8)}
            for name, shift in (("full", 0.03), ("lora", 0.029), ("frozen", -0.05))}


def test_comparisons_rows_apply_holm_over_the_unordered_pairs():
    scores = three_strategies()
    rows = comparisons(scores, mode="max", metric="test_accuracy", train_size=500)
    assert len(rows) == 6
    assert all(list(r) == list(stats.COLUMNS) for r in rows)
    by_pair = {(r["strategy_a"], r["strategy_b"]): r for r in rows}
    raw = {frozenset(p): r["p_value"] for p, r in by_pair.items()}
    for (a, b), r in by_pair.items():
        mirror = by_pair[b, a]
        assert r["p_value"] == pytest.approx(scipy_stats.ttest_rel(list(scores[a].values()),
                                                                    list(scores[b].values())).pvalue)
        assert r["p_value_holm"] == mirror["p_value_holm"]
        assert r["diff_mean"] == pytest.approx(-mirror["diff_mean"])
        assert (r["diff_ci_low"], r["diff_ci_high"]) == pytest.approx((-mirror["diff_ci_high"], -mirror["diff_ci_low"]))
        assert r["p_a_better"] == pytest.approx(1 - mirror["p_a_better"])
        assert (r["train_size"], r["metric"], r["n"]) == (500, "test_accuracy", 8)
    pairs = list(raw)
    expected = dict(zip(pairs, holm([raw[p] for p in pairs])))
    assert {frozenset(p): r["p_value_holm"] for p, r in by_pair.items()} == pytest.approx(expected)
    assert any(r["p_value_holm"] > r["p_value"] for r in rows)  # the correction did something


def test_comparisons_use_only_the_seeds_both_have():
    scores = {"full": {0: 0.9, 1: 0.8, 2: 0.85, 3: None}, "lora": {1: 0.7, 2: 0.75, 3: 0.7, 4: 0.9}}
    (r, _) = comparisons(scores, mode="max", metric="test_accuracy", train_size=10)
    assert r["n"] == 2 and r["diff_mean"] == pytest.approx(0.1)


def test_tied_with_best_separates_the_clearly_worse():
    scores = three_strategies()
    rows = comparisons(scores, mode="max", metric="test_accuracy", train_size=500)
    means = {s: float(np.mean(list(v.values()))) for s, v in scores.items()}
    assert tied_with_best(means, rows, mode="max") == {"full": True, "lora": True, "frozen": False}


def test_mode_min_flips_who_is_better():
    a, b = [0.30, 0.35, 0.28, 0.40], [0.32, 0.36, 0.31, 0.39]  # A lower on 3 seeds of 4
    high, low = compare_pair(a, b, mode="max"), compare_pair(a, b, mode="min")
    assert (high["p_a_better"], low["p_a_better"]) == (0.25, 0.75)
    assert high["diff_mean"] == low["diff_mean"] < 0  # in the metric's units either way
    losses = {"full": {s: 0.2 + 0.01 * s for s in range(6)}, "frozen": {s: 0.5 + 0.013 * s for s in range(6)}}
    rows = comparisons(losses, mode="min", metric="test_loss", train_size=10)
    assert rows[0]["p_a_better"] == 1.0 and rows[1]["p_a_better"] == 0.0
    means = {"full": 0.225, "frozen": 0.53}
    assert tied_with_best(means, rows, mode="min") == {"full": True, "frozen": False}
    assert tied_with_best(means, rows, mode="max") == {"full": False, "frozen": True}


def test_fewer_than_two_seeds_give_no_interval_and_no_test():
    assert all(math.isnan(v) for v in mean_ci([]) + mean_ci([0.8]))
    r = compare_pair([0.8], [0.7], mode="max")
    assert (r["n"], r["diff_mean"], r["p_a_better"]) == (1, pytest.approx(0.1), 1.0)
    assert math.isnan(r["diff_ci_low"]) and math.isnan(r["diff_ci_high"]) and math.isnan(r["p_value"])
    empty = compare_pair([], [], mode="max")
    assert empty["n"] == 0 and math.isnan(empty["diff_mean"]) and math.isnan(empty["p_a_better"])
    # no test against the best: cannot be told apart; no confirmed score at all: nothing to tie
    rows = comparisons({"full": {0: 0.9, 1: 0.9}, "lora": {0: 0.7}}, mode="max", metric="m", train_size=1)
    assert tied_with_best({"full": 0.9, "lora": 0.7, "bitfit": None}, rows, mode="max") == {
        "full": True, "lora": True, "bitfit": False}


def test_constant_values():
    assert mean_ci([0.8, 0.8, 0.8]) == (0.8, 0.8)
    same = compare_pair([0.81, 0.91, 0.71], [0.80, 0.90, 0.70], mode="max")  # +0.01 on every seed
    assert same["p_value"] == 0.0 and same["p_a_better"] == 1.0
    assert same["diff_ci_low"] == pytest.approx(0.01) and same["diff_ci_high"] == pytest.approx(0.01)
    equal = compare_pair([0.8, 0.9, 0.7], [0.8, 0.9, 0.7], mode="max")
    assert (equal["p_value"], equal["p_a_better"], equal["diff_ci_low"], equal["diff_ci_high"]) == (1.0, 0.5, 0, 0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="paired"):
        compare_pair([0.8, 0.9], [0.8], mode="max")
    with pytest.raises(ValueError, match="finite"):
        mean_ci([0.8, math.nan])
    with pytest.raises(ValueError, match="mode"):
        compare_pair([0.8, 0.9], [0.7, 0.8], mode="up")
    rows = [{"train_size": 1, "strategy_a": "a", "strategy_b": "b", "p_value_holm": 0.5},
            {"train_size": 2, "strategy_a": "a", "strategy_b": "b", "p_value_holm": 0.5}]
    with pytest.raises(ValueError, match="one train size"):
        tied_with_best({"a": 0.5, "b": 0.6}, rows, mode="max")
