"""Training-set sizes: nested, stratified, seeded subsets; the spec's checks; a confirm trial's test scores."""
from __future__ import annotations

import numpy as np
import pytest

from raytune_ft.data.subsets import Shots, TrainSubset, resolve_sizes
from raytune_ft.errors import SpecError
from raytune_ft.spec import parse_job
from tests.conftest import vision_spec

# an unbalanced train split: 10 classes of 40..130 samples, shuffled
COUNTS = [40, 50, 60, 70, 80, 90, 100, 110, 120, 130]
LABELS = np.random.default_rng(3).permutation(np.repeat(np.arange(10), COUNTS))


def test_counts_are_nested_and_stratified():
    subsets = resolve_sizes([50, 0.25, 400, 1.0], COUNTS, seed=7)
    assert [s.size for s in subsets] == [50, 212, 400, 850]
    before: set = set()
    for s in subsets:
        rows = s.indices(LABELS)
        assert len(rows) == len(set(rows)) == s.size and rows == sorted(rows)
        assert before <= set(rows)  # every smaller subset is inside the larger one
        before = set(rows)
        got = np.bincount(LABELS[rows], minlength=10)
        share = np.array(COUNTS) * s.size / sum(COUNTS)
        assert np.all(np.abs(got - share) <= 1.5), (s.size, got, share)  # each class its share, to about 1
        assert got.min() >= 1


def test_the_same_seed_gives_the_same_samples_and_another_seed_others():
    a = TrainSubset(count=100, size=100, seed=1).indices(LABELS)
    assert a == TrainSubset(count=100, size=100, seed=1).indices(LABELS)
    assert a != TrainSubset(count=100, size=100, seed=2).indices(LABELS)


def test_shots_take_k_of_each_class_nested():
    one, five = (resolve_sizes([Shots(shots=k)], [3, *COUNTS[1:]])[0] for k in (1, 5))
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(10), [3, *COUNTS[1:]]))
    r1, r5 = one.indices(labels), five.indices(labels)
    assert np.bincount(labels[r1]).tolist() == [1] * 10
    assert np.bincount(labels[r5]).tolist() == [3] + [5] * 9 and five.size == 48  # a class of 3 gives its 3
    assert set(r1) <= set(r5) and five.label() == "5-shot"


@pytest.mark.parametrize("sizes, says", [
    ([5000], "data.train_sizes[0]: 5000 is more than the 850 training samples"),
    ([4], "fewer than the 10 classes"),
    ([100, 100], "data.train_sizes[1]: the same subset as entry 0"),
])
def test_sizes_that_cannot_be_made_are_refused_by_name(sizes, says):
    with pytest.raises(ValueError, match=says.replace("[", r"\[").replace("]", r"\]")):
        resolve_sizes(sizes, COUNTS)


@pytest.mark.parametrize("field, value, says", [
    ("data.train_sizes", [1], "a count of samples is at least 2"),
    ("data.train_sizes", [1.5], "a fraction of train is in (0, 1]"),
    ("data.train_sizes", [{"shots": 0}], "greater than or equal to 1"),
    ("search.confirm", {"top_k": 1, "seeds": 1}, "greater than or equal to 2"),
    ("search.confirm", {"top_k": 3, "seeds": 2}, "search.confirm.top_k: 3 is more than the 1 trials"),
])
def test_the_spec_refuses_bad_sizes_and_confirm_settings(resnet_weights, field, value, says):
    spec = vision_spec(resnet_weights)
    section, key = field.split(".")
    spec[section] = {**spec[section], key: value}
    with pytest.raises(SpecError) as e:
        parse_job(spec)
    assert field in str(e.value) and says in str(e.value)


def test_a_confirm_trial_trains_on_its_subset_and_scores_test_at_its_best_epoch(resnet_weights, tmp_path):
    from raytune_ft.data import prepare_data
    from raytune_ft.train.config import trial_config
    from raytune_ft.train.loop import train_trial

    job = parse_job(vision_spec(resnet_weights, training={"epochs": 3, "patience": 1}))
    meta = prepare_data(job, tmp_path / "data")
    subset = resolve_sizes([40], meta["splits"]["train"]["class_counts"])[0]
    config = trial_config(job, tmp_path / "data", tmp_path / "t", {"name": "full"},
                          {"lr": 1e-3, "batch_size": 16}, seed=5, stage="confirm", train_subset=subset.model_dump())
    assert config.training.patience is None  # a confirm trial runs every epoch
    history = train_trial(config, report=lambda m: None)
    assert [m["epoch"] for m in history] == [1, 2, 3] and all(m["train_samples"] == 40 for m in history)
    best = -1.0
    for m in history:
        improved = m["val_accuracy"] > best
        assert ("test_accuracy" in m) == improved  # scored on test exactly at the epochs better than all before
        best = max(best, m["val_accuracy"])
    search = trial_config(job, tmp_path / "data", tmp_path / "s", {"name": "full"}, {"lr": 1e-3, "batch_size": 16})
    assert "test_accuracy" not in train_trial(search.with_training(epochs=1), report=lambda m: None)[0]
