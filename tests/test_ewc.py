"""EWC (raytune_ft/ewc/): the penalty, the Fisher estimate against a hand computation, the spec's
rules, and the Fisher written once by prepare and used by a trial."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from raytune_ft.ewc import config as ewc_config
from raytune_ft.ewc import fisher as ewc_fisher
from raytune_ft.ewc.config import FISHER_FILE
from raytune_ft.ewc.penalty import ewc_penalty, load_fisher
from raytune_ft.prepare import prepare_job
from raytune_ft.models.classifier import Classifier
from raytune_ft.spec import SpecError, parse_job
from raytune_ft.train.config import trial_config
from raytune_ft.train.loop import train_trial
from tests.conftest import sentiment_rows, text_spec, vision_spec

HP = {"lr": 1e-2, "weight_decay": 0.0, "batch_size": 16, "warmup_ratio": 0.0, "label_smoothing": 0.0,
      "head_lr_mult": 1.0, "head_dropout": 0.0, "l2sp": 0.0, "ewc": 0.0}


def problems(data) -> dict[str, str]:
    with pytest.raises(SpecError) as e:
        parse_job(data)
    return dict(e.value.problems)


# --------------------------------------------------------------------------- the penalty

def test_penalty_is_zero_at_the_pretrained_weights_and_weighted_by_the_fisher():
    torch.manual_seed(0)
    anchors = {"a": torch.randn(3, 2), "b": torch.randn(4)}
    params = {n: a.clone() for n, a in anchors.items()}
    fisher = {"a": torch.rand(3, 2) + 0.1, "b": torch.zeros(4)}
    assert float(ewc_penalty(params, anchors, fisher, 10.0)) == 0.0

    params["b"] = anchors["b"] + 5.0  # F = 0: moving costs nothing
    assert float(ewc_penalty(params, anchors, fisher, 10.0)) == 0.0

    params["a"] = anchors["a"] + 0.5
    moved = float(ewc_penalty(params, anchors, fisher, 10.0))
    assert moved == pytest.approx(10.0 / 2 * float((fisher["a"] * 0.25).sum()), rel=1e-6)
    params["a"] = anchors["a"] + 1.0  # grows as the weights move: twice the distance, four times the cost
    assert float(ewc_penalty(params, anchors, fisher, 10.0)) == pytest.approx(4 * moved, rel=1e-6)
    params["a"] = anchors["a"] + 0.5
    doubled = {**fisher, "a": 2 * fisher["a"]}
    assert float(ewc_penalty(params, anchors, doubled, 10.0)) == pytest.approx(2 * moved, rel=1e-6)
    assert float(ewc_penalty(params, anchors, fisher, 20.0)) == pytest.approx(2 * moved, rel=1e-6)
    # one weight with F > 0 moving: only its own F counts
    params = {n: a.clone() for n, a in anchors.items()}
    params["a"][1, 0] += 2.0
    assert float(ewc_penalty(params, anchors, fisher, 1.0)) == pytest.approx(0.5 * float(fisher["a"][1, 0]) * 4)


# --------------------------------------------------------------------------- the estimate

def test_empirical_fisher_is_the_mean_of_squared_per_sample_gradients():
    """A backbone x -> tanh(W x + c) under a linear probe, the gradient of -log softmax(P h + q)[y] by hand:
    δ = softmax - onehot(y), ∂/∂h = Pᵀ δ, ∂/∂(Wx + c) = (1 - h²) ∘ Pᵀ δ, ∂/∂W = that ⊗ x, ∂/∂c = that."""
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Tanh())
    model = Classifier(backbone, feature_dim=3, num_classes=2, kind="vision")
    probe = nn.Linear(3, 2)
    xs, ys = torch.randn(5, 4), [0, 1, 1, 0, 1]
    fisher = ewc_fisher.empirical_fisher(model, probe, [({"pixel_values": x[None]}, y) for x, y in zip(xs, ys)])
    assert set(fisher) == {"backbone.1.weight", "backbone.1.bias"}  # the backbone's, not the head's

    W, c, P, q = backbone[1].weight.detach(), backbone[1].bias.detach(), probe.weight.detach(), probe.bias.detach()
    sq_w, sq_c = torch.zeros(3, 4), torch.zeros(3)
    for x, y in zip(xs, ys):
        h = torch.tanh(W @ x + c)
        delta = torch.softmax(P @ h + q, 0) - torch.nn.functional.one_hot(torch.tensor(y), 2).float()
        g = (1 - h ** 2) * (P.T @ delta)
        sq_w += torch.outer(g, x) ** 2
        sq_c += g ** 2
    assert torch.allclose(fisher["backbone.1.weight"], sq_w / 5, atol=1e-7)
    assert torch.allclose(fisher["backbone.1.bias"], sq_c / 5, atol=1e-7)
    assert float(fisher["backbone.1.weight"].min()) > 0


def test_the_probe_stands_in_for_a_head():
    torch.manual_seed(0)
    labels = torch.tensor([0, 1, 2] * 20)
    features = torch.randn(60, 5) * 3 + 100.0  # far from 0, unscaled: the standardisation is folded in
    features[:, 0] += 10 * labels
    probe, accuracy = ewc_fisher.fit_probe(features, labels)
    assert accuracy > 0.9 and probe.out_features == 3
    two, acc2 = ewc_fisher.fit_probe(features[labels < 2], labels[labels < 2])  # sklearn's single logit, as two
    assert two.out_features == 2 and acc2 > 0.9


# --------------------------------------------------------------------------- the spec

def test_spec_refuses_ewc_where_no_backbone_weight_trains(resnet_weights):
    spec = vision_spec(resnet_weights, strategies=[
        {"name": "full", "hparams": {"ewc": {"loguniform": [1.0, 100.0]}}},
        {"name": "feature_extraction", "hparams": {"ewc": 0.5}},
        {"name": "lora", "r": 2, "hparams": {"ewc": {"choice": [0.0, 1.0]}}}])
    found = problems(spec)
    assert "feature_extraction trains no backbone weights, so EWC has nothing to hold back" \
        in found["strategies[1].hparams.ewc"]
    assert "lora trains no backbone weights" in found["strategies[2].hparams.ewc"]
    assert "strategies[0].hparams.ewc" not in found
    # the job-wide value reaches every strategy: refused where it cannot apply
    spec = vision_spec(resnet_weights)
    spec["search"]["hparams"]["ewc"] = 1.0
    assert "EWC has nothing to hold back" in problems(spec)["strategies[1].hparams.ewc"]
    spec["search"]["hparams"]["ewc"] = -1.0
    assert "must be >= 0" in problems(spec)["search.hparams.ewc"]


def test_spec_checks_the_fisher_source(resnet_weights, tiny_bert, text_csvs, tmp_path):
    spec = vision_spec(resnet_weights, strategies=[{"name": "full", "hparams": {"ewc": 1.0}}])
    spec["data"]["fisher_source"] = {"path": str(tmp_path / "x.csv")}
    assert "digits takes EWC's samples from a split of its own data" in problems(spec)["data.fisher_source"]
    spec["data"]["fisher_source"] = {"split": "holdout"}
    assert "data.fisher_source.split" in problems(spec)
    spec["data"]["fisher_source"] = {"split": "train", "path": "x.csv"}
    assert "exactly one of split" in problems(spec)["data.fisher_source"]
    spec = text_spec(tiny_bert, text_csvs)
    spec["data"]["fisher_source"] = {"path": str(tmp_path / "missing.csv")}
    assert "missing.csv does not exist" in problems(spec)["data.fisher_source"]
    (tmp_path / "source.txt").write_text("text,label\n")
    spec["data"]["fisher_source"] = {"path": str(tmp_path / "source.txt")}
    assert "give a .csv / .tsv" in problems(spec)["data.fisher_source"]
    spec["data"]["fisher_source"] = {"path": str(text_csvs["test"])}
    assert parse_job(spec).data.fisher_source.path == text_csvs["test"]


# --------------------------------------------------------------------------- once per job, used by the trial

def test_prepare_writes_the_fisher_once_and_a_trial_uses_it(resnet_weights, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    import raytune_ft.train.penalties as penalties

    calls = {"estimate": 0, "penalty": []}
    estimate = ewc_fisher.estimate
    monkeypatch.setattr(ewc_fisher, "estimate", lambda *a: (calls.__setitem__("estimate", calls["estimate"] + 1), estimate(*a))[1])
    spec = vision_spec(resnet_weights, strategies=[{"name": "full", "hparams": {"ewc": {"choice": [0.0, 100.0]}}},
                                                   {"name": "feature_extraction"}])
    spec["data"].update(fisher_samples=12, max_train_samples=40)  # small: two trials of one epoch below
    job = parse_job(spec)
    assert ewc_config.wanted(job)
    meta = prepare_job(job, tmp_path / "data")
    assert calls["estimate"] == 1
    assert meta["fisher"]["source"] == "train split" and meta["fisher"]["samples"] == 12
    assert json.loads((tmp_path / "data" / "meta.json").read_text())["fisher"] == meta["fisher"]
    fisher = load_file(str(tmp_path / "data" / FISHER_FILE))
    assert fisher and all(n.startswith("backbone.") for n in fisher)  # the new head has no pretrained value
    assert any(float(f.sum()) > 0 for f in fisher.values())

    penalty = penalties.ewc_penalty

    def spy(params, anchors, fisher_used, strength):
        value = penalty(params, anchors, fisher_used, strength)
        calls["penalty"].append((set(fisher_used), strength, float(value.detach())))
        return value

    monkeypatch.setattr(penalties, "ewc_penalty", spy)
    config = trial_config(job, tmp_path / "data", tmp_path / "trial", {"name": "full"}, {**HP, "ewc": 100.0})
    train_trial(config.with_training(epochs=1), report=lambda m: None)
    assert calls["estimate"] == 1  # the trial read the file; nothing estimated again
    names, strength, _ = calls["penalty"][0]
    assert names == set(fisher) and strength == 100.0  # full trains every backbone weight: every entry kept
    assert calls["penalty"][0][2] == 0.0 and calls["penalty"][-1][2] > 0  # 0 at the start, then the cost of moving

    # partial trains the top blocks only: the trial keeps those entries and no others
    calls["penalty"].clear()
    config = trial_config(job, tmp_path / "data", tmp_path / "partial",
                          {"name": "partial", "trainable_blocks": 1, "layer_decay": 1.0}, {**HP, "ewc": 1.0})
    train_trial(config.with_training(epochs=1), report=lambda m: None)
    names = calls["penalty"][0][0]
    assert names and names < set(fisher) and all(n.startswith("backbone.layer4.1.") for n in names)


def test_no_fisher_without_ewc_and_a_source_task_file(tiny_bert, text_csvs, tmp_path):
    job = parse_job(text_spec(tiny_bert, text_csvs))
    meta = prepare_job(job, tmp_path / "plain")
    assert "fisher" not in meta and not (tmp_path / "plain" / FISHER_FILE).exists()

    source = tmp_path / "source_task.csv"  # another task's labels (3 classes of its own)
    source.write_text("text,label\n" + "".join(f"{t},{['x', 'y', 'z'][i % 3]}\n"
                                               for i, (t, _) in enumerate(sentiment_rows(30, 7))))
    spec = text_spec(tiny_bert, text_csvs, strategies=[{"name": "full"}])
    spec["search"]["hparams"]["ewc"] = 0.1
    spec["data"].update(fisher_source={"path": str(source)}, fisher_samples=20)
    meta = prepare_job(parse_job(spec), tmp_path / "ewc")
    assert meta["fisher"]["source"] == str(source)
    assert meta["fisher"]["samples"] == 20 and meta["fisher"]["classes"] == 3
    fisher = load_fisher(tmp_path / "ewc", {"backbone.embeddings.word_embeddings.weight":
                                                torch.zeros_like(_bert_embeddings(tiny_bert))})
    assert float(fisher["backbone.embeddings.word_embeddings.weight"].sum()) > 0
    with pytest.raises(ValueError, match="no entry for 1 trained parameter"):
        load_fisher(tmp_path / "ewc", {"backbone.nothing.weight": torch.zeros(2)})
    with pytest.raises(FileNotFoundError, match="prepare the data again"):
        load_fisher(tmp_path / "plain", {})


def _bert_embeddings(path):
    from transformers import BertModel

    return BertModel.from_pretrained(path).embeddings.word_embeddings.weight.detach()
