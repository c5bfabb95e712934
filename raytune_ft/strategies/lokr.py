from typing import Literal

from pydantic import Field

from raytune_ft.searchable import Searchable
from raytune_ft.strategies.base import register_strategy
from raytune_ft.strategies.peft_base import PeftStrategy, PeftStrategyConfig


class LokrConfig(PeftStrategyConfig):
    """LoKr (LyCORIS; Yeh et al. 2023): the weight update is a Kronecker product of a small matrix and a
    low-rank one, a high-rank update from few parameters."""

    name: Literal["lokr"] = "lokr"
    r: Searchable(int, ge=1) = Field(8, description="rank of the low-rank Kronecker factor")
    alpha: Searchable(float, gt=0) = Field(16.0, description="scaling: alpha / r")
    dropout: Searchable(float, ge=0, lt=1) = Field(0.0, description="rank dropout")
    decompose_factor: Searchable(int, ge=-1) = Field(
        -1, description="the Kronecker split of each dimension (-1: as close to its square root as it divides)")


@register_strategy
class Lokr(PeftStrategy):
    name = "lokr"
    Config = LokrConfig
    mapping = "TRANSFORMERS_MODELS_TO_LOKR_TARGET_MODULES_MAPPING"
    adapts = ("Linear", "Conv1d", "Conv2d")

    def peft_config(self, model, cfg, total_steps):
        import peft

        return peft.LoKrConfig(r=cfg.r, alpha=cfg.alpha, rank_dropout=cfg.dropout,
                               decompose_factor=cfg.decompose_factor,
                               target_modules=self.targets(model, cfg.target_modules))
