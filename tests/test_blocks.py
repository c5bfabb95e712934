"""Stem / blocks / head split of every model family (tiny or weightless models: nothing downloaded)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from raytune_ft.models.blocks import Blocks, find_blocks  # noqa: E402
from raytune_ft.models.classifier import Classifier, strip_head  # noqa: E402

TINY_TEXT = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=64)


def vision(model):
    return Classifier(model, strip_head(model), 3, "vision")


def resnet18():
    from torchvision.models import resnet18

    return vision(resnet18(weights=None))


def mobilenet_v3_small():
    from torchvision.models import mobilenet_v3_small

    return vision(mobilenet_v3_small(weights=None))


def efficientnet_b0():
    from torchvision.models import efficientnet_b0

    return vision(efficientnet_b0(weights=None))


def vit():
    from torchvision.models import VisionTransformer

    return vision(VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                    hidden_dim=32, mlp_dim=64))


def efficientnet_lite0():
    from efficientnet_lite_pytorch import EfficientNet

    return vision(EfficientNet.from_name("efficientnet-lite0"))


def bert():
    from transformers import BertConfig, BertModel

    backbone = BertModel(BertConfig(**TINY_TEXT))
    backbone.pooler = None
    return Classifier(backbone, 32, 3, "text")


def roberta():
    from transformers import RobertaConfig, RobertaModel

    backbone = RobertaModel(RobertaConfig(**TINY_TEXT))
    backbone.pooler = None
    return Classifier(backbone, 32, 3, "text")


def distilbert():
    from transformers import DistilBertConfig, DistilBertModel

    backbone = DistilBertModel(DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                                max_position_embeddings=64))
    return Classifier(backbone, 32, 3, "text")


def unknown():
    return Classifier(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8)), 8, 2, "vision")


# builder, block count, stem, first block, last block (paths under the Classifier)
FAMILIES = {
    "resnet18": (resnet18, 8, ["backbone.conv1", "backbone.bn1"], ["backbone.layer1.0"], ["backbone.layer4.1"]),
    "mobilenet_v3_small": (mobilenet_v3_small, 11, ["backbone.features.0"], ["backbone.features.1"],
                           # classifier.0 is the Linear left in the backbone before the stripped one
                           ["backbone.features.11", "backbone.features.12", "backbone.classifier"]),
    "efficientnet_b0": (efficientnet_b0, 16, ["backbone.features.0"], ["backbone.features.1.0"],
                        ["backbone.features.7.0", "backbone.features.8"]),
    "vit": (vit, 2, ["backbone.class_token", "backbone.conv_proj", "backbone.encoder.pos_embedding"],
            ["backbone.encoder.layers.encoder_layer_0"],
            ["backbone.encoder.layers.encoder_layer_1", "backbone.encoder.ln"]),
    "efficientnet_lite0": (efficientnet_lite0, 16, ["backbone._conv_stem", "backbone._bn0"], ["backbone._blocks.0"],
                           ["backbone._blocks.15", "backbone._conv_head", "backbone._bn1"]),
    "bert": (bert, 2, ["backbone.embeddings"], ["backbone.encoder.layer.0"], ["backbone.encoder.layer.1"]),
    "roberta": (roberta, 2, ["backbone.embeddings"], ["backbone.encoder.layer.0"], ["backbone.encoder.layer.1"]),
    "distilbert": (distilbert, 2, ["backbone.embeddings"], ["backbone.transformer.layer.0"],
                   ["backbone.transformer.layer.1"]),
}


def assert_partition(model, blocks: Blocks) -> list[set[str]]:
    """Every parameter in exactly one group; groups follow the parameters' (= forward) order."""
    names = [n for n, _ in model.named_parameters()]
    groups = [blocks.parameter_names(model, g) for g in [blocks.stem, *blocks.blocks, blocks.head]]
    assert all(groups[1:]), "every block and the head hold parameters"
    assert sum(len(g) for g in groups) == len(names), "a parameter is in two groups"
    assert set().union(*groups) == set(names), "a parameter is in no group"
    position = {n: i for i, n in enumerate(names)}
    spans = [(min(position[n] for n in g), max(position[n] for n in g)) for g in groups if g]
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end < start, "groups are not ordered bottom -> top"
    modules = dict(model.named_modules())
    for path in blocks.stem + [p for b in blocks.blocks for p in b] + blocks.head:
        assert path in modules or path in position, path
    return groups


