"""Vision backbones: any torchvision classification model, and EfficientNet-Lite."""
from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

from raytune_ft.models.base import Source, VisionModelConfig, load_state_dict, register_source


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

    @model_validator(mode="after")
    def _enum_fits(self):
        """A weights enum must exist and belong to this model (checked offline: nothing is downloaded)."""
        from torchvision import models

        if self.weights is None or self.weights_file() is not None:
            return self
        try:
            weights = models.get_weight(self.weights)
        except (ValueError, KeyError, AttributeError):
            weights = None
        allowed = [f"{w.__class__.__name__}.{w.name}" for w in models.get_model_weights(self.name)]
        if weights is None or f"{weights.__class__.__name__}.{weights.name}" not in allowed:
            raise ValueError(f"weights: {self.weights!r} is not a torchvision weights enum of {self.name}; "
                             f"use one of {', '.join(allowed) or '(none: give a state-dict file or null)'}")
        return self

    def image_recipe(self):
        """A weights enum's own preprocessing (its resize, crop, interpolation, mean / std; what is set in
        the spec wins); a state-dict file or random init: the standard ImageNet recipe."""
        if self.weights is None or self.weights_file() is not None:
            return super().image_recipe()
        from torchvision import models

        from raytune_ft.data.images import ImageRecipe

        return ImageRecipe.from_torchvision(models.get_weight(self.weights).transforms(),
                                            self.image_size, self.mean, self.std)


@register_source
class Torchvision(Source):
    name = "torchvision"
    family = "vision"
    Config = TorchvisionConfig

    def build(self, config, num_classes, *, drop_path_rate=None):
        from torchvision import models

        enum = None if config.weights_file() or config.weights is None else config.weights
        from raytune_ft.models.classifier import Classifier, strip_head

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

    def build(self, config, num_classes, *, drop_path_rate=None):
        from efficientnet_lite_pytorch import EfficientNet
        from torch import nn

        from raytune_ft.models.classifier import Classifier, strip_head

        model = EfficientNet.from_name(config.name)
        _load_weights(model, config)
        _plain_convs(model)
        for m in model.modules():  # TF's BN momentum (0.99 = torch 0.01) barely adapts in a short fine-tune
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
        return Classifier(model, strip_head(model), num_classes, "vision")


def _plain_convs(model) -> None:
    """Turn TF-"same"-padding convs whose padding is nothing (all 1x1) into plain nn.Conv2d.

    They compute the same thing, and adapters (peft builds LoRA's conv with the base layer's own
    class) and other tools then see ordinary convolutions.
    """
    from torch import nn

    for name, module in list(model.named_modules()):
        if type(module) is not nn.Conv2d and isinstance(module, nn.Conv2d) \
                and hasattr(module, "static_padding") \
                and not isinstance(module.static_padding, nn.ZeroPad2d):
            plain = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                              0, module.dilation, module.groups, module.bias is not None)
            plain.load_state_dict(module.state_dict())
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, plain)
