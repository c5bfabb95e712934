from typing import Literal, Optional

from pydantic import Field

from raytune_ft.strategies.base import register_strategy
from raytune_ft.strategies.peft_base import PeftStrategy, PeftStrategyConfig, model_type_targets


class Ia3Config(PeftStrategyConfig):
    """(IA)^3: learned per-channel scaling of activations (keys, values, feed-forward); tiny and fast."""

    name: Literal["ia3"] = "ia3"
    feedforward_modules: Optional[list[str]] = Field(
        None, description="targets whose input (not output) is scaled; default: peft's list for the model type")


@register_strategy
class Ia3(PeftStrategy):
    name = "ia3"
    Config = Ia3Config
    mapping = "TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING"
    adapts = ("Linear", "Conv1D", "Conv2d", "Conv3d")

    def peft_config(self, model, cfg, total_steps):
        import peft

        targets = self.targets(model, cfg.target_modules)
        ff = cfg.feedforward_modules
        if ff is None:
            ff = (model_type_targets(model, "TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING") or []
                  if not cfg.target_modules and model_type_targets(model, self.mapping) else [])
        return peft.IA3Config(target_modules=targets, feedforward_modules=ff)
