"""Tiny models and data made on the spot: no test downloads anything."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Ray's single-machine mode for the local clusters the tests start, read once when Ray is imported: every
# server on 127.0.0.1 (what `raytune-ft run` sets before Ray is imported, sweep/ray_setup.py)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

ROOT = Path(__file__).resolve().parent.parent
POS = "good great fine nice lovely superb happy".split()
NEG = "bad awful poor nasty dreadful sad ugly".split()
FILLER = "the a movie film plot actor scene was is it this".split()


@pytest.fixture(scope="module")
def monkeypatch_module():
    """monkeypatch for a module's fixtures (an environment set up before a module's Ray cluster starts)."""
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer BERT (hidden 32) with a real WordPiece tokenizer, saved like a hub folder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POS + NEG + FILLER
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(path)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def resnet_weights(tmp_path_factory) -> Path:
    """A ResNet18 state dict on disk (random init: we test the loading path, not ImageNet)."""
    import torch
    from torchvision.models import resnet18

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pt"
    torch.save(resnet18().state_dict(), path)
    return path


def sentiment_rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = rng.sample(POS if label == "pos" else NEG, 2) + rng.sample(FILLER, 4)
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


@pytest.fixture
def text_csvs(tmp_path) -> dict[str, Path]:
    out = {}
    for split, n, seed in (("train", 64, 0), ("validation", 32, 1), ("test", 32, 2)):
        path = tmp_path / f"{split}.csv"
        path.write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in sentiment_rows(n, seed)))
        out[split] = path
    return out


def vision_spec(weights: Path, **over) -> dict:
    spec = {
        "name": "tiny-vision",
        "model": {"source": "torchvision", "name": "resnet18", "weights": str(weights), "image_size": 16},
        "data": {"source": "digits", "max_train_samples": 120},
        "strategies": [{"name": "full"}, {"name": "feature_extraction"}, {"name": "lora", "r": 2}],
        "training": {"epochs": 2},
        "search": {"num_samples": 1, "hparams": {"lr": 1e-3, "batch_size": 32}},
    }
    spec.update(over)
    return spec


def text_spec(model: Path, csvs: dict, **over) -> dict:
    spec = {
        "name": "tiny-text",
        "model": {"source": "transformers", "name": str(model), "max_length": 16},
        "data": {"source": "text_table", **{k: str(v) for k, v in csvs.items() if v is not None}},
        "strategies": [{"name": "full"}, {"name": "feature_extraction"}, {"name": "lora", "r": 2}],
        "training": {"epochs": 2},
        "search": {"num_samples": 1, "hparams": {"lr": 3e-3, "batch_size": 16}},
    }
    spec.update(over)
    return spec


@pytest.fixture(scope="session")
def tiny_decoders(tmp_path_factory) -> dict[str, Path]:
    """2-layer Llama, Qwen2 and GPT-2 folders (hidden 32; tokenizers with an EOS and no pad token, right
    padding), plus "llama-left" (the same Llama weights, a left-padding tokenizer)."""
    from tests.tiny_models import DECODERS, save_decoder

    root = tmp_path_factory.mktemp("decoders")
    out = {family: save_decoder(root / family, family) for family in DECODERS}
    out["llama-left"] = save_decoder(root / "llama-left", "llama", padding_side="left")
    return out


@pytest.fixture(scope="session")
def tiny_vits(tmp_path_factory) -> dict[str, Path]:
    """A 2-layer ViT and DINOv2 (hidden 32, 32 x 32 images) with their image processors."""
    from tests.tiny_models import save_vit

    root = tmp_path_factory.mktemp("vits")
    return {family: save_vit(root / family, family) for family in ("vit", "dinov2")}


def decoder_spec(model: Path, csvs: dict, **over) -> dict:
    """text_spec on a decoder folder: the same data, its own name."""
    return text_spec(model, csvs, **{"name": "tiny-decoder", **over})
