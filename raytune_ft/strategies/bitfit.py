from typing import Literal

from raytune_ft.strategies.base import Strategy, StrategyConfig, model_skeleton, register_strategy, set_trainable


class BitFitConfig(StrategyConfig):
    """BitFit (Zaken et al. 2021): only the backbone's bias terms and the new head train."""

    name: Literal["bitfit"] = "bitfit"


@register_strategy
class BitFit(Strategy):
    """Every parameter registered as `bias` on a backbone module trains: the biases of Linear / conv
    layers and the shift (beta) of normalisation layers, as in the paper's BERT runs, where LayerNorm's
    bias is one of the bias terms. A CNN whose convolutions have no bias (ResNet, EfficientNet) trains
    its BatchNorm shifts only. BatchNorm statistics update as in full fine-tuning (the modules stay in
    train mode): the shifts learn under the target data's batch statistics, and evaluation then uses
    running statistics of that same data."""

    name = "bitfit"
    Config = BitFitConfig

    @staticmethod
    def biases(model) -> set[str]:
        return {f"backbone.{prefix}.{local}" if prefix else f"backbone.{local}"
                for prefix, module in model.backbone.named_modules()
                for local, _ in module.named_parameters(recurse=False) if local == "bias"}

    def spec_problems(self, cfg, job):
        model = model_skeleton(job)
        if model is not None and not self.biases(model):
            yield "name", (f"{type(model.backbone).__name__} has no bias parameter (Llama-style decoders have none), "
                           "so BitFit would train the head alone: use norm_tuning, feature_extraction or an adapter")

    def apply(self, model, cfg, *, total_steps=None):
        biases = self.biases(model)
        if not biases:
            raise ValueError(f"{type(model.backbone).__name__} has no bias parameter, so BitFit would train "
                             "the head alone: use feature_extraction for that, or another strategy")
        set_trainable(model, biases | {n for n, _ in model.head.named_parameters(prefix="head")})
        return model
