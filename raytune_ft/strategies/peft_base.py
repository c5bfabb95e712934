"""Shared by the peft methods: adapters on the backbone (its own weights frozen), the new head trains."""
from __future__ import annotations

from typing import ClassVar, Optional

from pydantic import Field

from raytune_ft.strategies.base import Strategy, StrategyConfig


class PeftStrategyConfig(StrategyConfig):
    target_modules: Optional[list[str]] = Field(
        None, description="module names to adapt; default: peft's list for the transformers model type, and "
        "every 1x1 or plain Conv2d / Linear of a vision backbone")


def model_type_targets(model, mapping_name: str) -> list[str]:
    """peft's default target modules for this transformers model type, from its named mapping."""
    import peft.utils

    mapping = getattr(peft.utils, mapping_name)
    model_type = model.backbone.config.model_type
    if model_type not in mapping:
        raise ValueError(f"peft has no default targets for model type {model_type!r}: "
                         "set strategies[].target_modules")
    return list(mapping[model_type])


def vision_targets(model, linear_only: bool = False) -> list[str]:
    """Every Linear, and every Conv2d with groups == 1 that peft can wrap, in the backbone."""
    from torch import nn

    names = []
    for name, module in model.backbone.named_modules():
        if isinstance(module, nn.Linear):
            names.append(name)
        elif not linear_only and isinstance(module, nn.Conv2d) and module.groups == 1:
            # Subclasses that pad in forward (TF "same" padding) only line up with adapters at 1x1.
            if type(module) is nn.Conv2d or module.kernel_size == (1, 1):
                names.append(name)
    if not names:
        kinds = "Linear" if linear_only else "Linear or Conv2d"
        raise ValueError(f"the {type(model.backbone).__name__} backbone has no {kinds} layer this method can "
                         "adapt: set strategies[].target_modules, or pick lora / loha for a CNN")
    return names


class PeftStrategy(Strategy):
    trains_backbone = False
    mapping: ClassVar[str] = "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING"
    linear_only: ClassVar[bool] = False

    def targets(self, model, target_modules: Optional[list[str]]) -> list[str]:
        """The modules to adapt: those named, or the default for the model (see PeftStrategyConfig)."""
        if target_modules:
            return list(target_modules)
        if model.kind == "text":
            return model_type_targets(model, self.mapping)
        return vision_targets(model, self.linear_only)

    def peft_config(self, model, cfg, total_steps: Optional[int]):
        """peft's config object for this method, from the trial's knobs."""
        raise NotImplementedError

    def apply(self, model, cfg, *, total_steps=None):
        import peft

        model.backbone = peft.get_peft_model(model.backbone, self.peft_config(model, cfg, total_steps))
        for p in model.head.parameters():  # get_peft_model froze the backbone, not our head
            p.requires_grad_(True)
        return model


class PromptLearningStrategy(PeftStrategy):
    """peft's prompt-learning methods (text only): learned virtual tokens, the encoder frozen."""

    families = ("text",)
    peft_class: ClassVar[str]  # the peft config class, e.g. "PromptTuningConfig"

    def peft_config(self, model, cfg, total_steps):
        import peft

        return getattr(peft, self.peft_class)(task_type="FEATURE_EXTRACTION",
                                              num_virtual_tokens=cfg.num_virtual_tokens)
