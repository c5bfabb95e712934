"""The model families on tiny random models: decoder LMs (last-token pooling under either padding, a pad
token borrowed from EOS, dtype), transformers image models (their image processor drives preparation),
timm (pretrained_cfg, a weights file or the local Hugging Face cache, drop_path_rate), blocks by structure."""
from __future__ import annotations

import pytest
import torch

from raytune_ft.models import build_model
from raytune_ft.models.blocks import find_blocks
from raytune_ft.models.text import Transformers, TransformersConfig
from raytune_ft.models.timm_models import TimmConfig
from raytune_ft.spec import SpecError, parse_job
from raytune_ft.strategies import get_strategy
from tests.conftest import sentiment_rows

TEXTS = ["good movie", "the plot was a bad film the", "sad"]


def config_of(path, **fields):
    return TransformersConfig(name=str(path), **fields)


def csvs(tmp_path, n=48):
    out = {}
    for split, count, seed in (("train", n, 0), ("validation", 32, 1)):
        out[split] = tmp_path / f"{split}.csv"
        out[split].write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in sentiment_rows(count, seed)))
    return out


def text_job(model, tmp_path, **over):
    files = csvs(tmp_path)
    spec = {"name": "tiny", "model": {"source": "transformers", "name": str(model), "max_length": 16},
            "data": {"source": "text_table", **{k: str(v) for k, v in files.items()}},
            "strategies": [{"name": "full"}], "training": {"epochs": 2},
            "search": {"num_samples": 1, "hparams": {"lr": 3e-3, "batch_size": 16}}}
    spec.update(over)
    return spec


# --------------------------------------------------------------------------- decoders

@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2"])
def test_last_token_pooling_under_left_and_right_padding(tiny_decoders, family):
    """Each row's logits are the head on the last hidden state of its text run alone, whether the batch is padded
    on the left or the right (GPT-2's absolute positions too: position ids come from the attention mask)."""
    config = config_of(tiny_decoders[family])
    assert (config.kind(), config.family()) == ("decoder", "text")
    model = build_model(config, 3).eval()
    tokenizer = Transformers.tokenizer(config)
    assert tokenizer.pad_token == tokenizer.eos_token is not None  # borrowed: the tokenizer has no pad token
    with torch.no_grad():
        alone = torch.stack([model.backbone(**tokenizer(t, return_tensors="pt")).last_hidden_state[0, -1]
                             for t in TEXTS])
        expected = model.head(alone)
        for side in ("left", "right"):
            tokenizer.padding_side = side
            batch = tokenizer(TEXTS, padding="max_length", max_length=40, return_tensors="pt")
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            assert torch.allclose(logits, expected, atol=1e-5), side


def test_prompt_tuning_on_a_decoder_pools_the_last_real_token_after_the_virtual_ones(tiny_decoders):
    config = config_of(tiny_decoders["llama"])
    strategy = get_strategy("prompt_tuning")
    model = strategy.apply(build_model(config, 3), strategy.config(num_virtual_tokens=4)).eval()
    assert model.positions is False  # peft prepends the prompt and drops position ids
    tokenizer = Transformers.tokenizer(config)
    for side in ("left", "right"):
        tokenizer.padding_side = side
        batch = tokenizer(TEXTS, padding="max_length", max_length=10, return_tensors="pt")
        with torch.no_grad():
            hidden = model.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            last = [4 + (9 if side == "left" else len(tokenizer(t)["input_ids"]) - 1) for t in TEXTS]
            expected = model.head(hidden[torch.arange(3), torch.tensor(last)])
            assert torch.allclose(model(**batch), expected, atol=1e-6), side


def test_prepared_texts_follow_the_tokenizers_padding_side(tiny_decoders, tmp_path):
    from raytune_ft.data import load_split, prepare_data

    job = parse_job(text_job(tiny_decoders["llama-left"], tmp_path))
    prepare_data(job, tmp_path / "data")
    train = load_split(tmp_path / "data", "train")
    rows = list(range(len(train["labels"])))
    mask, ids = train["attention_mask"][rows], train["input_ids"][rows]
    assert bool((mask[:, -1] == 1).all()) and bool((mask[:, 0] == 0).any())  # padded on the left
    eos = Transformers.tokenizer(job.model).eos_token_id
    assert bool((ids[mask == 0] == eos).all())  # with the EOS token the tokenizer pads with


