from typing import Literal

from pydantic import Field, model_validator

from raytune_ft.space import Sampler, Searchable
from raytune_ft.strategies.base import register_strategy
from raytune_ft.strategies.peft_base import PeftStrategy, PeftStrategyConfig


class AdaLoraConfig(PeftStrategyConfig):
    """AdaLoRA: LoRA whose rank budget is reallocated during training, from init_r down to target_r
    per layer on average, towards the layers that matter (Linear layers only)."""

    name: Literal["adalora"] = "adalora"
    init_r: Searchable(int, ge=1) = Field(12, description="rank every layer starts with")
    target_r: Searchable(int, ge=1) = Field(8, description="average rank after the budget is pruned")
    alpha: Searchable(float, gt=0) = Field(16.0)

    @model_validator(mode="after")
    def _ranks(self):
        if not isinstance(self.init_r, Sampler) and not isinstance(self.target_r, Sampler) \
                and self.target_r > self.init_r:
            raise ValueError(f"target_r ({self.target_r}) must not exceed init_r ({self.init_r})")
        return self


@register_strategy
class AdaLora(PeftStrategy):
    name = "adalora"
    Config = AdaLoraConfig
    mapping = "TRANSFORMERS_MODELS_TO_ADALORA_TARGET_MODULES_MAPPING"
    linear_only = True

    def peft_config(self, model, knobs):
        import peft

        total = int(knobs.get("total_steps") or 100)  # the worker passes the trial's optimizer steps
        return peft.AdaLoraConfig(
            init_r=int(knobs["init_r"]), target_r=min(int(knobs["target_r"]), int(knobs["init_r"])),
            lora_alpha=float(knobs["alpha"]), target_modules=self.targets(model, knobs), total_step=total,
            tinit=int(total * 0.1), tfinal=int(total * 0.2), deltaT=max(1, total // 20))

    def after_step(self, model, step):
        model.backbone.base_model.update_and_allocate(step)
