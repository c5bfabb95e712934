from typing import Literal

from pydantic import Field

from raytune_ft.searchable import Searchable
from raytune_ft.strategies.base import register_strategy
from raytune_ft.strategies.peft_base import PeftStrategy, PeftStrategyConfig


class LoraConfig(PeftStrategyConfig):
    """LoRA adapters (peft) on the backbone; the backbone's own weights stay frozen, the head trains."""

    name: Literal["lora"] = "lora"
    r: Searchable(int, ge=1) = Field(8, description="rank of the low-rank update")
    alpha: Searchable(float, gt=0) = Field(16.0, description="scaling: the update is multiplied by alpha / r")
    dropout: Searchable(float, ge=0, lt=1) = Field(0.0, description="dropout on the adapter input")


@register_strategy
class Lora(PeftStrategy):
    name = "lora"
    Config = LoraConfig

    def peft_config(self, model, cfg, total_steps):
        import peft

        return peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                               target_modules=self.targets(model, cfg.target_modules),
                               bias="none")
