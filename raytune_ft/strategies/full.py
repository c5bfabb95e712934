from typing import Literal

from raytune_ft.strategies.base import Strategy, StrategyConfig, register_strategy


class FullConfig(StrategyConfig):
    """Every weight of the pretrained model and the new head trains."""

    name: Literal["full"] = "full"


@register_strategy
class Full(Strategy):
    name = "full"
    Config = FullConfig

    def apply(self, model, cfg, *, total_steps=None):
        for p in model.parameters():
            p.requires_grad_(True)
        return model
