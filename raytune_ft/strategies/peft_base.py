"""Shared by the peft methods: adapters on the backbone (its own weights frozen), the new head trains.

Each method says which layer types it can wrap (`adapts`); its default targets are peft's list for the
transformers model type where peft has one, else a transformers model's Linear layers (peft's "all-linear"),
else every layer of those types in the backbone (a CNN's plain convolutions). `validate`
builds the model's skeleton (no weights) and refuses a method for a model where none of its targets is a
layer it can wrap, naming the layer types it supports.
"""
from __future__ import annotations

import math
from typing import ClassVar, Optional

from pydantic import Field

from raytune_ft.strategies.base import Strategy, StrategyConfig, model_skeleton

# The layer types a method may wrap, by the names its `adapts` uses (Conv1D: transformers' GPT-2 layer).
LAYER_TYPES = ("Linear", "Conv1D", "Conv1d", "Conv2d", "Conv3d", "Embedding")


class PeftStrategyConfig(StrategyConfig):
    target_modules: Optional[list[str]] = Field(
        None, description="module names to adapt (a name matches a module whose path ends with it); default: "
        "peft's list for the transformers model type, else a transformers model's Linear layers, else every layer "
        "of the backbone the method can wrap (a CNN's plain convolutions)")


def layer_type(module) -> Optional[str]:
    """The name in LAYER_TYPES of a module's type, or None (a module no peft method here wraps)."""
    from torch import nn

    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover
        Conv1D = ()
    for name, cls in (("Conv1D", Conv1D), ("Linear", nn.Linear), ("Conv1d", nn.Conv1d), ("Conv2d", nn.Conv2d),
                      ("Conv3d", nn.Conv3d), ("Embedding", nn.Embedding)):
        if cls and isinstance(module, cls):
            return name
    return None


def model_type_targets(model, mapping_name: str) -> Optional[list[str]]:
    """peft's default target modules for a transformers backbone's model type, from its named mapping; None
    when peft has none for it (or the backbone is not a transformers model)."""
    model_type = getattr(getattr(model.backbone, "config", None), "model_type", None)
    if model_type is None:
        return None  # not a transformers model: no need to import peft (seconds, at validate)
    import peft.utils

    mapping = getattr(peft.utils, mapping_name, None) or {}
    return list(mapping[model_type]) if model_type in mapping else None


def layer_targets(model, adapts: tuple[str, ...]) -> list[str]:
    """Every layer of the backbone whose type is in `adapts` (Conv: groups == 1 only; a conv subclass that pads
    in forward, TF "same" padding, only at 1x1, where adapters line up with it)."""
    from torch import nn

    names = []
    for name, module in model.backbone.named_modules():
        kind = layer_type(module)
        if kind not in adapts:
            continue
        if isinstance(module, nn.Conv2d) and (module.groups != 1 or (
                type(module) is not nn.Conv2d and module.kernel_size != (1, 1))):
            continue
        names.append(name)
    return names


def in_size(module) -> int:
    """A layer's input size as the methods split it: features, a conv's channels x kernel, Conv1D's rows."""
    if layer_type(module) == "Conv1D":
        return module.weight.shape[0]
    if hasattr(module, "in_channels"):
        return module.in_channels * math.prod(module.kernel_size) // module.groups
    return getattr(module, "in_features", 0) or getattr(module, "num_embeddings", 0)


def out_size(module) -> int:
    if layer_type(module) == "Conv1D":
        return module.weight.shape[1]
    return getattr(module, "out_features", 0) or getattr(module, "out_channels", 0) or \
        getattr(module, "embedding_dim", 0)


def values(knob) -> tuple:
    """Every value a knob can take (a constant, or a sampler's candidates)."""
    from raytune_ft.searchable import Sampler

    return knob.candidates() if isinstance(knob, Sampler) else (knob,)


