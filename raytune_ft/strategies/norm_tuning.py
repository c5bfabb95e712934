from typing import Literal

from raytune_ft.strategies.base import Strategy, StrategyConfig, model_skeleton, register_strategy, set_trainable


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


# transformers' own norm classes (LlamaRMSNorm, Qwen2RMSNorm, GemmaRMSNorm, T5LayerNorm, ...) subclass nn.Module
NORM_CLASS_SUFFIXES = ("RMSNorm", "LayerNorm", "GroupNorm", "BatchNorm")


def is_norm(module) -> bool:
    """A normalisation layer: one of `norm_types`, or a class named like one (a model's own RMSNorm) whose
    parameters are all per-channel vectors."""
    if isinstance(module, norm_types()):
        return True
    params = list(module.parameters(recurse=False))
    return type(module).__name__.endswith(NORM_CLASS_SUFFIXES) and bool(params) and all(p.dim() == 1 for p in params)


def norm_names(backbone) -> list[str]:
    """Module paths of the backbone's normalisation layers that hold parameters."""
    return [n for n, m in backbone.named_modules() if is_norm(m) and next(m.parameters(recurse=False), None) is not None]


@register_strategy
class NormTuning(Strategy):
    """The trainable set is every parameter of a backbone module that is a normalisation layer by type
    (`norm_types`), or whose class is named like one (a transformers model's own LlamaRMSNorm: `is_norm`).
    BatchNorm running statistics update, as in full fine-tuning (the modules stay in train mode): the scales and shifts are learned under the target data's batch
    statistics, so evaluation must use running statistics of that same data; statistics frozen at the
    pretraining values would need the layers in eval mode throughout, which is feature extraction with
    an affine tweak. Re-estimating the statistics on the new data is itself a known adaptation (AdaBN)."""

    name = "norm_tuning"
    Config = NormTuningConfig

    def spec_problems(self, cfg, job):
        model = model_skeleton(job)
        if model is not None and not norm_names(model.backbone):
            yield "name", (f"{type(model.backbone).__name__} has no normalisation layer with parameters: use bitfit "
                           "or another strategy")

    def apply(self, model, cfg, *, total_steps=None):
        names = {f"backbone.{prefix}.{local}" if prefix else f"backbone.{local}"
                 for prefix, module in model.backbone.named_modules() if is_norm(module)
                 for local, _ in module.named_parameters(recurse=False)}
        if not names:
            raise ValueError(f"{type(model.backbone).__name__} has no normalisation layer with parameters "
                             "(BatchNorm, LayerNorm, GroupNorm, RMSNorm, or a class named like one): "
                             "use bitfit or another strategy")
        set_trainable(model, names | {n for n, _ in model.head.named_parameters(prefix="head")})
        return model