@pytest.mark.parametrize("family", FAMILIES)
def test_family(family):
    build, count, stem, first, last = FAMILIES[family]
    model = build()
    blocks = find_blocks(model)
    assert len(blocks.blocks) == count
    assert blocks.stem == stem
    assert blocks.blocks[0] == first
    assert blocks.blocks[-1] == last  # the last block is the one nearest the head
    assert blocks.head == ["head"]
    assert_partition(model, blocks)


def test_unknown_model_asks_for_block_paths():
    with pytest.raises(ValueError, match=r"Sequential.*model\.block_paths.*\['0', '2'\]"):
        find_blocks(unknown())


def test_block_paths_override():
    model = unknown()
    blocks = find_blocks(model, block_paths=["0", "2"])
    assert blocks.stem == [] and blocks.blocks == [["backbone.0"], ["backbone.2"]]
    assert_partition(model, blocks)

    model = resnet18()
    blocks = find_blocks(model, block_paths=["layer1", "layer2", "layer3", "layer4"])
    assert blocks.stem == ["backbone.conv1", "backbone.bn1"]
    assert [b[0] for b in blocks.blocks] == [f"backbone.layer{i}" for i in range(1, 5)]
    assert_partition(model, blocks)


def test_block_paths_between_and_after_blocks():
    # Unlisted layers between two blocks join the next one; those after the last join the last.
    model = Classifier(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4),
                                     nn.Linear(4, 4)), 4, 2, "vision")
    blocks = find_blocks(model, block_paths=["1", "3"])
    assert blocks.stem == ["backbone.0"]
    assert blocks.blocks == [["backbone.1"], ["backbone.2", "backbone.3", "backbone.4"]]
    assert_partition(model, blocks)


@pytest.mark.parametrize("paths, message", [
    (["layer1", "nope.3"], "'nope.3'"),
    (["layer1", "layer1.0"], "overlap"),
    (["relu"], "no parameters"),
    ([], "empty"),
])
def test_bad_block_paths(paths, message):
    with pytest.raises(ValueError, match=message):
        find_blocks(resnet18(), block_paths=paths)


def test_mixed_block_kinds():
    # EfficientNetV2: FusedMBConv stages, then MBConv stages, are all blocks.
    from torchvision.models import efficientnet_v2_s

    model = vision(efficientnet_v2_s(weights=None))
    blocks = find_blocks(model)
    assert len(blocks.blocks) == 40
    assert blocks.stem == ["backbone.features.0"] and blocks.blocks[0] == ["backbone.features.1.0"]
    assert_partition(model, blocks)


def test_peft_wrapped_backbone():
    peft = pytest.importorskip("peft")
    model = bert()
    model.backbone = peft.get_peft_model(model.backbone, peft.LoraConfig(r=2, target_modules=["query", "value"]))
    for block_paths in (None, ["encoder.layer.0", "encoder.layer.1"]):
        blocks = find_blocks(model, block_paths)
        assert blocks.stem == ["backbone.base_model.model.embeddings"]
        assert blocks.blocks == [[f"backbone.base_model.model.encoder.layer.{i}"] for i in range(2)]
        groups = assert_partition(model, blocks)
        assert any("lora_A" in n for n in groups[1])  # adapters belong to their block


def test_not_a_classifier():
    with pytest.raises(ValueError, match="Classifier"):
        find_blocks(nn.Linear(2, 2))
