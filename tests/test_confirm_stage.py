"""What the confirm stage reports on, without Ray: the configuration chosen on seeds that never report (the
winner's curse, simulated), the data drawn anew per seed (search.confirm.vary_data), and validation capped
to the training set (data.cap_validation)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from raytune_ft.analysis.confirm import strategy_table
from raytune_ft.data import load_split, prepare_data
from raytune_ft.data.subsets import resolve_sizes
from raytune_ft.spec import parse_job
from raytune_ft.sweep.confirm import chosen_candidates, stage_seeds
from raytune_ft.sweep.records import TrialRecord
from raytune_ft.train.config import trial_config
from raytune_ft.train.tasks import Tasks
from raytune_ft.train.trial_data import load_trial_data
from tests.conftest import vision_spec

SEARCH = {"strategy": "lora", "trial_id": "s0", "stage": "search", "status": "completed", "score": 0.8,
          "wall_seconds": 1.0, "train_size": 100, "trainable_fraction": 1.0, "trainable_params": 1}
JOB = SimpleNamespace(search=SimpleNamespace(metric="val_accuracy", mode="max", seed=0,
                                             confirm=SimpleNamespace(top_k=3, seeds=5, selection_seeds=5)))


def one_experiment(rng, *, separate_seeds: bool) -> float:
    """3 candidates of one strategy, all with the same true test accuracy 0.80: what the strategy's confirmed
    score comes out as. A seed moves validation and test together (sd 0.03); each split adds its own noise."""
    def scores(seeds):  # (validation, test) per candidate and seed
        shared = rng.normal(0, 0.03, (3, seeds))
        return 0.80 + shared + rng.normal(0, 0.01, (3, seeds)), 0.80 + shared + rng.normal(0, 0.01, (3, seeds))

    candidates = [{"strategy": {"name": "lora"}, "train_subset": None, "source_trial_id": f"s{i}"} for i in range(3)]
    if separate_seeds:  # the select stage chooses on its own seeds; only the chosen one is confirmed
        val, _ = scores(5)
        records = {f"x{i}{k}": TrialRecord(strategy={"name": "lora"}, stage="select", source_trial_id=f"s{i}",
                                           status="completed", history=[{"epoch": 1, "val_accuracy": val[i, k]}])
                   for i in range(3) for k in range(5)}
        (chosen,) = chosen_candidates(JOB, records, candidates)
        confirmed = [chosen]
    else:  # as before: every candidate confirmed on the same seeds, chosen on those seeds' validation
        confirmed = candidates
    val, test = scores(5)
    rows = [SEARCH]
    rows += [{"strategy": "lora", "trial_id": f"c{c['source_trial_id']}{k}", "stage": "confirm", "seed": k,
              "source_trial_id": c["source_trial_id"], "status": "completed", "score": val[i, k],
              "test_accuracy": test[i, k], "train_size": 100, "wall_seconds": 1.0}
             for i, c in enumerate(confirmed) for k in range(5)]
    table, _ = strategy_table(rows, "max", "val_accuracy")
    return table[0]["confirm_mean"]


def test_the_seeds_that_choose_a_configuration_do_not_report_its_test_score():
    rng = np.random.default_rng(10)
    before = np.mean([one_experiment(rng, separate_seeds=False) for _ in range(1000)]) - 0.80
    after = np.mean([one_experiment(rng, separate_seeds=True) for _ in range(1000)]) - 0.80
    assert before > 0.008  # the winner's curse: the chosen configuration's own seeds flatter it (+0.011)
    assert abs(after) < 0.003  # chosen on other seeds: no bias (its standard error here is ~0.001)


def test_select_and_confirm_seeds_are_their_own():
    select, confirm = stage_seeds(JOB, "select"), stage_seeds(JOB, "confirm")
    assert len(select) == len(confirm) == 5 and not set(select) & set(confirm)


def test_chosen_candidates_skip_a_candidate_whose_select_trials_failed():
    candidates = [{"strategy": {"name": "full"}, "train_subset": None, "source_trial_id": s} for s in ("a", "b")]
    records = {"1": TrialRecord(strategy={"name": "full"}, stage="select", source_trial_id="a", status="error"),
               "2": TrialRecord(strategy={"name": "full"}, stage="select", source_trial_id="b", status="completed",
                                history=[{"epoch": 1, "val_accuracy": 0.1}])}
    assert [c["source_trial_id"] for c in chosen_candidates(JOB, records, candidates)] == ["b"]


def test_select_trials_cost_compute_and_the_covers_column_says_what_varied():
    rows = [{**SEARCH, "strategy": "full", "trial_id": "s", "score": 0.9, "wall_seconds": 10.0, "train_size": 10}]
    rows += [{"strategy": "full", "trial_id": f"x{k}", "stage": "select", "seed": k, "source_trial_id": "s",
              "status": "completed", "score": 0.9, "wall_seconds": 5.0, "train_size": 10} for k in range(2)]
    rows += [{"strategy": "full", "trial_id": f"c{k}", "stage": "confirm", "seed": 10 + k, "source_trial_id": "s",
              "status": "completed", "score": 0.9, "test_accuracy": 0.8 + 0.01 * k, "wall_seconds": 20.0,
              "train_size": 10, "data_seed": 10 + k} for k in range(3)]
    (row,), _ = strategy_table(rows, "max", "val_accuracy")
    assert row["confirm_compute_seconds"] == 70.0 and row["confirm_n"] == 3
    assert row["confirm_covers"] == "seeds and data drawn (vary_data)"


@pytest.fixture(scope="module")
def digits(resnet_weights, tmp_path_factory):
    job = parse_job(vision_spec(resnet_weights, data={"source": "digits", "max_train_samples": 200,
                                                      "cap_validation": True},
                                search={"num_samples": 1, "hparams": {"lr": 1e-3, "batch_size": 16},
                                        "confirm": {"seeds": 2, "vary_data": True}}))
    data = tmp_path_factory.mktemp("data")
    return job, data, prepare_data(job, data)


def test_vary_data_splits_train_and_validation_again_per_seed(digits, tmp_path):
    job, data, meta = digits
    configs = {seed: trial_config(job, data, tmp_path / str(seed), {"name": "full"}, {"lr": 1e-3, "batch_size": 16},
                                  seed=seed, stage="confirm") for seed in (1, 2)}
    assert configs[1].data_seed == 1
    assert trial_config(job, data, tmp_path / "s", {"name": "full"}, {"lr": 1e-3}, seed=1).data_seed is None
    loaded = {seed: load_trial_data(c.model_copy(update={"cap_validation": False}), 1) for seed, c in configs.items()}
    prepared = {s: load_split(data, s) for s in ("train", "validation")}
    for d in loaded.values():  # the same sizes as prepared, rows from both prepared splits
        assert d.train_samples == len(prepared["train"]["labels"]) and d.val_samples == len(prepared["validation"]["labels"])
        assert d.test_loader is not None and len(d.test_loader.dataset) == meta["splits"]["test"]["samples"]
    images = {seed: {bytes(d.train_set["pixel_values"][i].numpy()) for i in range(d.train_samples)}
              for seed, d in loaded.items()}
    assert images[1] != images[2]  # another seed, another split
    pool = {bytes(prepared[s]["pixel_values"][i].numpy()) for s in prepared for i in range(len(prepared[s]["labels"]))}
    assert images[1] <= pool
    again = load_trial_data(configs[1].model_copy(update={"cap_validation": False}), 1)
    assert {bytes(again.train_set["pixel_values"][i].numpy()) for i in range(again.train_samples)} == images[1]
    counts = Tasks.from_meta(meta).class_counts(loaded[1].train_set["labels"])[0]
    assert min(counts) > 0  # stratified: every class in train


def test_cap_validation_validates_on_no_more_samples_than_train(digits, tmp_path):
    job, data, meta = digits
    subset = resolve_sizes([30], meta["splits"]["train"]["class_counts"])[0]
    config = trial_config(job, data, tmp_path / "t", {"name": "full"}, {"lr": 1e-3, "batch_size": 16},
                          train_subset=subset.model_dump())
    assert config.cap_validation
    capped = load_trial_data(config, 1)
    assert capped.train_samples == 30 and capped.val_samples == 30
    labels = capped.val_loader.dataset.tensors["labels"]
    assert len(set(labels.tolist())) == 10  # stratified over digits' ten classes
    whole = load_trial_data(config.model_copy(update={"cap_validation": False}), 1)
    assert whole.val_samples == meta["splits"]["validation"]["samples"] > 30
