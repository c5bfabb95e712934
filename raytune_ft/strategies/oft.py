from typing import Literal

from pydantic import Field

from raytune_ft.searchable import Searchable
from raytune_ft.strategies.base import register_strategy
from raytune_ft.strategies.peft_base import PeftStrategy, PeftStrategyConfig


class OftConfig(PeftStrategyConfig):
    """OFT (Qiu et al. 2023): each adapted weight is multiplied by a learned block-diagonal orthogonal matrix,
    which keeps the angles between its neurons (the pretrained 'hyperspherical energy')."""

    name: Literal["oft"] = "oft"
    block_size: Searchable(int, ge=1) = Field(
        32, description="size of each orthogonal block (peft's oft_block_size; moved to the nearest divisor of a "
        "layer's input size where it does not divide it)")
    coft: Searchable(bool) = Field(False, description="constrained OFT: keep the rotation within eps of identity")
    eps: Searchable(float, gt=0) = Field(6e-5, description="coft: how far from identity the rotation may go")
    dropout: Searchable(float, ge=0, lt=1) = Field(0.0, description="multiplicative dropout of whole blocks")


@register_strategy
class Oft(PeftStrategy):
    name = "oft"
    Config = OftConfig
    mapping = "TRANSFORMERS_MODELS_TO_OFT_TARGET_MODULES_MAPPING"
    adapts = ("Linear", "Conv2d")

    def peft_config(self, model, cfg, total_steps):
        import peft

        return peft.OFTConfig(r=0, oft_block_size=cfg.block_size, coft=cfg.coft, eps=cfg.eps,
                              module_dropout=cfg.dropout, target_modules=self.targets(model, cfg.target_modules))
