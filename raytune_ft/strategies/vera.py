from typing import Literal

from pydantic import Field

from raytune_ft.searchable import Searchable
from raytune_ft.strategies.base import register_strategy
from raytune_ft.strategies.peft_base import PeftStrategy, PeftStrategyConfig


class VeraConfig(PeftStrategyConfig):
    """VeRA (Kopiczko et al. 2024): one pair of frozen random low-rank matrices shared by every adapted layer;
    each layer learns only two scaling vectors (far fewer parameters than LoRA)."""

    name: Literal["vera"] = "vera"
    r: Searchable(int, ge=1) = Field(256, description="rank of the shared random matrices (costs no trainable "
                                     "parameter beyond one scale per rank and layer)")
    dropout: Searchable(float, ge=0, lt=1) = Field(0.0, description="dropout on the adapter input")
    d_initial: Searchable(float, gt=0) = Field(0.1, description="start value of the per-rank scaling vector")


@register_strategy
class Vera(PeftStrategy):
    """The shared random matrices are seeded by peft's fixed projection_prng_key, so a rebuilt model (reload)
    gets the same ones; they are saved with each checkpoint as buffers too."""

    name = "vera"
    Config = VeraConfig
    mapping = "TRANSFORMERS_MODELS_TO_VERA_TARGET_MODULES_MAPPING"
    adapts = ("Linear", "Conv1D")
    cnn_hint = "lora, loha, lokr, oft, boft or hra (VeRA has no convolution form)"

    def peft_config(self, model, cfg, total_steps):
        import peft

        return peft.VeraConfig(r=cfg.r, vera_dropout=cfg.dropout, d_initial=cfg.d_initial,
                               target_modules=self.targets(model, cfg.target_modules))
