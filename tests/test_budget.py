"""raytune_ft.analysis.budget: the expected best after n trials against exact enumeration, its opda band, and
where the leading strategy changes on cases built so that we know the answer."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from raytune_ft.analysis.budget import budget_curves, crossovers, expected_best, metric_bounds

SCORES = [0.62, 0.5, 0.91, 0.5, 0.77]  # a tie included


@pytest.mark.parametrize("mode, pick", [("max", max), ("min", min)])
def test_expected_best_is_the_mean_best_over_every_draw_with_replacement(mode, pick):
    for n in (1, 2, 3, 4):
        draws = itertools.product(SCORES, repeat=n)  # all 5^n equally likely draws
        exact = np.mean([pick(d) for d in draws])
        assert expected_best(SCORES, n, mode) == pytest.approx(exact, abs=1e-12)


def test_expected_best_of_one_trial_is_the_mean_and_grows_towards_the_best():
    ns = np.arange(1, 60)
    high, low = expected_best(SCORES, ns, "max"), expected_best(SCORES, ns, "min")
    assert high[0] == pytest.approx(np.mean(SCORES)) and low[0] == pytest.approx(np.mean(SCORES))
    assert np.all(np.diff(high) > 0) and np.all(np.diff(low) < 0)
    assert high[-1] == pytest.approx(max(SCORES), abs=1e-4) and low[-1] == pytest.approx(min(SCORES), abs=1e-3)
    assert isinstance(expected_best(SCORES, 3, "max"), float) and high.shape == ns.shape


def test_metric_bounds():
    assert metric_bounds("val_accuracy") == metric_bounds("test_f1") == (0.0, 1.0)
    assert metric_bounds("val_loss") == (0.0, math.inf)
    assert metric_bounds("perplexity") == (-math.inf, math.inf)


def trial(strategy, score, *, wall=10.0, status="completed", train_size=100, **extra):
    return {"strategy": strategy, "train_size": train_size, "score": score, "wall_seconds": wall,
            "status": status, **extra}


def test_budget_curves_rows():
    trials = [trial("full", s, wall=20.0) for s in SCORES]
    trials += [trial("full", None, status="error", wall=5.0), trial("full", 0.99, status="error", wall=5.0),
               trial("full", 0.99, stage="confirm"), trial("lora", 0.7, train_size=50)]
    rows = budget_curves(trials, mode="max", bounds=(0.0, 1.0))
    full = [r for r in rows if r["strategy"] == "full"]
    assert [r["trials"] for r in full] == [1, 2, 3, 4, 5]  # errors and the confirm trial are not scored
    per_trial = (5 * 20.0 + 2 * 5.0) / 5  # the failed trials cost compute too; the confirm trial is not search
    assert [r["compute_seconds"] for r in full] == pytest.approx([n * per_trial for n in range(1, 6)])
    assert [r["expected_best"] for r in full] == pytest.approx(expected_best(SCORES, np.arange(1, 6), "max"))
    assert {(r["strategy"], r["train_size"]) for r in rows} == {("full", 100), ("lora", 50)}
    assert all(r["band_method"].startswith("opda ") for r in rows)


@pytest.mark.parametrize("mode, metric", [("max", "val_accuracy"), ("min", "val_loss")])
def test_bands_contain_the_curve_and_stay_within_the_bounds(mode, metric):
    low_bound, high_bound = metric_bounds(metric)
    scores = np.random.default_rng(3).beta(8, 3, 12)
    rows = budget_curves([trial("full", s) for s in scores] + [trial("one", 0.7)], mode=mode,
                         bounds=(low_bound, high_bound))
    for r in rows:
        assert low_bound <= r["band_low"] <= r["expected_best"] <= r["band_high"] <= high_bound
    if mode == "min":  # a loss has no upper bound: nor has the worst case of its expected minimum
        assert all(r["band_high"] == math.inf for r in rows)
    (one,) = [r for r in rows if r["strategy"] == "one"]  # a single trial: the band spans nearly the range
    if mode == "max":
        assert one["band_low"] < 0.1 and one["band_high"] > 0.9


def test_band_covers_a_known_curve():
    # uniform(0, 1) scores: the true expected best of n is n / (n + 1); a 95 % band holds for the whole curve
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(20):
        rows = budget_curves([trial("full", s) for s in rng.uniform(0, 1, 10)], mode="max", bounds=(0.0, 1.0))
        covered += all(r["band_low"] <= r["trials"] / (r["trials"] + 1) <= r["band_high"] for r in rows)
    assert covered >= 17
    assert all(r["band_high"] - r["band_low"] < 0.7 for r in rows)  # and it is not just the bounds (width 1)


def test_scores_outside_the_bounds_are_refused():
    with pytest.raises(ValueError, match="outside the bounds"):
        budget_curves([trial("full", 1.5)], mode="max", bounds=(0.0, 1.0))


def separated_trials(flip=False):
    """good: 16 trials scoring 0.93-0.97; bad: 16 scoring 0.2-0.4 (10 s each). flip: as losses (1 - score)."""
    rng = np.random.default_rng(0)
    scores = {"good": rng.uniform(0.93, 0.97, 16), "bad": rng.uniform(0.2, 0.4, 16)}
    return [trial(s, 1 - v if flip else v) for s in scores for v in scores[s]]


def test_a_strategy_leads_only_where_its_band_clears_every_other():
    rows = budget_curves(separated_trials(), mode="max", bounds=(0.0, 1.0))
    # from 8 trials on, bad's band reaches up to good's: 8 draws of a distribution known from 16 scores could
    # hold a trial as good as good's, so no claim there, however far apart the curves are
    assert crossovers(rows, mode="max") == [
        "With 100 training samples: up to 7 trials, good leads; from 8 trials on, no strategy is told apart "
        "from the others (compared up to 16 trials)."]
    assert crossovers(rows, mode="max", x="compute_seconds") == [
        "With 100 training samples: up to 70 s, good leads; from 80 s on, no strategy is told apart from the "
        "others (compared up to 160 s)."]
    for r in rows:  # where a claim is made, the bands say so
        if r["strategy"] == "good" and r["trials"] <= 7:
            other = next(o for o in rows if o["strategy"] == "bad" and o["trials"] == r["trials"])
            assert r["band_low"] > other["band_high"]
    # a loss is unbounded above, so every band's worse side is infinite: no curve is ever told apart
    losses = budget_curves(separated_trials(flip=True), mode="min", bounds=(0.0, math.inf))
    assert "cannot be told apart at any budget" in crossovers(losses, mode="min")[0]
    bounded = budget_curves(separated_trials(flip=True), mode="min", bounds=(0.0, 1.0))
    assert crossovers(bounded, mode="min")[0].startswith("With 100 training samples: up to 7 trials, good leads")


def test_under_one_distribution_at_most_5_percent_of_sweeps_claim_a_leader():
    # the case: two strategies drawn from one distribution, 8 trials each ("B leads at every budget")
    rng = np.random.default_rng(5)
    claims = 0
    for _ in range(300):
        rows = budget_curves([trial(s, v) for s in ("a", "b") for v in rng.beta(8, 3, 8)], mode="max",
                             bounds=(0.0, 1.0))
        said = crossovers(rows, mode="max") + crossovers(rows, mode="max", x="compute_seconds")
        claims += any("leads" in s for s in said)
    assert claims / 300 <= 0.05


def test_curves_that_cross_inside_their_bands_are_not_told_apart():
    # lora: 0.9 on every trial; full: 1.0 on a quarter of its trials, 0.5 on the rest: full's expected best
    # passes lora's at 6 trials, and 0.78 vs 0.77-style gaps at 1-2 trials are inside bands spanning 0.2-1.0
    scores = {"lora": [0.9] * 16, "full": [0.5] * 6 + [1.0] * 2}
    rows = budget_curves([trial(s, v, wall=5.0 if s == "lora" else 10.0) for s in scores for v in scores[s]],
                         mode="max", bounds=(0.0, 1.0))
    assert crossovers(rows, mode="max") == [
        "With 100 training samples: the strategies cannot be told apart at any budget (1 trial to 8 trials): "
        "their 95 % bands overlap, whatever the order of the curves."]
    # a has only 3 trials: past them it is not measured, so budgets are compared up to 3
    short = budget_curves([trial("a", 0.8)] * 3 + [trial("b", 0.5)] * 9 + [trial("b", 1.0)], mode="max")
    assert crossovers(short, mode="max")[0].endswith("(1 trial to 3 trials): their 95 % bands overlap, whatever "
                                                     "the order of the curves.")
    assert crossovers([r for r in rows if r["strategy"] == "lora"], mode="max") == []


def test_a_draw_costs_the_failed_trials_too_and_stopped_draws_are_counted():
    # the case: 4 scored at 100 s and 4 failed at 2 s: a scored draw costs 102 s, not 51
    trials = [trial("full", 0.8 + 0.01 * i, wall=100.0) for i in range(4)]
    trials += [trial("full", None, status="error", wall=2.0) for _ in range(4)]
    trials[0]["status"] = "stopped_early"
    rows = budget_curves(trials, mode="max", bounds=(0.0, 1.0))
    assert [r["compute_seconds"] for r in rows] == pytest.approx([102.0, 204.0, 306.0, 408.0])
    assert {(r["draws"], r["stopped_draws"]) for r in rows} == {(4, 1)}