def test_dtype_keeps_or_casts_the_checkpoints(tmp_path):
    from tests.tiny_models import save_decoder

    path = save_decoder(tmp_path / "bf16", "llama", dtype="bfloat16")
    kept = build_model(config_of(path, dtype="auto"), 2)
    cast = build_model(config_of(path), 2)
    assert next(kept.backbone.parameters()).dtype == torch.bfloat16
    assert next(cast.backbone.parameters()).dtype == torch.float32
    ids = torch.tensor([[3, 4, 5]])
    assert kept(input_ids=ids, attention_mask=torch.ones_like(ids)).dtype == torch.float32  # the head is float32


@pytest.mark.parametrize("init", [{"init": "pissa", "use_dora": True}, {"init": "eva"}])
def test_decoder_trial_resumes_and_reloads(tiny_decoders, tmp_path, init):
    """Killed after epoch 1, the trial goes on from its checkpoint; the reloaded model (PiSSA's residual base
    weights recomputed from the pretrained ones, then the trained adapters; EVA's data-driven start replaced by
    the trained adapters) scores what validation scored."""
    from raytune_ft.data import prepare_data
    from raytune_ft.results.evaluation import evaluate_trial
    from raytune_ft.train.config import trial_config
    from raytune_ft.train.loop import train_trial

    job = parse_job(text_job(tiny_decoders["llama-left"], tmp_path))
    prepare_data(job, tmp_path / "data")
    hp = {"lr": 1e-2, "batch_size": 16, "warmup_ratio": 0.0}
    strategy = {"name": "lora", "r": 2, "alpha": 4.0, **init}
    config = trial_config(job, tmp_path / "data", tmp_path / "t", strategy, hp)

    class Killed(BaseException):
        pass

    def die_after_1(metrics):
        if metrics["epoch"] == 1:
            raise Killed

    with pytest.raises(Killed):
        train_trial(config, report=die_after_1)
    history = train_trial(config, report=lambda m: None)
    assert [m["epoch"] for m in history] == [1, 2] and history[-1]["resumes"] == 1
    best = history[history[-1]["best_epoch"] - 1]
    again = evaluate_trial(tmp_path / "t", tmp_path / "data", split="validation")
    assert again["accuracy"] == best["val_accuracy"]
    assert again["loss"] == pytest.approx(best["val_loss"], rel=1e-5)


# --------------------------------------------------------------------------- image models

