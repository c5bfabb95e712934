"""The LoRA family and the named peft methods on a tiny decoder (Llama) and a tiny ViT: each one's exact
trainable set, LoRA's knobs, and the refusals `validate` makes (exit 2, naming the field) for a model a
method cannot adapt, an architecture that is not supported, a decoder that cannot pad."""
from __future__ import annotations

import math

import pytest
import torch
import yaml
from typer.testing import CliRunner

from raytune_ft.cli import app
from raytune_ft.models import build_model
from raytune_ft.models.text import TransformersConfig
from raytune_ft.strategies import get_strategy
from tests.conftest import sentiment_rows, vision_spec

HEAD = 32 * 3 + 3  # the new head on 3 classes
# (in, out) of each default target: Llama's q_proj / v_proj (4 heads, 2 key-value heads of 8), 2 layers
# (peft's list for llama); the ViT's Linear layers (no list for vit): query, key, value, attention output,
# intermediate, output, 2 layers
DECODER = [(32, 32), (32, 16)] * 2
VIT = ([(32, 32)] * 4 + [(32, 64), (64, 32)]) * 2
PER_TARGET = {  # method: (knobs, what its trainable backbone names contain, parameters per (in, out) target)
    "lora": ({"r": 2}, "lora_", lambda i, o: 2 * (i + o)),
    "dora": ({"r": 2}, "lora_", lambda i, o: 2 * (i + o) + o),  # + a magnitude per output
    "vera": ({"r": 8}, "vera_lambda_", lambda i, o: 8 + o),  # two scaling vectors; the random matrices frozen
    "fourierft": ({"n_frequency": 16}, "fourierft_spectrum", lambda i, o: 16),
    "hra": ({"r": 2}, "hra_u", lambda i, o: 2 * i),
    "oft": ({"block_size": 8}, "oft_", lambda i, o: i // 8 * (8 * 7 // 2)),  # skew-symmetric blocks
    "boft": ({"block_size": 4}, "boft_", lambda i, o: i // 4 * 4 * 4 + o),  # butterfly blocks + an output scale
    "lokr": ({"r": 2}, "lokr_", None),
}


def trainable(model) -> dict[str, int]:
    return {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}


@pytest.fixture(scope="module")
def configs(tiny_decoders, tiny_vits):
    return {"decoder": TransformersConfig(name=str(tiny_decoders["llama"])),
            "vit": TransformersConfig(name=str(tiny_vits["vit"]))}


@pytest.mark.parametrize("family,targets", [("decoder", DECODER), ("vit", VIT)])
@pytest.mark.parametrize("method", sorted(PER_TARGET))
def test_each_method_trains_exactly_its_adapters_and_the_head(configs, method, family, targets):
    knobs, marker, per_target = PER_TARGET[method]
    strategy = get_strategy(method)
    model = strategy.apply(build_model(configs[family], 3), strategy.config(**knobs))
    names = trainable(model)
    backbone = {n for n in names if not n.startswith("head.")}
    assert set(names) - backbone == {"head.weight", "head.bias"}
    assert backbone and all(marker in n for n in backbone), sorted(backbone)[:4]
    if per_target is not None:
        assert sum(names.values()) == HEAD + sum(per_target(i, o) for i, o in targets)
    ids = torch.tensor([[3, 4, 5, 6]])
    inputs = {"pixel_values": torch.randn(1, 3, 32, 32)} if family == "vit" else \
        {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    model(**inputs).sum().backward()  # every trainable parameter gets a gradient (DDP needs it)
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []


@pytest.mark.parametrize("family,norms", [("decoder", 2 * 2 * 32 + 32), ("vit", 2 * 2 * 64 + 64)])
def test_ln_tuning_trains_the_norm_layers(configs, family, norms):
    strategy = get_strategy("ln_tuning")
    names = trainable(strategy.apply(build_model(configs[family], 3), strategy.config()))
    assert sum(names.values()) == HEAD + norms  # Llama: 2 RMSNorms a layer + the final one; ViT: LayerNorms
    assert all("ln_tuning_layers" in n for n in names if not n.startswith("head."))


APPLIES = {"partial": {"trainable_blocks": 1}, "lp_ft": {}, "gradual_unfreeze": {}, "discriminative_lr": {},
           "norm_tuning": {}, "bitfit": {}, "full": {}, "feature_extraction": {}, "ia3": {}, "loha": {"r": 2},
           "adalora": {"init_r": 4, "target_r": 2}, "prompt_tuning": {"num_virtual_tokens": 4},
           "prefix_tuning": {"num_virtual_tokens": 4}, "peft": {"method": "c3a", "config": {"block_size": 8}}}


@pytest.mark.parametrize("family", ["decoder", "vit"])
@pytest.mark.parametrize("name", sorted(APPLIES))
def test_every_other_strategy_applies_to_a_decoder_and_a_vit(configs, family, name):
    """Blocks by structure (partial, gradual_unfreeze, discriminative_lr), norms by type or name (a Llama's
    RMSNorm), prompt / prefix tuning on a decoder: each builds its groups, runs forward and backward."""
    strategy = get_strategy(name)
    if configs[family].family() not in strategy.families or (name, family) == ("bitfit", "decoder"):
        pytest.skip("refused at validate (see REFUSED and the family check)")
    cfg = strategy.config(**APPLIES[name])
    model = strategy.apply(build_model(configs[family], 3), cfg)
    groups = strategy.groups(model, cfg)
    assert groups["head"] == ["head.bias", "head.weight"] or set(groups["head"]) == {"head.weight", "head.bias"}
    ids = torch.tensor([[3, 4, 5, 6]])
    inputs = {"pixel_values": torch.randn(1, 3, 32, 32)} if family == "vit" else \
        {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    model(**inputs).sum().backward()
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []
    if name == "norm_tuning":
        assert len(trainable(model)) == 2 + (5 if family == "decoder" else 10)  # Llama RMSNorm: weight only


def test_lora_knobs_reach_peft(configs):
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    lora = get_strategy("lora")
    for init in ("pissa", "olora", "default"):  # every init starts where the pretrained model is
        torch.manual_seed(0)
        model = build_model(configs["decoder"], 3).eval()
        before = model(**batch)
        model = lora.apply(model, lora.config(r=2, init=init, use_rslora=True, alpha=8.0)).eval()
        assert torch.allclose(model(**batch), before, atol=1e-4), init
    layer = model.backbone.base_model.model.layers[0].self_attn.q_proj
    assert layer.scaling["default"] == pytest.approx(8.0 / math.sqrt(2))  # rsLoRA: alpha / sqrt(r)
    dora = lora.apply(build_model(configs["decoder"], 3), lora.config(r=2, use_dora=True))
    assert any("lora_magnitude_vector" in n for n in trainable(dora))


def test_eva_starts_a_from_the_layer_inputs(configs):
    """EVA: A's rows are the top right-singular vectors of each layer's inputs (orthonormal), B = 0; a model
    rebuilt without data (a reload) has the same shapes, its trained A and B loaded instead."""
    from raytune_ft.train.model import build_trial_model

    spec = configs["decoder"].model_dump()
    batches = lambda: [{"input_ids": torch.randint(3, 20, (8, 10)),  # noqa: E731
                        "attention_mask": torch.ones(8, 10, dtype=torch.long)} for _ in range(3)]
    model, _, _ = build_trial_model(spec, {"name": "lora", "r": 4, "init": "eva"}, 0.0, 3, batches=batches)
    factors = {n: p for n, p in model.named_parameters() if "lora_" in n}
    for name, p in factors.items():
        if "lora_A" in name:
            assert torch.allclose(p @ p.T, torch.eye(4), atol=1e-4), name
        else:
            assert not p.any(), name
    rebuilt, _, _ = build_trial_model(spec, {"name": "lora", "r": 4, "init": "eva"}, 0.0, 3)
    assert {n: p.shape for n, p in rebuilt.named_parameters() if "lora_" in n} == {n: p.shape for n, p in factors.items()}


# --------------------------------------------------------------------------- refused at validate

def _decoder_folder(tmp_path, **kw):
    from tests.tiny_models import save_decoder

    return save_decoder(tmp_path / "model", **kw)


def _folder_with_config(tmp_path, config: dict):
    import json

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _text(model, tmp_path, strategies=({"name": "lora"},)):
    csv = tmp_path / "train.csv"
    csv.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in sentiment_rows(8, 0)))
    return {"name": "t", "model": {"source": "transformers", "name": str(model)},
            "data": {"source": "text_table", "train": str(csv), "validation": str(csv)},
            "strategies": list(strategies)}


REFUSED = {
    "vera on a Conv2d-only backbone": (
        lambda t, d, w: vision_spec(w, strategies=[{"name": "vera"}]),
        "strategies[0].name: the ResNet backbone has no Linear / Conv1D layer vera can adapt"),
    "oft on GPT-2's Conv1D layers": (
        lambda t, d, w: _text(d["gpt2"], t, [{"name": "oft"}]),
        "strategies[0].name: oft adapts Linear / Conv2d layers only; its targets ['c_attn'] include Conv1D layers"),
    "a BOFT block size that divides no layer": (
        lambda t, d, w: _text(d["llama"], t, [{"name": "boft", "block_size": {"choice": [4, 5]}}]),
        "strategies[0].block_size: 5 does not divide the input size of layers.0.self_attn.q_proj (32"),
    "BitFit on a decoder without biases": (
        lambda t, d, w: _text(d["llama"], t, [{"name": "bitfit"}]),
        "strategies[0].name: LlamaModel has no bias parameter (Llama-style decoders have none)"),
    "PiSSA on convolutions": (
        lambda t, d, w: vision_spec(w, strategies=[{"name": "lora", "init": {"choice": ["default", "pissa"]}}]),
        "strategies[0].init: pissa starts from the SVD / QR of Linear weights, and the targets include Conv2d"),
    "an encoder-decoder model folder": (
        lambda t, d, w: _text(_folder_with_config(t, {"model_type": "t5", "is_encoder_decoder": True,
                                                      "architectures": ["T5ForConditionalGeneration"]}), t),
        "model.name: ", "an encoder-decoder model"),
    "an architecture transformers does not know": (
        lambda t, d, w: _text(_folder_with_config(t, {"model_type": "my_lm", "auto_map": {"AutoModel": "m.M"}}), t),
        "model.name: ", "which this transformers does not know: it ships its own code (auto_map)"),
    "a decoder without a pad token or an EOS to borrow": (
        lambda t, d, w: _text(_decoder_folder(t, eos=False), t),
        "model.name: ", "the tokenizer of this decoder has no pad token and no EOS token to pad with"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_validate_refuses_what_cannot_work(case, tmp_path, tiny_decoders, resnet_weights):
    import ray

    build, *expected = REFUSED[case]
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(build(tmp_path, tiny_decoders, resnet_weights)))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    for text in expected:
        assert text in result.output, result.output
    assert "Traceback" not in result.output and not ray.is_initialized()


def test_lora_and_dora_in_one_entry_and_by_name(tiny_decoders, tmp_path):
    from raytune_ft.spec import parse_job
    from raytune_ft.sweep.space import strategy_spaces

    job = parse_job(_text(tiny_decoders["llama"], tmp_path, [
        {"name": "lora", "use_dora": {"choice": [False, True]}, "init": {"choice": ["default", "pissa_niter_4"]}},
        {"name": "dora", "r": 4}, {"name": "lokr"}, {"name": "vera"}, {"name": "oft"}, {"name": "boft"},
        {"name": "hra"}, {"name": "fourierft", "n_frequency": 64}, {"name": "ln_tuning"}]))
    space = strategy_spaces(job)[0]
    assert space["use_dora"].values == (False, True) and space["init"].values == ("default", "pissa_niter_4")
    with pytest.raises(Exception, match="unknown init 'svd'"):
        get_strategy("lora").config(init="svd")
