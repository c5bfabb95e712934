"""Few-shot: `data.shots` (k per class, the same draw as train_sizes' {shots: k}) and the prototype head
(cosine to class prototypes that start as the pretrained features' class means)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from raytune_ft.data.subsets import Shots, TrainSubset, resolve_sizes
from raytune_ft.errors import InputError, SpecError
from raytune_ft.models.classifier import Classifier
from raytune_ft.models.heads import PrototypeHead, class_features
from raytune_ft.spec import parse_job
from raytune_ft.sweep.run import train_subsets
from tests.conftest import vision_spec

COUNTS = [40, 50, 60, 70, 80, 90, 100, 110, 120, 130]
LABELS = np.random.default_rng(3).permutation(np.repeat(np.arange(10), COUNTS))
META = {"classes": [str(c) for c in range(10)], "splits": {"train": {"class_counts": COUNTS}}}


def shots_job(weights, shots, seed=0, **data):
    return parse_job(vision_spec(weights, data={"source": "digits", "shots": shots, "seed": seed, **data}))


# ---------------------------------------------------------------- data.shots


def test_shots_draw_k_of_every_class_seeded_and_as_train_sizes_does(resnet_weights):
    (five,) = train_subsets(shots_job(resnet_weights, 5, seed=7), META)
    rows = TrainSubset(**five).indices(LABELS)
    assert np.bincount(LABELS[rows], minlength=10).tolist() == [5] * 10 and five["size"] == 50
    assert len(set(rows)) == 50
    # the same draw as a train size of 5 shots, and nested with the train sizes' other shots
    sized = parse_job(vision_spec(resnet_weights, data={"source": "digits", "seed": 7,
                                                          "train_sizes": [{"shots": 1}, {"shots": 5}, {"shots": 20}]}))
    one, same, twenty = (TrainSubset(**s).indices(LABELS) for s in train_subsets(sized, META))
    assert same == rows and set(one) < set(rows) < set(twenty)
    # seeded: the same seed again gives the same samples, another seed others
    (again,) = train_subsets(shots_job(resnet_weights, 5, seed=7), META)
    (other,) = train_subsets(shots_job(resnet_weights, 5, seed=8), META)
    assert TrainSubset(**again).indices(LABELS) == rows and TrainSubset(**other).indices(LABELS) != rows


def test_a_class_with_fewer_samples_than_the_shots_is_refused_by_name(resnet_weights):
    meta = {**META, "classes": ["cat", "dog", *META["classes"][2:]],
            "splits": {"train": {"class_counts": [3, 50, *COUNTS[2:]]}}}
    with pytest.raises(InputError, match=r"data.shots: 5 samples per class, but in the train split class 'cat' "
                                         r"has 3: lower data.shots to 3"):
        train_subsets(shots_job(resnet_weights, 5), meta)
    # train_sizes' {shots: 5} takes all 3 of that class, as documented
    (subset,) = resolve_sizes([Shots(shots=5)], [3, 50, *COUNTS[2:]])
    assert subset.size == 48


@pytest.mark.parametrize("section, change, says", [
    ("data", {"shots": 5, "train_sizes": [{"shots": 1}]}, "data.shots (5) and data.train_sizes are both set"),
    ("data", {"shots": 0}, "data.shots: Input should be greater than or equal to 1"),
    ("model", {"head": "cosine"}, "model.head: Input should be 'linear' or 'prototype'; got 'cosine'"),
    ("model", {"head_scale": 10}, "head_scale is set but head is 'linear'"),
    ("model", {"head": "prototype", "head_scale": 0}, "head_scale: Input should be greater than 0"),
])
def test_the_spec_says_what_is_wrong(resnet_weights, section, change, says):
    spec = vision_spec(resnet_weights)
    spec[section] = {**spec[section], **change}
    with pytest.raises(SpecError) as e:
        parse_job(spec)
    assert says in str(e.value).replace("\n", " "), str(e.value)


# ---------------------------------------------------------------- the prototype head


def tiny_classifier(num_classes=3, feature_dim=4) -> Classifier:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(6, feature_dim), nn.BatchNorm1d(feature_dim), nn.Dropout(0.5))
    model = Classifier(backbone, feature_dim, num_classes, "vision")
    model.head = PrototypeHead(feature_dim, num_classes, scale=12.0)
    return model


def test_logits_are_the_scale_times_the_cosine_to_each_prototype():
    head = PrototypeHead(4, 3, scale=12.0)
    x = torch.randn(5, 4)
    cos = torch.stack([torch.stack([torch.dot(a, w) / (a.norm() * w.norm()) for w in head.weight]) for a in x])
    assert torch.allclose(head(x), 12.0 * cos, atol=1e-5)
    with torch.no_grad():
        head.weight.mul_(7.0)  # the length of a prototype does not matter, its direction does
    assert torch.allclose(head(x), 12.0 * cos, atol=1e-5)


def test_prototypes_start_as_the_class_means_of_the_normalised_eval_mode_features():
    model = tiny_classifier()
    x, y = torch.randn(12, 2, 3), torch.tensor([0, 1, 2] * 3 + [0, 0, 1])
    model.train()
    features, labels = class_features(model, [({"pixel_values": x[:7]}, y[:7]), ({"pixel_values": x[7:]}, y[7:])])
    assert model.training and model.backbone[2].training  # modes put back
    model.eval()
    with torch.no_grad():
        expected = model.backbone(x)  # eval mode: BatchNorm's running statistics, no dropout
    assert torch.allclose(features, expected) and torch.equal(labels, y)
    absent = model.head.set_prototypes(features, labels)
    unit = nn.functional.normalize(expected, dim=1)
    for c in range(3):
        mean = unit[y == c].mean(0)
        assert torch.allclose(model.head.weight[c], mean / mean.norm(), atol=1e-6)
    assert absent == []
    # a class without samples keeps its start
    before = model.head.weight[2].clone()
    assert model.head.set_prototypes(features[y != 2], y[y != 2]) == [2]
    assert torch.equal(model.head.weight[2], before)


@pytest.mark.parametrize("strategy", [{"name": "feature_extraction"}, {"name": "lora", "r": 2},
                                      {"name": "gradual_unfreeze", "every_epochs": 1}, {"name": "full"}])
def test_the_prototype_head_is_model_head_and_trains_under_every_strategy(resnet_weights, strategy):
    from raytune_ft.strategies import get_strategy
    from raytune_ft.train.model import build_trial_model

    spec = {**parse_job(vision_spec(resnet_weights)).resolved()["model"], "head": "prototype", "head_scale": 10.0}
    set_to = {}

    def init(model):  # what the worker's class means would do, before the strategy applies
        with torch.no_grad():
            model.head.weight.fill_(0.5)
        set_to["at"] = type(model.backbone).__name__

    model, applied, cfg = build_trial_model(spec, strategy, 0.0, 10, head_init=init)
    assert isinstance(model.head, PrototypeHead) and model.head.scale == 10.0 and set_to["at"] == "ResNet"
    assert torch.all(model.head.weight == 0.5)  # peft's wrapping after the init kept it
    groups = applied.groups(model, cfg)
    assert groups["head"] == ["head.weight"] and model.head.weight.requires_grad
    if strategy["name"] == "feature_extraction":
        assert {n for n, p in model.named_parameters() if p.requires_grad} == {"head.weight"}
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        backbone = {n: p.clone() for n, p in model.backbone.named_parameters()}
        model.eval()
        loss = nn.functional.cross_entropy(model(pixel_values=torch.randn(4, 3, 16, 16)), torch.tensor([0, 1, 2, 3]))
        loss.backward()
        opt.step()
        assert not torch.all(model.head.weight == 0.5)
        assert all(torch.equal(p, backbone[n]) for n, p in model.backbone.named_parameters())
    assert get_strategy(strategy["name"])  # registered


def test_a_trial_sets_prototypes_from_its_subset_and_a_resumed_one_keeps_its_trained_head(
        resnet_weights, tmp_path, monkeypatch):
    from raytune_ft.data import load_meta, load_split, prepare_data
    from raytune_ft.models import SOURCES, build_model
    from raytune_ft.train.config import trial_config
    from raytune_ft.train.evaluate import model_inputs
    from raytune_ft.train.loop import train_trial
    from raytune_ft.train.model import load_trial_model

    job = parse_job(vision_spec(resnet_weights, model={**vision_spec(resnet_weights)["model"], "head": "prototype"},
                                data={"source": "digits", "shots": 3, "max_train_samples": 120},
                                training={"epochs": 2}))
    meta = prepare_data(job, tmp_path / "data")
    (subset,) = train_subsets(job, meta)
    config = trial_config(job, tmp_path / "data", tmp_path / "t", {"name": "feature_extraction"},
                          {"lr": 1e-2, "batch_size": 16}, train_subset=subset)
    calls = []
    original = PrototypeHead.set_prototypes

    def recorded(self, features, labels):
        calls.append((features.clone(), labels.clone()))
        return original(self, features, labels)
    monkeypatch.setattr(PrototypeHead, "set_prototypes", recorded)

    def crash_after_epoch_1(m):
        if m["epoch"] == 1:
            raise KeyboardInterrupt("the process dies after epoch 1 was saved")
    with pytest.raises(KeyboardInterrupt):
        train_trial(config, report=crash_after_epoch_1)
    # once, over the trial's 30 training samples, with the pretrained model's eval-mode features
    (features, labels), = calls
    train = load_split(tmp_path / "data", "train")
    rows = TrainSubset(**subset).indices(train["labels"].numpy())
    assert labels.tolist() == train["labels"][rows].tolist() and np.bincount(labels).tolist() == [3] * 10
    torch.manual_seed(0)
    fresh = build_model(SOURCES.get("torchvision").Config.model_validate(job.resolved()["model"]), 10).eval()
    with torch.no_grad():
        expected = fresh.features(model_inputs({"pixel_values": train["pixel_values"][rows]}, load_meta(tmp_path / "data"),
                                               torch.device("cpu")))
    assert torch.allclose(features, expected, atol=1e-4)

    epoch1 = load_trial_model(tmp_path / "t" / "last")[0].head.weight.detach().clone()
    history = train_trial(config, report=lambda m: None)
    assert len(calls) == 1 and [m["epoch"] for m in history] == [1, 2]  # resumed: no class means computed again
    model, _ = load_trial_model(tmp_path / "t" / "last")
    assert isinstance(model.head, PrototypeHead) and not torch.equal(model.head.weight, epoch1)