def test_the_image_processor_drives_preparation(tiny_vits, tmp_path):
    from raytune_ft.data import prepare_data

    spec = {"name": "d", "model": {"source": "transformers", "name": str(tiny_vits["dinov2"])},
            "data": {"source": "digits", "max_train_samples": 40}, "strategies": [{"name": "full"}]}
    job = parse_job(spec)
    assert job.model.family() == "vision"
    meta = prepare_data(job, tmp_path / "data")  # BitImageProcessor: short side 36, center crop 32, bicubic
    assert meta["image"] == {"crop_size": 32, "resize_size": 36, "interpolation": "bicubic",
                             "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert config_of(tiny_vits["dinov2"], image_size=64).image_recipe().resize_size == 72  # the ratio kept
    vit = config_of(tiny_vits["vit"]).image_recipe()  # ViTImageProcessor: 32 x 32, bilinear, mean / std 0.5
    assert (vit.crop_size, vit.resize_size, vit.interpolation, vit.mean) == (32, 32, "bilinear", (0.5, 0.5, 0.5))


@pytest.mark.parametrize("family", ["vit", "dinov2"])
def test_image_models_pool_cls_and_train_every_block(tiny_vits, family):
    model = build_model(config_of(tiny_vits[family]), 3)
    assert model.kind == "vision" and getattr(model.backbone, "pooler", None) is None  # ViT's dense pooler dropped
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        hidden = model.backbone(pixel_values=pixels).last_hidden_state
        out = model.backbone(pixel_values=pixels)
        cls = out.pooler_output if getattr(out, "pooler_output", None) is not None else hidden[:, 0]
        assert torch.allclose(model(pixel_values=pixels), model.head(cls))
        assert model(pixel_values=torch.randn(2, 3, 48, 48)).shape == (2, 3)  # another image_size: interpolated
    blocks = find_blocks(model)
    assert len(blocks.blocks) == 2 and blocks.stem == ["backbone.embeddings"]
    partial = get_strategy("partial")
    trained = partial.apply(model, partial.config(trainable_blocks=1))
    names = {n for n, p in trained.named_parameters() if p.requires_grad}
    assert names == blocks.parameter_names(model, blocks.blocks[-1]) | {"head.weight", "head.bias"}


def test_a_clip_checkpoint_gives_its_vision_tower(tmp_path):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tower = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
                 patch_size=8)
    CLIPModel(CLIPConfig(text_config={**tower, "vocab_size": 50, "bos_token_id": 0, "eos_token_id": 1},
                         vision_config=tower, projection_dim=16)).save_pretrained(tmp_path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    config = config_of(tmp_path)
    assert config.family() == "vision"
    model = build_model(config, 3)
    assert type(model.backbone).__name__ == "CLIPVisionModel" and not any("text" in n for n, _ in model.named_parameters())
    assert model(pixel_values=torch.randn(2, 3, 32, 32)).shape == (2, 3)
    assert config.image_recipe().interpolation == "bicubic"


def test_decoder_blocks_by_structure(tiny_decoders):
    for family, layers in (("llama", "backbone.layers"), ("qwen2", "backbone.layers"), ("gpt2", "backbone.h")):
        blocks = find_blocks(build_model(config_of(tiny_decoders[family]), 2))
        assert [b[0] for b in blocks.blocks] == [f"{layers}.0", f"{layers}.1"], family
        assert blocks.blocks[-1][-1] in ("backbone.norm", "backbone.ln_f")  # the final norm joins the top block


# --------------------------------------------------------------------------- timm

def test_timm_preprocessing_blocks_and_drop_path():
    import timm.models

    config = TimmConfig(name="test_vit")
    cfg = timm.models.get_pretrained_cfg("test_vit")
    recipe = config.image_recipe()
    assert (recipe.crop_size, recipe.resize_size) == (cfg.input_size[-1], int(cfg.input_size[-1] / cfg.crop_pct))
    assert (recipe.interpolation, recipe.mean, recipe.std) == (cfg.interpolation, cfg.mean, cfg.std)
    model = build_model(config, 3, drop_path_rate=0.2)
    rates = [m.drop_prob for m in model.modules() if type(m).__name__ == "DropPath"]
    assert rates and max(rates) == pytest.approx(0.2)
    blocks = find_blocks(model)
    assert [b[0] for b in blocks.blocks] == [f"backbone.blocks.{i}" for i in range(len(model.backbone.blocks))]
    assert model(pixel_values=torch.randn(1, 3, 160, 160)).shape == (1, 3)


def test_timm_weights_from_a_file_and_from_the_local_hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(1)
    source = timm.create_model("test_resnet", num_classes=7)
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    model = build_model(TimmConfig(name="test_resnet", weights=str(tmp_path / "w.safetensors")), 3)
    assert torch.equal(next(model.backbone.parameters()), next(source.parameters()))

    cache = tmp_path / "hub"  # the layout huggingface_hub keeps: models--org--name/{refs,snapshots}
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = {"name": "t", "model": {"source": "timm", "name": "test_resnet", "weights": "hf-cache", "image_size": 32},
            "data": {"source": "digits"}, "strategies": [{"name": "full"}]}
    with pytest.raises(SpecError, match=r"model\.weights: hf-cache: the local Hugging Face cache has no weights of "
                                        r"timm/test_resnet\.r160_in1k .*nothing is downloaded at run time"):
        parse_job(spec)
    repo = cache / "models--timm--test_resnet.r160_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    save_file(source.state_dict(), str(repo / "snapshots" / ("0" * 40) / "model.safetensors"))
    job = parse_job(spec)
    model = build_model(job.model, 3)
    assert torch.equal(next(model.backbone.parameters()), next(source.parameters()))
    assert job.model.weights_path().endswith("model.safetensors")


def test_drop_path_rate_is_refused_where_the_model_has_none(resnet_weights):
    from tests.conftest import vision_spec

    spec = vision_spec(resnet_weights, strategies=[{"name": "full", "hparams": {"drop_path_rate": {"choice": [0.0, 0.1]}}}])
    with pytest.raises(SpecError, match=r"strategies\[0\]\.hparams\.drop_path_rate: stochastic depth .* resnet18 "
                                        r"\(torchvision\) has none"):
        parse_job(spec)