def matched(backbone, names: list[str]) -> list[tuple[str, object]]:
    """(path, module) of every backbone module a target name selects, as peft matches them."""
    return [(path, m) for path, m in backbone.named_modules()
            if path and any(path == n or path.endswith(f".{n}") for n in names)]


class PeftStrategy(Strategy):
    trains_backbone = False
    mapping: ClassVar[str] = "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING"
    adapts: ClassVar[tuple[str, ...]] = ("Linear", "Conv1D", "Conv2d")  # layer types the method wraps
    cnn_hint: ClassVar[str] = "lora, loha, lokr, oft, boft or hra"  # methods that wrap a CNN's convolutions

    def targets(self, model, target_modules: Optional[list[str]]) -> list[str]:
        """The modules to adapt: those named, or the default for the model (see PeftStrategyConfig)."""
        if target_modules:
            return list(target_modules)
        names = model_type_targets(model, self.mapping)
        if not names and hasattr(getattr(model.backbone, "config", None), "model_type"):
            # a transformers model peft has no list for: its Linear layers (peft's "all-linear")
            names = layer_targets(model, tuple(t for t in self.adapts if t in ("Linear", "Conv1D")))
        names = names or layer_targets(model, self.adapts)
        if not names:
            kinds = " / ".join(self.adapts)
            raise ValueError(f"the {type(model.backbone).__name__} backbone has no {kinds} layer {self.name} can "
                             f"adapt: set strategies[].target_modules, or pick {self.cnn_hint} for a CNN")
        return names

    def target_problem(self, model, target_modules: Optional[list[str]]) -> Optional[str]:
        """What stops this method on this model (a built model or its skeleton), or None."""
        try:
            names = self.targets(model, target_modules)
        except ValueError as e:
            return str(e)
        found = matched(model.backbone, names)
        if not found:
            return (f"none of {names} names a module of the {type(model.backbone).__name__} backbone: give module "
                    f"names such as {layer_targets(model, self.adapts)[:3]}")
        others = sorted({type(m).__name__ for _, m in found if layer_type(m) not in self.adapts})
        if others:
            return (f"{self.name} adapts {' / '.join(self.adapts)} layers only; its targets {names} include "
                    f"{', '.join(others)} layers: set target_modules to layers it supports, or use {self.cnn_hint}")
        return None

    def spec_problems(self, cfg, job):
        model = model_skeleton(job)
        if model is None:
            return
        problem = self.target_problem(model, getattr(cfg, "target_modules", None))
        if problem:
            yield ("target_modules" if getattr(cfg, "target_modules", None) else "name"), problem
            return
        yield from self.shape_problems(cfg, matched(model.backbone, self.targets(model, cfg.target_modules)))

    def shape_problems(self, cfg, targets: list[tuple[str, object]]):
        """(knob, message) for knob values that do not fit the targets' sizes (targets: (path, module))."""
        return ()

    def peft_config(self, model, cfg, total_steps: Optional[int]):
        """peft's config object for this method, from the trial's knobs."""
        raise NotImplementedError

    def apply(self, model, cfg, *, total_steps=None):
        import peft

        config = self.peft_config(model, cfg, total_steps)
        model.backbone = peft.get_peft_model(model.backbone, config)
        if config.is_prompt_learning and config.peft_type != peft.PeftType.PREFIX_TUNING:
            model.positions = False  # virtual tokens come first; peft drops position ids (Classifier)
        for p in model.head.parameters():  # get_peft_model froze the backbone, not our head
            p.requires_grad_(True)
        return model


class PromptLearningStrategy(PeftStrategy):
    """peft's prompt-learning methods (text only): learned virtual tokens, the encoder frozen."""

    families = ("text",)
    peft_class: ClassVar[str]  # the peft config class, e.g. "PromptTuningConfig"

    def spec_problems(self, cfg, job):
        return ()

    def peft_config(self, model, cfg, total_steps):
        import peft

        return getattr(peft, self.peft_class)(task_type="FEATURE_EXTRACTION",
                                              num_virtual_tokens=cfg.num_virtual_tokens)
