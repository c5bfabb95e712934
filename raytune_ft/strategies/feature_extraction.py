from typing import Literal

from raytune_ft.strategies.base import Strategy, StrategyConfig, register_strategy, set_trainable


class FeatureExtractionConfig(StrategyConfig):
    """The pretrained backbone is frozen (and kept in eval mode); only the new head trains."""

    name: Literal["feature_extraction"] = "feature_extraction"


@register_strategy
class FeatureExtraction(Strategy):
    name = "feature_extraction"
    Config = FeatureExtractionConfig
    trains_backbone = False

    def apply(self, model, cfg, *, total_steps=None):
        set_trainable(model, {n for n, _ in model.head.named_parameters(prefix="head")})
        return model

    def eval_modules(self, model, cfg, epoch):
        return [model.backbone]  # the features are exactly the pretrained ones
