from typing import Literal

from raytune_ft.strategies.base import register_strategy
from raytune_ft.strategies.peft_base import PeftStrategy, PeftStrategyConfig, matched, model_type_targets


class LnTuningConfig(PeftStrategyConfig):
    """LN tuning (Zhao et al. 2024, peft's LNTuningConfig): only the normalisation layers train (peft trains a
    copy of each), and the head. target_modules default: peft's list for the model type, else every
    normalisation layer by type (LayerNorm, RMSNorm, BatchNorm, GroupNorm). norm_tuning does the same without peft."""

    name: Literal["ln_tuning"] = "ln_tuning"


@register_strategy
class LnTuning(PeftStrategy):
    name = "ln_tuning"
    Config = LnTuningConfig
    mapping = "TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING"
    adapts = ("normalisation",)

    def targets(self, model, target_modules):
        if target_modules:
            return list(target_modules)
        from raytune_ft.strategies.norm_tuning import norm_names

        names = model_type_targets(model, self.mapping) or norm_names(model.backbone)
        if not names:
            raise ValueError(f"the {type(model.backbone).__name__} backbone has no normalisation layer with "
                             "parameters (LayerNorm, RMSNorm, BatchNorm, GroupNorm): set strategies[].target_modules")
        return names

    def target_problem(self, model, target_modules):
        try:
            names = self.targets(model, target_modules)
        except ValueError as e:
            return str(e)
        found = matched(model.backbone, names)
        if not found or any(next(m.parameters(), None) is None for _, m in found):
            return f"{names} names no module with parameters of the {type(model.backbone).__name__} backbone"
        return None

    def peft_config(self, model, cfg, total_steps):
        import peft

        return peft.LNTuningConfig(target_modules=self.targets(model, cfg.target_modules))
