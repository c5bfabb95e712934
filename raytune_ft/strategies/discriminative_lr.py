from typing import Literal

from pydantic import Field

from raytune_ft.searchable import Searchable
from raytune_ft.strategies.base import StrategyConfig, register_strategy
from raytune_ft.strategies.blockwise import BlockwiseStrategy


class DiscriminativeLrConfig(StrategyConfig):
    """Full fine-tuning where each block learns at base lr x decay^(depth from the top); the head fastest.

    partial and gradual_unfreeze take the same `layer_decay` knob to combine with it."""

    name: Literal["discriminative_lr"] = "discriminative_lr"
    layer_decay: Searchable(float, gt=0, le=1) = Field(0.8, description="lr ratio between a block and the one above")


@register_strategy
class DiscriminativeLr(BlockwiseStrategy):
    name = "discriminative_lr"
    Config = DiscriminativeLrConfig

    def apply(self, model, cfg, *, total_steps=None):
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    def lr_scale(self, group, cfg, epoch):
        return self.decayed(group, cfg.layer_decay)
