"""raytune_ft.results.budget: the expected best after n trials against exact enumeration, its opda band, and
where the leading strategy changes on cases built so that we know the answer."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from raytune_ft.results.budget import budget_curves, crossovers, expected_best, metric_bounds

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
    per_trial = (5 * 20.0 + 2 * 5.0) / 7  # the failed trials cost compute too; the confirm trial is not search
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


def crossing_trials(train_size=100, flip=False):
    """lora: 0.9 on every trial (5 s each). full: 1.0 on a quarter of its trials, 0.5 on the rest (10 s each),
    so its expected best after n is 1 - 0.5 * 0.75^n: 0.8577 at n = 5, 0.9110 at n = 6 -> full leads from 6.
    flip: the same as losses (1 - score), to be minimised."""
    scores = {"lora": [0.9] * 16, "full": [0.5] * 6 + [1.0] * 2}
    walls = {"lora": 5.0, "full": 10.0}
    return [trial(s, 1 - v if flip else v, wall=walls[s], train_size=train_size) for s in scores for v in scores[s]]


def test_crossovers_name_where_the_leader_changes():
    rows = budget_curves(crossing_trials(), mode="max", bounds=(0.0, 1.0))
    assert crossovers(rows, mode="max") == [
        "With 100 training samples: below 6 trials lora is the better bet; from 6 trials on, full "
        "(compared up to 8 trials)."]
    # on compute: full's 6 trials cost 60 s; curves compared up to 80 s (both have 80 s of trials)
    assert crossovers(rows, mode="max", x="compute_seconds") == [
        "With 100 training samples: below 60 s lora is the better bet; from 60 s on, full (compared up to 80 s)."]


def test_crossovers_for_losses_and_without_a_change():
    losses = budget_curves(crossing_trials(flip=True), mode="min", bounds=(0.0, math.inf))
    assert crossovers(losses, mode="min") == [
        "With 100 training samples: below 6 trials lora is the better bet; from 6 trials on, full "
        "(compared up to 8 trials)."]
    steady = [r for r in budget_curves(crossing_trials(), mode="max", bounds=(0.0, 1.0)) if r["trials"] <= 5]
    assert crossovers(steady, mode="max") == [
        "With 100 training samples: lora leads at every budget (1 trial to 5 trials)."]
    # b would overtake a at 9 trials (1 - 0.5 * 0.9^n > 0.8), but a has only 3: past them a is not measured
    short = budget_curves([trial("a", 0.8)] * 3 + [trial("b", 0.5)] * 9 + [trial("b", 1.0)], mode="max")
    assert crossovers(short, mode="max") == ["With 100 training samples: a leads at every budget (1 trial to 3 trials)."]
    alone = [r for r in steady if r["strategy"] == "lora"]
    assert crossovers(alone, mode="max") == []
