from typing import Literal

from pydantic import Field

from raytune_ft.searchable import Searchable
from raytune_ft.strategies.base import StrategyConfig, register_strategy
from raytune_ft.strategies.blockwise import BlockwiseStrategy


class GradualUnfreezeConfig(StrategyConfig):
    """ULMFiT-style: the head alone first, then one more block group, from the top down, every k epochs."""

    name: Literal["gradual_unfreeze"] = "gradual_unfreeze"
    every_epochs: Searchable(int, ge=1) = Field(1, description="epochs between two unfreezings")
    layer_decay: Searchable(float, gt=0, le=1) = Field(1.0, description="per block lr x decay^depth (1: off)")


@register_strategy
class GradualUnfreeze(BlockwiseStrategy):
    """Every parameter is in the optimizer (and in DDP's sync) from the start; a still-frozen group has
    learning rate 0, so it does not move, and its modules run in eval mode. Unfreezing is setting
    its scale: the optimizer picks it up at once and the shared schedule goes on undisturbed."""

    name = "gradual_unfreeze"
    Config = GradualUnfreezeConfig

    def apply(self, model, cfg, *, total_steps=None):
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    def unfrozen(self, cfg, epoch: int) -> list[str]:
        n = (epoch - 1) // cfg.every_epochs
        return self.order[::-1][:n]

    def lr_scale(self, group, cfg, epoch):
        if group != "head" and group not in self.unfrozen(cfg, epoch):
            return 0.0
        return self.decayed(group, cfg.layer_decay)

    def eval_modules(self, model, cfg, epoch):
        live = set(self.unfrozen(cfg, epoch))
        return self.modules(model, [g for g in self.order if g not in live])
