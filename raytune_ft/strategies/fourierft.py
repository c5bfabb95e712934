from typing import Literal

from pydantic import Field

from raytune_ft.searchable import Searchable
from raytune_ft.strategies.base import register_strategy
from raytune_ft.strategies.peft_base import PeftStrategy, PeftStrategyConfig, in_size, out_size, values


class FourierFtConfig(PeftStrategyConfig):
    """FourierFT (Gao et al. 2024): each layer learns n_frequency spectral coefficients at fixed random
    frequencies; the weight update is their inverse 2-D Fourier transform."""

    name: Literal["fourierft"] = "fourierft"
    n_frequency: Searchable(int, ge=1) = Field(
        1000, description="learned coefficients per layer (at most the layer's in x out size)")
    scaling: Searchable(float, gt=0) = Field(150.0, description="scale of the update, as LoRA's alpha (peft: "
                                             "100-150 for RoBERTa, 300 for LLaMA and ViT)")


@register_strategy
class FourierFt(PeftStrategy):
    """The frequencies are drawn with peft's fixed random_loc_seed: a rebuilt model (reload) has the same ones."""

    name = "fourierft"
    Config = FourierFtConfig
    mapping = "TRANSFORMERS_MODELS_TO_FOURIERFT_TARGET_MODULES_MAPPING"
    adapts = ("Linear", "Conv1D")
    cnn_hint = "lora, loha, lokr, oft, boft or hra (FourierFT has no convolution form)"

    def peft_config(self, model, cfg, total_steps):
        import peft

        return peft.FourierFTConfig(n_frequency=cfg.n_frequency, scaling=cfg.scaling,
                                    target_modules=self.targets(model, cfg.target_modules))

    def shape_problems(self, cfg, targets):
        smallest = min(((in_size(m) * out_size(m), path) for path, m in targets), default=None)
        if smallest and max(values(cfg.n_frequency)) > smallest[0]:
            yield "n_frequency", (f"{max(values(cfg.n_frequency))} is more than {smallest[1]} has entries "
                                  f"({smallest[0]}): keep it at most that")
