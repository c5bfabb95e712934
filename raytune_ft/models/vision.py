"""Vision backbones: any torchvision classification model, and EfficientNet-Lite."""
from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from raytune_ft.models.base import Source, VisionModelConfig, load_state_dict, register_source
from raytune_ft.models.classifier import Classifier, strip_head


def _load_weights(model, config: VisionModelConfig) -> None:
    path = config.weights_file()
    if path is None:
        return
    state = load_state_dict(path)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # The old classification head may be absent or shaped differently: it is replaced anyway.
    missing = [k for k in missing if not k.split(".")[0] in ("fc", "classifier", "heads", "head", "_fc")]
    if missing:
        raise ValueError(f"weights file {path} lacks {len(missing)} of the model's tensors, e.g. "
                         f"{missing[:3]}: is it a state dict for {config.name}?")


class TorchvisionConfig(VisionModelConfig):
    source: Literal["torchvision"] = "torchvision"

    @field_validator("name")
    @classmethod
    def _known(cls, name):
        from torchvision import models

        if name not in models.list_models(module=models):
            raise ValueError(f"torchvision has no classification model {name!r}; "
                             f"e.g. resnet18, mobilenet_v3_small, efficientnet_b0, vit_b_16")
        return name


@register_source
class Torchvision(Source):
    name = "torchvision"
    family = "vision"
    Config = TorchvisionConfig

    def build(self, config, num_classes):
        from torchvision import models

        enum = None if config.weights_file() or config.weights is None else config.weights
        model = models.get_model(config.name, weights=enum)
        if config.weights_file():
            _load_weights(model, config)
        return Classifier(model, strip_head(model), num_classes, "vision")


class EfficientNetLiteConfig(VisionModelConfig):
    source: Literal["efficientnet_lite"] = "efficientnet_lite"
    name: Literal["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2",
                  "efficientnet-lite3", "efficientnet-lite4"] = "efficientnet-lite0"


@register_source
class EfficientNetLite(Source):
    """EfficientNet-Lite from `efficientnet-lite-pytorch` (efficientnet_pytorch key names)."""

    name = "efficientnet_lite"
    family = "vision"
    Config = EfficientNetLiteConfig

    def build(self, config, num_classes):
        from efficientnet_lite_pytorch import EfficientNet

        model = EfficientNet.from_name(config.name)
        _load_weights(model, config)
        return Classifier(model, strip_head(model), num_classes, "vision")
