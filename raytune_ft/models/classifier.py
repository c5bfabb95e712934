"""Every model is a pretrained backbone that yields one feature vector per sample, plus a new head."""
from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, kind: str,
                 pooling: str = "mean"):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_classes)
        self.head_dropout = nn.Dropout(0.0)  # the head_dropout hyperparameter sets p
        self.kind = kind  # "vision" | "text"
        self.pooling = pooling

    def features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.kind == "vision":
            return self.backbone(batch["pixel_values"])
        mask = batch["attention_mask"]
        hidden = self.backbone(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
        virtual = hidden.shape[1] - mask.shape[1]  # prompt tuning prepends virtual tokens
        if virtual > 0:
            mask = torch.cat([mask.new_ones(mask.shape[0], virtual), mask], dim=1)
        if self.pooling == "cls":
            return hidden[:, max(virtual, 0)]
        mask = mask.unsqueeze(-1).to(hidden.dtype)  # mean of the real tokens' states
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_dropout(self.features(batch)))


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
