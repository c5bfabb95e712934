from typing import Literal

from pydantic import Field

from raytune_ft.searchable import Searchable
from raytune_ft.strategies.base import register_strategy
from raytune_ft.strategies.peft_base import PeftStrategy, PeftStrategyConfig


class LohaConfig(PeftStrategyConfig):
    """LoHa: the weight update is a Hadamard product of two low-rank products (more expressive per rank)."""

    name: Literal["loha"] = "loha"
    r: Searchable(int, ge=1) = Field(8, description="rank of each low-rank factor")
    alpha: Searchable(float, gt=0) = Field(16.0, description="scaling: alpha / r")
    dropout: Searchable(float, ge=0, lt=1) = Field(0.0, description="rank dropout")


@register_strategy
class Loha(PeftStrategy):
    name = "loha"
    Config = LohaConfig
    mapping = "TRANSFORMERS_MODELS_TO_LOHA_TARGET_MODULES_MAPPING"
    adapts = ("Linear", "Conv1d", "Conv2d")

    def peft_config(self, model, cfg, total_steps):
        import peft

        return peft.LoHaConfig(r=cfg.r, alpha=cfg.alpha, rank_dropout=cfg.dropout,
                               target_modules=self.targets(model, cfg.target_modules))
