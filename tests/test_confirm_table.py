"""The strategy table with the confirm stage: which configuration is confirmed, its interval, the pairs."""
from __future__ import annotations

import pytest

from raytune_ft.analysis.confirm import strategy_table


def search(strategy, i, score, size=100):
    return {"strategy": strategy, "trial_id": f"{strategy}{i}@{size}", "stage": "search", "status": "completed",
            "score": score, "wall_seconds": 10.0, "train_size": size, "trainable_fraction": 1.0,
            "trainable_params": 10, "lr": 0.01 * (i + 1), f"{strategy}.r": 4}


def confirm(strategy, source, seed, val, test, size=100):
    return {"strategy": strategy, "trial_id": f"c-{source}-{seed}", "stage": "confirm", "status": "completed",
            "source_trial_id": source, "seed": seed, "score": val, "test_accuracy": test, "wall_seconds": 20.0,
            "train_size": size, "lr": 0.5, f"{strategy}.r": 8}


def test_the_confirmed_configuration_is_chosen_on_validation_and_reported_on_test():
    rows = [search("full", 0, 0.9), search("full", 1, 0.8), search("lora", 0, 0.7)]
    # full0 has the better test scores but the worse validation mean: full1 is confirmed (no peeking at test)
    rows += [confirm("full", "full0@100", s, 0.70, 0.99) for s in range(3)]
    rows += [confirm("full", "full1@100", s, 0.80, 0.90 + 0.01 * s) for s in range(3)]
    rows += [confirm("lora", "lora0@100", s, 0.75, 0.60 + 0.01 * s) for s in range(3)]
    table, pairs = strategy_table(rows, "max", "val_accuracy")
    by = {r["strategy"]: r for r in table}
    assert [r["strategy"] for r in table] == ["full", "lora"]
    assert by["full"]["confirm_trial_id"] == "full1@100" and by["full"]["confirm_mean"] == pytest.approx(0.91)
    assert by["full"]["confirm_n"] == 3 and by["full"]["confirm_std"] == pytest.approx(0.01)
    assert by["full"]["ci_low"] < 0.91 < by["full"]["ci_high"]
    assert by["full"]["confirm_compute_seconds"] == 120.0 and by["full"]["compute_seconds"] == 20.0
    assert by["full"]["best_score"] == 0.9  # the search's own number stays beside it
    # two strategies need 6 seeds for a claim: with 3 the intervals are there and nobody is told apart
    assert by["full"]["standing"] == "highest mean" and by["lora"]["standing"] == "too few seeds"
    assert by["full"]["claim_seeds"] == 6
    assert by["lora"]["seeds_needed"] is None  # the same gap on every seed, no grid known: no spread to plan by
    assert [(p["strategy_a"], p["strategy_b"]) for p in pairs] == [("full", "lora"), ("lora", "full")]
    assert pairs[0]["diff_mean"] == pytest.approx(0.30) and pairs[0]["p_a_better"] == 1.0
    assert pairs[0]["metric"] == "test_accuracy" and pairs[0]["n"] == 3


def test_each_train_size_is_its_own_comparison_and_loss_ranks_low_first():
    rows = []
    for size in (50, 200):
        rows += [search("full", 0, 0.5, size), search("lora", 0, 0.4, size)]
        for s in range(6):
            rows += [{**confirm("full", f"full0@{size}", s, 0.5, None, size), "test_loss": 1.0 + 0.01 * s},
                     {**confirm("lora", f"lora0@{size}", s, 0.4, None, size), "test_loss": 2.0 + 0.02 * s}]
    table, pairs = strategy_table(rows, "min", "val_loss")
    assert [(r["train_size"], r["strategy"]) for r in table] == [(50, "full"), (50, "lora"), (200, "full"), (200, "lora")]
    assert {p["train_size"] for p in pairs} == {50, 200} and len(pairs) == 4
    assert all(p["metric"] == "test_loss" for p in pairs)
    full_vs_lora = next(p for p in pairs if p["strategy_a"] == "full" and p["train_size"] == 50)
    assert full_vs_lora["p_a_better"] == 1.0  # lower loss beats
    assert table[0]["standing"] == "best" and table[1]["standing"] == "below"
    assert table[1]["vs_best_low"] > 0  # its loss minus the best's: above 0 is worse
    assert full_vs_lora["told_apart"] and full_vs_lora["diff_ci_high"] < 0


def test_tied_test_accuracies_are_floored_at_the_test_splits_grid():
    # every seed of full scores the same accuracy on a 50-sample test split: its interval is not [m, m]
    rows = [search("full", 0, 0.9), search("lora", 0, 0.8)]
    rows += [{**confirm("full", "full0@100", s, 0.8, 0.90), "test_samples": 50} for s in range(6)]
    rows += [{**confirm("lora", "lora0@100", s, 0.7, 0.80 + 0.02 * (s % 2)), "test_samples": 50} for s in range(6)]
    table, pairs = strategy_table(rows, "max", "val_accuracy")
    full = next(r for r in table if r["strategy"] == "full")
    assert full["ci_low"] < 0.90 < full["ci_high"] and full["ci_high"] - full["ci_low"] < 0.05
    assert full["standing"] == "best"


def test_without_a_confirm_stage_the_table_is_the_search_table():
    table, pairs = strategy_table([search("full", 0, 0.9), search("lora", 0, 0.95)], "max", "val_accuracy")
    assert pairs == [] and [r["strategy"] for r in table] == ["lora", "full"]
    assert "confirm_mean" not in table[0] and table[0]["train_size"] == 100
