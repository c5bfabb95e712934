"""What a fine-tuning strategy is: a config (its knobs, each searchable) and `apply`.

`apply` takes a freshly built `Classifier` and returns the module to train, with exactly the
parameters that should learn left `requires_grad=True` (torchtune's `set_trainable_params` idea:
one place decides what trains). `param_groups` turns that into optimizer groups.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from raytune_ft.hparams import HParamsOverride
from raytune_ft.registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from raytune_ft.models.classifier import Classifier


class StrategyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    hparams: HParamsOverride = Field(
        default_factory=HParamsOverride,
        description="hyperparameters this strategy sets differently from search.hparams",
    )

    def knobs(self) -> dict[str, Any]:
        """The strategy's own settings (constants or samplers), without name and hparams."""
        return {k: getattr(self, k) for k in type(self).model_fields if k not in ("name", "hparams")}


class Strategy:
    name: ClassVar[str]
    Config: ClassVar[type[StrategyConfig]]
    families: ClassVar[tuple[str, ...]] = ("vision", "text")
    # When True the frozen backbone runs in eval mode (no BatchNorm statistics updates, no dropout):
    # the features are exactly the pretrained ones.
    backbone_eval: ClassVar[bool] = False

    def apply(self, model: "Classifier", knobs: dict[str, Any]) -> "nn.Module":
        raise NotImplementedError

    def param_groups(self, model: "nn.Module", lr: float, weight_decay: float) -> list[dict]:
        """One group of every trainable parameter; biases and norms get no weight decay."""
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 else decay).append(p)
        groups = [{"params": decay, "lr": lr, "weight_decay": weight_decay, "name": "decay"}]
        if no_decay:
            groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": "no_decay"})
        return [g for g in groups if g["params"]]


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    return STRATEGIES.register(cls.name)(cls)


def set_trainable(model: "nn.Module", trainable: set[str]) -> None:
    """Every parameter trains iff its name is in `trainable`."""
    for name, p in model.named_parameters():
        p.requires_grad_(name in trainable)
