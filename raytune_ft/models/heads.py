"""The new head on the backbone's features (`model.head`): a linear layer, or cosine class prototypes.

    model:
      head: prototype        # linear (default) | prototype
      head_scale: 16         # prototype: the fixed scale of the cosine logits

The prototype head scores a sample by the cosine similarity of its feature to each class's prototype,
times a fixed scale (an inverse temperature, not learned): logits = scale * cos(f, w_c). Its prototypes
`weight` (classes x features) start as each class's mean L2-normalised pretrained feature over the
trial's training samples (`set_prototypes`, called by the worker before a strategy applies: see
train/recipe.py), then train like any head's weights. With few samples per class that start is already a
nearest-class-mean classifier, where a fresh linear head starts at chance.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

HEADS = ("linear", "prototype")
HeadKind = Literal["linear", "prototype"]
DEFAULT_SCALE = 16.0


class PrototypeHead(nn.Module):
    """logits = scale x cosine(feature, prototype of each class). Its one parameter is `weight`."""

    def __init__(self, in_features: int, num_classes: int, scale: float = DEFAULT_SCALE):
        super().__init__()
        self.in_features, self.out_features, self.scale = in_features, num_classes, float(scale)
        # a random start, replaced by the class means at setup (a class without training samples keeps it)
        self.weight = nn.Parameter(nn.functional.normalize(torch.randn(num_classes, in_features), dim=1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        cos = nn.functional.normalize(features, dim=-1) @ nn.functional.normalize(self.weight, dim=-1).T
        return self.scale * cos

    @torch.no_grad()
    def set_prototypes(self, features: torch.Tensor, labels: torch.Tensor) -> list[int]:
        """Each class's prototype := the normalised mean of its samples' normalised features. Returns the
        classes that had no sample (their prototypes stay as they were)."""
        unit = nn.functional.normalize(features.float(), dim=-1)
        absent = []
        for c in range(self.out_features):
            rows = unit[labels == c]
            if len(rows) == 0:
                absent.append(c)
                continue
            self.weight[c] = nn.functional.normalize(rows.mean(0), dim=0).to(self.weight)
        return absent

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, scale={self.scale}"


def make_head(kind: str, in_features: int, num_classes: int, scale: float = DEFAULT_SCALE) -> nn.Module:
    if kind == "linear":
        return nn.Linear(in_features, num_classes)
    if kind == "prototype":
        return PrototypeHead(in_features, num_classes, scale)
    raise ValueError(f"unknown head {kind!r}: use one of {', '.join(HEADS)}")


@torch.no_grad()
def class_features(model: nn.Module, batches) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, labels) of `batches` ((model inputs, labels) pairs) from `model.features`, in eval mode;
    the model's train / eval modes are put back after."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        feats, labels = [], []
        for inputs, y in batches:
            feats.append(model.features(inputs).float().cpu())
            labels.append(y.cpu())
    finally:
        for m, mode in modes.items():
            m.train(mode)
    return torch.cat(feats), torch.cat(labels)
