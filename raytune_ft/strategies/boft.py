from typing import Literal

from pydantic import Field

from raytune_ft.searchable import Searchable
from raytune_ft.strategies.base import register_strategy
from raytune_ft.strategies.peft_base import PeftStrategy, PeftStrategyConfig, in_size, values


class BoftConfig(PeftStrategyConfig):
    """BOFT (Liu et al. 2024): OFT whose orthogonal matrix is a product of sparse butterfly factors, a dense
    rotation from few parameters."""

    name: Literal["boft"] = "boft"
    block_size: Searchable(int, ge=1) = Field(
        4, description="size of each orthogonal block (peft's boft_block_size); must divide every target's input size")
    butterfly_factor: Searchable(int, ge=1) = Field(
        1, description="butterfly factors (peft's boft_n_butterfly_factor; 1: plain block-diagonal OFT)")
    dropout: Searchable(float, ge=0, lt=1) = Field(0.0, description="multiplicative dropout of whole blocks")


@register_strategy
class Boft(PeftStrategy):
    name = "boft"
    Config = BoftConfig
    mapping = "TRANSFORMERS_MODELS_TO_BOFT_TARGET_MODULES_MAPPING"
    adapts = ("Linear", "Conv2d")

    def peft_config(self, model, cfg, total_steps):
        import peft

        return peft.BOFTConfig(boft_block_size=cfg.block_size, boft_n_butterfly_factor=cfg.butterfly_factor,
                               boft_dropout=cfg.dropout, target_modules=self.targets(model, cfg.target_modules))

    def shape_problems(self, cfg, targets):
        for size in values(cfg.block_size):
            misfit = [(path, in_size(m)) for path, m in targets if in_size(m) % size]
            if misfit:
                yield "block_size", (f"{size} does not divide the input size of {misfit[0][0]} ({misfit[0][1]}"
                                     f"{f' and {len(misfit) - 1} more' if len(misfit) > 1 else ''}): pick a divisor")
                return
