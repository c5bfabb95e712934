from typing import Literal

from pydantic import Field

from raytune_ft.searchable import Searchable
from raytune_ft.strategies.base import register_strategy
from raytune_ft.strategies.peft_base import PeftStrategy, PeftStrategyConfig, values


class HraConfig(PeftStrategyConfig):
    """HRA (Yuan et al. 2024): each adapted weight is multiplied by a chain of r learned Householder
    reflections, an orthogonal update with r vectors per layer."""

    name: Literal["hra"] = "hra"
    r: Searchable(int, ge=1) = Field(8, description="Householder reflections per layer (even: peft's start is "
                                     "then the identity)")
    apply_gs: Searchable(bool) = Field(False, description="Gram-Schmidt orthogonalise the reflection vectors")


@register_strategy
class Hra(PeftStrategy):
    name = "hra"
    Config = HraConfig
    mapping = "TRANSFORMERS_MODELS_TO_HRA_TARGET_MODULES_MAPPING"
    adapts = ("Linear", "Conv2d")

    def peft_config(self, model, cfg, total_steps):
        import peft

        return peft.HRAConfig(r=cfg.r, apply_GS=cfg.apply_gs, target_modules=self.targets(model, cfg.target_modules))

    def spec_problems(self, cfg, job):
        yield from super().spec_problems(cfg, job)
        if any(r % 2 for r in values(cfg.r)):
            yield "r", "HRA starts as the identity only with an even r (pairs of equal reflections): use even values"
