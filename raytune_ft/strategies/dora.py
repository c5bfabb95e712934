from typing import Literal

from raytune_ft.strategies.base import register_strategy
from raytune_ft.strategies.lora import Lora, LoraFamilyConfig


class DoraConfig(LoraFamilyConfig):
    """DoRA (Liu et al. 2024, weight-decomposed LoRA): each adapted weight is a learned magnitude per output times
    a direction updated by LoRA; the same knobs as lora (lora with use_dora: true)."""

    name: Literal["dora"] = "dora"


@register_strategy
class Dora(Lora):
    name = "dora"
    Config = DoraConfig
    adapts = ("Linear", "Conv1D", "Conv1d", "Conv2d", "Conv3d")

    def use_dora(self, cfg) -> bool:
        return True
