"""bitfit, norm_tuning and lp_ft on a tiny ResNet18 and the tiny BERT: exactly which parameters train,
and (trials run without Ray) what moves, epoch by epoch."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from raytune_ft.hparams import HParams
from raytune_ft.models import build_model
from raytune_ft.models.classifier import Classifier
from raytune_ft.spec import SpecError, parse_job
from raytune_ft.spec.job import TrainingSpec
from raytune_ft.strategies import STRATEGIES, get_strategy
from raytune_ft.train.config import trial_config
from raytune_ft.train.loop import train_trial
from raytune_ft.train.model import load_trial_model
from raytune_ft.train.optim import build_optimizer, set_scales, trainable_now
from tests.conftest import vision_spec
from tests.test_catalogue import HP, jobs, model_of, trainable  # noqa: F401  (jobs: the fixture)

HEAD = {"head.weight", "head.bias"}
# ResNet18 without its fc: 20 BatchNorms (bn1, 2 per basic block x 8, 3 downsample.1); convs have no bias
RESNET_BNS = 20
# the tiny BERT (pooler dropped): embeddings.LayerNorm + per layer: query, key, value, attention.output.dense,
# attention.output.LayerNorm, intermediate.dense, output.dense, output.LayerNorm
BERT_BIASES = 1 + 2 * 8
BERT_LAYERNORMS = 1 + 2 * 2


def backbone_trainable(model) -> set[str]:
    return {n for n in trainable(model) if n.startswith("backbone.")}


def test_the_three_are_registered_and_train_the_backbone():
    assert {"bitfit", "norm_tuning", "lp_ft"} <= set(STRATEGIES.names())
    assert all(STRATEGIES.get(n).trains_backbone for n in ("bitfit", "norm_tuning", "lp_ft"))
    assert all(STRATEGIES.get(n).families == ("vision", "text") for n in ("bitfit", "norm_tuning", "lp_ft"))


def test_every_strategy_is_in_the_docs_catalogue_and_these_in_the_catalogue_job():
    from tests.conftest import ROOT
    from tests.test_docs import reference  # docs/gen_reference.py
    from raytune_ft.spec import load_job

    catalogue = reference.strategies()  # docs/reference/strategies.md, as the site's build writes it
    assert [n for n in STRATEGIES.names() if f"\n### `{n}`\n" not in catalogue] == []
    catalogue = [s.name for s in load_job(ROOT / "jobs" / "catalogue.yaml").strategies]
    assert {"bitfit", "norm_tuning", "lp_ft"} <= set(catalogue)


# --------------------------------------------------------------------------- bitfit


def test_bitfit_trains_the_backbones_biases_and_the_head(jobs):
    model, s, k = model_of(jobs, "vision", "bitfit")
    names = backbone_trainable(model)
    assert len(names) == RESNET_BNS and all(n.endswith(".bias") for n in names)
    assert "backbone.bn1.bias" in names and "backbone.layer4.0.downsample.1.bias" in names
    assert "backbone.bn1.weight" not in trainable(model) and "backbone.conv1.weight" not in trainable(model)
    assert trainable(model) - names == HEAD
    assert s.eval_modules(model, k, 1) == []  # BatchNorm statistics update, as in full fine-tuning

    model, _, _ = model_of(jobs, "text", "bitfit")
    names = backbone_trainable(model)
    assert len(names) == BERT_BIASES and all(n.endswith(".bias") for n in names)
    assert {"backbone.encoder.layer.1.attention.self.query.bias", "backbone.embeddings.LayerNorm.bias",
            "backbone.encoder.layer.0.output.dense.bias"} <= names
    assert not any("word_embeddings" in n or n.endswith(".weight") for n in names)
    assert trainable(model) - names == HEAD


def test_bitfit_on_a_backbone_without_biases_says_what_to_do():
    model = Classifier(nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.Flatten()), 4, 2, "vision")
    with pytest.raises(ValueError, match="no bias parameter.*use feature_extraction"):
        get_strategy("bitfit").apply(model, get_strategy("bitfit").config())


# --------------------------------------------------------------------------- norm_tuning


def test_norm_tuning_trains_the_norm_layers_and_the_head(jobs):
    model, s, k = model_of(jobs, "vision", "norm_tuning")
    names = backbone_trainable(model)
    bns = {n for n, m in model.backbone.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert len(bns) == RESNET_BNS
    assert names == {f"backbone.{m}.{p}" for m in bns for p in ("weight", "bias")}
    assert trainable(model) - names == HEAD and s.eval_modules(model, k, 1) == []

    model, _, _ = model_of(jobs, "text", "norm_tuning")
    names = backbone_trainable(model)
    assert len(names) == 2 * BERT_LAYERNORMS
    assert {n.rsplit(".", 1)[0] for n in names} == {
        "backbone.embeddings.LayerNorm", *(f"backbone.encoder.layer.{i}.{part}.LayerNorm"
                                           for i in (0, 1) for part in ("attention.output", "output"))}
    assert trainable(model) - names == HEAD


def test_norm_tuning_finds_norms_by_type_not_by_name():
    """A GroupNorm named `mixer` trains; a Linear named `norm` does not."""
    backbone = nn.Sequential()
    backbone.add_module("conv", nn.Conv2d(3, 4, 3))
    backbone.add_module("mixer", nn.GroupNorm(2, 4))
    backbone.add_module("pool", nn.AdaptiveAvgPool2d(1))
    backbone.add_module("flat", nn.Flatten())
    backbone.add_module("norm", nn.Linear(4, 4))
    backbone.add_module("ln", nn.LayerNorm(4, elementwise_affine=True))
    model = Classifier(backbone, 4, 2, "vision")
    model = get_strategy("norm_tuning").apply(model, get_strategy("norm_tuning").config())
    assert trainable(model) == {"backbone.mixer.weight", "backbone.mixer.bias", "backbone.ln.weight",
                                "backbone.ln.bias"} | HEAD
    plain = Classifier(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()), 4, 2, "vision")
    with pytest.raises(ValueError, match="no normalisation layer with parameters"):
        get_strategy("norm_tuning").apply(plain, get_strategy("norm_tuning").config())


@pytest.mark.parametrize("strategy", ["norm_tuning", "bitfit"])
def test_a_trial_moves_only_what_the_strategy_trains(jobs, tmp_path, strategy):
    """One epoch on the ResNet: conv weights stay pretrained; the trained norm parameters move, and so
    do the BatchNorm running statistics (train mode); the reloaded checkpoint carries all of it."""
    job, root = jobs["vision"]
    start = build_model(job.model, 10).state_dict()
    config = trial_config(job, root / "data", tmp_path / "t", {"name": strategy}, {**HP, "lr": 1e-2})
    history = train_trial(config.with_training(epochs=1), report=lambda m: None)
    model, _ = load_trial_model(tmp_path / "t")
    end = model.state_dict()

    def moved(name):
        return not torch.equal(end[name], start[name])

    assert not moved("backbone.conv1.weight") and not moved("backbone.layer4.1.conv2.weight")
    assert moved("backbone.bn1.bias") and moved("backbone.layer4.1.bn2.bias")
    assert moved("backbone.bn1.weight") == (strategy == "norm_tuning")
    assert moved("backbone.bn1.running_mean") and moved("backbone.layer4.1.bn2.running_var")
    n_trained = sum(p.numel() for n, p in model.named_parameters() if n in trainable(model))
    assert history[0]["trainable_params"] == n_trained < history[0]["total_params"] / 50


# --------------------------------------------------------------------------- lp_ft


def test_lp_ft_scales_and_eval_modules(jobs):
    model, s, k = model_of(jobs, "text", "lp_ft", probe_epochs=2, ft_lr_mult=0.25)
    assert trainable(model) == {n for n, _ in model.named_parameters()}
    opt = build_optimizer(model, s, k, HParams(**HP), TrainingSpec())
    # every parameter is in the optimizer from the start: the switch needs no new optimizer
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    for epoch in (1, 2):
        assert set_scales(opt, s, k, epoch, head_lr_mult=3.0) == {"backbone": 0.0, "head": 3.0}
        assert trainable_now(opt) == model.head.weight.numel() + model.head.bias.numel()
        assert s.eval_modules(model, k, epoch) == [model.backbone]
    assert set_scales(opt, s, k, 3, head_lr_mult=3.0) == {"backbone": 0.25, "head": 0.75}
    assert trainable_now(opt) == sum(p.numel() for p in model.parameters())
    assert s.eval_modules(model, k, 3) == []


@pytest.mark.parametrize("family", ["vision", "text"])
def test_lp_ft_holds_the_backbone_still_during_the_probe_then_trains_it(jobs, tmp_path, monkeypatch, family):
    """3 epochs, probe_epochs 2: after epochs 1 and 2 the backbone (weights and BatchNorm statistics)
    is exactly the pretrained one and the head has moved; after epoch 3 the backbone has moved too."""
    job, root = jobs[family]
    strategy_cls = type(get_strategy("lp_ft"))
    seen = {}
    monkeypatch.setattr(strategy_cls, "after_step", lambda self, model, step: seen.setdefault("model", model))
    snapshots = []
    config = trial_config(job, root / "data", tmp_path / "t", {"name": "lp_ft", "probe_epochs": 2, "ft_lr_mult": 0.5},
                          HP).with_training(epochs=3, schedule="constant")
    start = {n: p.detach().clone() for n, p in build_model(job.model, 10).backbone.state_dict().items()}
    history = train_trial(config, report=lambda m: snapshots.append(
        {n: p.detach().clone() for n, p in seen["model"].state_dict().items()}))

    def backbone_moved(state):
        return [k for k, v in start.items() if not torch.equal(state[f"backbone.{k}"], v)]

    e1, e2, e3 = snapshots
    assert backbone_moved(e1) == [] and backbone_moved(e2) == []
    assert not torch.equal(e1["head.weight"], e2["head.weight"])  # the probe trains the head
    weights = [k for k in backbone_moved(e3) if k.endswith("weight")]
    assert len(weights) > 0.9 * sum(k.endswith("weight") for k in start), "fine-tuning left most weights still"
    assert [m["lr_scales"] for m in history] == [{"backbone": 0.0, "head": 1.0}] * 2 + [{"backbone": 0.5, "head": 0.5}]
    assert history[0]["lr"] == pytest.approx(HP["lr"]) and history[2]["lr"] == pytest.approx(0.5 * HP["lr"])
    head = sum(v.numel() for k, v in e1.items() if k.startswith("head."))
    assert [m["trainable_params"] for m in history] == [head, head, history[0]["total_params"]]


def test_lp_ft_needs_a_fine_tuning_epoch(resnet_weights):
    def spec(knobs, epochs=3, **hp):
        return vision_spec(resnet_weights, training={"epochs": epochs},
                           strategies=[{"name": "full"}, {"name": "lp_ft", **knobs, "hparams": hp}])

    with pytest.raises(SpecError) as e:
        parse_job(spec({"probe_epochs": 3}))
    assert dict(e.value.problems) == {"strategies[1].probe_epochs": (
        "3 leaves no fine-tuning epoch in training.epochs 3: keep it below that "
        "(a probe alone is feature_extraction)")}
    with pytest.raises(SpecError, match=r"strategies\[1\].probe_epochs: \{randint: \[1, 4\]\} leaves no"):
        parse_job(spec({"probe_epochs": {"randint": [1, 4]}}, epochs=4))
    with pytest.raises(SpecError, match=r"strategies\[1\].ft_lr_mult"):
        parse_job(spec({"ft_lr_mult": 2.0}))
    job = parse_job(spec({"probe_epochs": {"choice": [1, 2]}, "ft_lr_mult": {"loguniform": [0.01, 1.0]}}, l2sp=0.1))
    assert job.strategies[1].hparams.l2sp == 0.1  # L2-SP applies: the backbone trains after the probe
    for name in ("bitfit", "norm_tuning"):
        parse_job(vision_spec(resnet_weights, strategies=[{"name": name, "hparams": {"l2sp": 0.1}}]))
