"""Every model is a pretrained backbone that yields one feature vector per sample, plus a new head."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn


class Classifier(nn.Module):
    """`backbone` + a new `head` on one feature vector per sample.

    kind: "vision" | "text" (the family strategies check). pooling, how the feature vector comes out:
      text    mean (of the real tokens' states), cls (the first token's), last (each row's last real token,
              found from the attention mask, so left and right padding give the same vector)
      vision  features (the backbone returns them: torchvision, timm with its classifier removed), pooler
              (a transformers model's own pooled output, else its [CLS] token), cls, mean (of the tokens or,
              for a CNN's feature map, of its positions)
    positions: decoders get position ids counted from the attention mask (0 at each row's first real token),
    so a left-padded row sees the positions it would see alone; prompt tuning turns it off (peft drops them).
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, kind: str,
                 pooling: Optional[str] = None):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_classes)
        self.head_dropout = nn.Dropout(0.0)  # the head_dropout hyperparameter sets p
        self.kind = kind  # "vision" | "text"
        self.pooling = pooling or ("features" if kind == "vision" else "mean")
        self.positions = False
        self.image_options: dict = {}  # keyword arguments of a transformers image model's forward

    def features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.kind == "vision":
            if self.pooling == "features":
                return self.backbone(batch["pixel_values"])
            return pool_image(self.backbone(pixel_values=batch["pixel_values"], **self.image_options), self.pooling)
        mask = batch["attention_mask"]
        extra = {"position_ids": (mask.cumsum(1) - 1).clamp(min=0)} if self.positions else {}
        hidden = self.backbone(input_ids=batch["input_ids"], attention_mask=mask, **extra).last_hidden_state
        virtual = hidden.shape[1] - mask.shape[1]  # prompt tuning prepends virtual tokens
        if virtual > 0:
            mask = torch.cat([mask.new_ones(mask.shape[0], virtual), mask], dim=1)
        return pool_tokens(hidden, mask, self.pooling, max(virtual, 0))

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        features = self.features(batch)
        dtype = next(self.head.parameters()).dtype  # a bf16 backbone (model.dtype) feeds a float32 head
        return self.head(self.head_dropout(features.to(dtype)))


def pool_tokens(hidden: torch.Tensor, mask: torch.Tensor, how: str, first: int = 0) -> torch.Tensor:
    """One vector per row of token states (batch x tokens x dim) under `mask` (batch x tokens, 1 = real).
    first: the first token's index after virtual tokens (cls)."""
    if how == "cls":
        return hidden[:, first]
    if how == "last":  # the highest position whose mask is 1: right padding, left padding, virtual tokens alike
        positions = torch.arange(mask.shape[1], device=mask.device)
        last = (mask.to(positions.dtype) * positions).argmax(1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # mean of the real tokens' states
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def pool_image(outputs, how: str) -> torch.Tensor:
    """A transformers image model's output as one vector per image (see Classifier)."""
    pooled = getattr(outputs, "pooler_output", None)
    if how == "pooler" and pooled is not None:
        return pooled.flatten(1)
    hidden = outputs.last_hidden_state
    if hidden.dim() == 4:  # a CNN's feature map (batch x channels x height x width)
        return hidden.mean((2, 3))
    return hidden.mean(1) if how == "mean" else hidden[:, 0]


def strip_head(model: nn.Module, head_attrs=("fc", "classifier", "heads", "head", "_fc")) -> int:
    """Replace the last Linear of the model's classification head with Identity; return its in_features.

    Works for torchvision ResNet (`fc`), EfficientNet / MobileNet / ConvNeXt (`classifier`),
    ViT (`heads`) and efficientnet_pytorch-style models (`_fc`).
    """
    for attr in head_attrs:
        head = getattr(model, attr, None)
        if head is None:
            continue
        if isinstance(head, nn.Linear):
            setattr(model, attr, nn.Identity())
            return head.in_features
        linears = [(n, m) for n, m in head.named_modules() if isinstance(m, nn.Linear)]
        if linears:
            name, last = linears[-1]
            parent = head.get_submodule(name.rpartition(".")[0]) if "." in name else head
            setattr(parent, name.rpartition(".")[2], nn.Identity())
            return last.in_features
    raise ValueError(
        f"cannot find the classification head of {type(model).__name__}: "
        f"expected a Linear under one of {', '.join(head_attrs)}"
    )
