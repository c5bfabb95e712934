from typing import Literal

from pydantic import Field

from raytune_ft.searchable import Searchable
from raytune_ft.strategies.base import StrategyConfig, register_strategy, set_trainable
from raytune_ft.strategies.blockwise import BlockwiseStrategy


class PartialConfig(StrategyConfig):
    """Train only the last N blocks of the backbone plus the head; the rest stays frozen (eval mode)."""

    name: Literal["partial"] = "partial"
    trainable_blocks: Searchable(int, ge=0) = Field(
        2, description="blocks nearest the head that train (more than the model has: all, and the stem)")
    layer_decay: Searchable(float, gt=0, le=1) = Field(1.0, description="per block lr x decay^depth (1: off)")


@register_strategy
class Partial(BlockwiseStrategy):
    name = "partial"
    Config = PartialConfig

    def trained_groups(self, n: int) -> list[str]:
        return self.order[::-1][:n]  # from the top down; the stem last

    def apply(self, model, cfg, *, total_steps=None):
        names = self._structure(model)
        keep = {n for n, _ in model.head.named_parameters(prefix="head")}
        for g in self.trained_groups(cfg.trainable_blocks):
            keep |= names[g]
        set_trainable(model, keep)
        return model

    def lr_scale(self, group, cfg, epoch):
        return self.decayed(group, cfg.layer_decay)

    def eval_modules(self, model, cfg, epoch):
        trained = set(self.trained_groups(cfg.trainable_blocks))
        return self.modules(model, [g for g in self.order if g not in trained])
