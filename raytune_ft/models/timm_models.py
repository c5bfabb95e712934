"""timm backbones (pytorch-image-models): ResNets, EfficientNets, ConvNeXt, RegNet, ViT, DeiT, EVA, Swin, ...

    model: {source: timm, name: resnet50.a1_in1k, weights: hf-cache}       # the local Hugging Face cache
    model: {source: timm, name: convnext_tiny, weights: convnext_tiny.safetensors}
    model: {source: timm, name: vit_small_patch16_224, weights: null}       # random init

Nothing is downloaded at run time: `hf-cache` reads the weights timm would fetch (timm/<name>.<tag> on the
Hugging Face hub) from the local cache, and validate says so when they are not there. Images are prepared
as the model's `pretrained_cfg` says (input size, crop_pct, interpolation, mean / std: what
timm.data.resolve_data_config reads); `hparams.drop_path_rate` sets stochastic depth (searchable).
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator

from raytune_ft.models.base import Source, VisionModelConfig, own_recipe, register_source

HF_CACHE = "hf-cache"
HUB_FILES = ("model.safetensors", "pytorch_model.bin")


def pretrained_cfg(name: str):
    """timm's PretrainedCfg of a model name (its default tag when none is given), or None."""
    import timm.models

    return timm.models.get_pretrained_cfg(name)


def cached_weights(name: str) -> Optional[str]:
    """The weights file of timm's hub entry for this name in the local Hugging Face cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    cfg = pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        return None
    for filename in ((cfg.hf_hub_filename,) if cfg.hf_hub_filename else HUB_FILES):
        found = try_to_load_from_cache(cfg.hf_hub_id, filename)
        if isinstance(found, str):
            return found
    return None


class TimmConfig(VisionModelConfig):
    """A timm model by name (with or without its pretrained tag, e.g. resnet50 or resnet50.a1_in1k), its
    classifier replaced by the new head."""

    source: Literal["timm"] = "timm"
    weights: Optional[str] = Field(
        None, description=f"a local state-dict file (.safetensors, .pth: timm's key names), {HF_CACHE} (the weights "
        "timm fetches from the Hugging Face hub, read from the local cache only), or null for random init")

    @field_validator("name")
    @classmethod
    def _known(cls, name):
        import timm

        if not timm.is_model(name):
            raise ValueError(f"timm has no model {name!r}; e.g. resnet50, convnext_tiny, efficientnet_b0, "
                             "vit_small_patch16_224 (timm.list_models('*vit*') lists them)")
        return name

    @field_validator("weights")
    @classmethod
    def _file_or_cache(cls, weights):
        if weights is not None and weights != HF_CACHE and \
                not weights.endswith((".safetensors", ".pth", ".pt", ".bin")) and "/" not in weights:
            raise ValueError(f"{weights!r} is neither a weights file (.safetensors, .pth, .pt, .bin) nor {HF_CACHE}: "
                             "give one of them, or null for random init")
        return weights

    def uses_cache(self) -> bool:
        return self.weights == HF_CACHE

    def weights_file(self):
        return None if self.uses_cache() else super().weights_file()

    def weights_path(self):
        return cached_weights(self.name) if self.uses_cache() else super().weights_path()

    def supports_drop_path(self) -> bool:
        return True

    def problems(self, here: bool = True):
        if here and self.uses_cache() and cached_weights(self.name) is None:
            cfg = pretrained_cfg(self.name)
            hub = cfg.hf_hub_id if cfg is not None else None
            where = (f"the local Hugging Face cache has no weights of {hub} ({' / '.join(HUB_FILES)})" if hub
                     else f"timm names no Hugging Face weights for {self.name}")
            yield "weights", (f"{HF_CACHE}: {where}, and nothing is downloaded at run time. Fetch them where there "
                              f"is network (timm.create_model({self.name!r}, pretrained=True)) and copy the cache "
                              "(HF_HOME, default ~/.cache/huggingface), or give a weights file")

    def image_recipe(self):
        """The model's pretrained_cfg: crop = input size, short side = crop / crop_pct, its interpolation and
        mean / std (model.image_size / mean / std win); no pretrained_cfg: the standard ImageNet recipe."""
        cfg = pretrained_cfg(self.name)
        if cfg is None:
            return super().image_recipe()
        crop = cfg.input_size[-1]
        return own_recipe(self, crop, int(crop / (cfg.crop_pct or 0.875)), cfg.interpolation or "bicubic",
                          cfg.mean, cfg.std)


@register_source
class Timm(Source):
    name = "timm"
    family = "vision"
    Config = TimmConfig

    def build(self, config, num_classes, *, drop_path_rate=None):
        import timm
        import torch

        from raytune_ft.models.classifier import Classifier  # torch: imported when a model is built

        options = {"num_classes": 0}  # timm's own way to drop the classifier: forward gives pooled features
        if drop_path_rate is not None:
            options["drop_path_rate"] = drop_path_rate
        if torch.get_default_device().type == "meta" or config.weights is None:
            model = timm.create_model(config.name, pretrained=False, **options)
        elif config.uses_cache():
            model = timm.create_model(config.name, pretrained=True, **options)  # HF_HUB_OFFLINE: the cache only
        else:
            model = timm.create_model(config.name, pretrained=True,
                                      pretrained_cfg_overlay={"file": str(config.weights_file())}, **options)
        dim = getattr(model, "head_hidden_size", None) or model.num_features
        classifier = Classifier(model, dim, num_classes, "vision", pooling="features")
        classifier.fallback_block_paths = _stage_paths(model)
        return classifier


def _stage_paths(model) -> list[str]:
    """timm's own stages (feature_info: the modules its feature maps come from) that hold parameters, the stem
    left out: the blocks where the structure is not found otherwise (RegNet's s1..s4)."""
    out = []
    for info in getattr(model, "feature_info", None) or []:
        path = info.get("module", "") if isinstance(info, dict) else ""
        try:
            module = model.get_submodule(path)
        except AttributeError:
            continue
        if path and not path.startswith("stem") and next(module.parameters(), None) is not None:
            out.append(path)
    return out
