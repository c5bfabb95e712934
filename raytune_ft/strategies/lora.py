from typing import Literal, Optional

from pydantic import Field

from raytune_ft.space import Searchable
from raytune_ft.strategies.base import Strategy, StrategyConfig, register_strategy


class LoraConfig(StrategyConfig):
    """LoRA adapters (peft) on the backbone; the backbone's own weights stay frozen, the head trains."""

    name: Literal["lora"] = "lora"
    r: Searchable(int, ge=1) = Field(8, description="rank of the low-rank update")
    alpha: Searchable(float, gt=0) = Field(16.0, description="scaling: the update is multiplied by alpha / r")
    dropout: Searchable(float, ge=0, lt=1) = Field(0.0, description="dropout on the adapter input")
    target_modules: Optional[list[str]] = Field(
        None,
        description="module names to adapt; default: peft's list for the transformers model type "
        "(query/value for BERT), and every 1x1 or plain Conv2d / Linear of a vision backbone",
    )


def default_targets(model) -> list[str]:
    """Module names (relative to the backbone) that LoRA adapts by default."""
    from torch import nn

    backbone = model.backbone
    if model.kind == "text":
        from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as MAPPING

        model_type = backbone.config.model_type
        if model_type not in MAPPING:
            raise ValueError(
                f"no default LoRA targets for transformers model type {model_type!r}: "
                "set strategies[].target_modules (e.g. the names of the attention projections)"
            )
        return list(MAPPING[model_type])
    names = []
    for name, module in backbone.named_modules():
        if isinstance(module, nn.Linear):
            names.append(name)
        elif isinstance(module, nn.Conv2d) and module.groups == 1:
            # Subclasses that pad in forward (TF "same" padding) only line up with LoRA at 1x1.
            if type(module) is nn.Conv2d or module.kernel_size == (1, 1):
                names.append(name)
    if not names:
        raise ValueError("the vision backbone has no Linear or Conv2d layer LoRA can adapt: "
                         "set strategies[].target_modules")
    return names


@register_strategy
class Lora(Strategy):
    name = "lora"
    Config = LoraConfig

    def apply(self, model, knobs):
        import peft

        targets = knobs.get("target_modules") or default_targets(model)
        config = peft.LoraConfig(
            r=int(knobs["r"]),
            lora_alpha=float(knobs["alpha"]),
            lora_dropout=float(knobs["dropout"]),
            target_modules=targets,
            bias="none",
        )
        model.backbone = peft.get_peft_model(model.backbone, config)  # freezes all but the adapters
        for p in model.head.parameters():
            p.requires_grad_(True)
        return model
