"""Classification metrics from a confusion matrix (matches scikit-learn's accuracy and macro-F1)."""
from __future__ import annotations

import torch


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rows are true classes, columns predicted classes."""
    index = labels.long() * num_classes + preds.long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def classification_metrics(labels: torch.Tensor, preds: torch.Tensor, num_classes: int) -> dict:
    cm = confusion_matrix(labels.cpu(), preds.cpu(), num_classes).double()
    tp = cm.diag()
    support, predicted = cm.sum(1), cm.sum(0)
    denom = support + predicted  # = 2TP + FP + FN
    seen = denom > 0  # like scikit-learn: classes that occur in labels or predictions
    f1 = torch.where(seen, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp))
    return {
        "accuracy": float(tp.sum() / cm.sum().clamp(min=1)),
        "f1": float(f1[seen].mean()) if seen.any() else 0.0,
        "confusion_matrix": cm.long().tolist(),
        "per_class_f1": f1.tolist(),
    }
