from typing import Literal

from raytune_ft.strategies.base import Strategy, StrategyConfig, register_strategy, set_trainable


class NormTuningConfig(StrategyConfig):
    """Only the normalisation layers' scale and shift (BatchNorm / LayerNorm / GroupNorm...) and the new head train."""

    name: Literal["norm_tuning"] = "norm_tuning"


def norm_types() -> tuple:
    """The normalisation layers, by their public types: BatchNorm (1d/2d/3d, lazy, SyncBatchNorm),
    InstanceNorm (1d/2d/3d, lazy), LayerNorm, GroupNorm, RMSNorm; subclasses (timm's BatchNormAct2d,
    LayerNorm2d) too."""
    from torch import nn

    return (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LazyBatchNorm1d, nn.LazyBatchNorm2d,
            nn.LazyBatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
            nn.LazyInstanceNorm1d, nn.LazyInstanceNorm2d, nn.LazyInstanceNorm3d, nn.LayerNorm, nn.GroupNorm,
            nn.RMSNorm)


@register_strategy
class NormTuning(Strategy):
    """The trainable set is every parameter of a backbone module that is a normalisation layer by type
    (`norm_types`), not by its name. BatchNorm running statistics update, as in full fine-tuning (the
    modules stay in train mode): the scales and shifts are learned under the target data's batch
    statistics, so evaluation must use running statistics of that same data; statistics frozen at the
    pretraining values would need the layers in eval mode throughout, which is feature extraction with
    an affine tweak. Re-estimating the statistics on the new data is itself a known adaptation (AdaBN)."""

    name = "norm_tuning"
    Config = NormTuningConfig

    def apply(self, model, cfg, *, total_steps=None):
        kinds = norm_types()
        names = {f"backbone.{prefix}.{local}" if prefix else f"backbone.{local}"
                 for prefix, module in model.backbone.named_modules() if isinstance(module, kinds)
                 for local, _ in module.named_parameters(recurse=False)}
        if not names:
            raise ValueError(f"{type(model.backbone).__name__} has no normalisation layer with parameters "
                             "(BatchNorm, LayerNorm, GroupNorm, RMSNorm; a custom norm class is not recognised): "
                             "use bitfit or another strategy")
        set_trainable(model, names | {n for n, _ in model.head.named_parameters(prefix="head")})
        return model
