"""Classification metrics of one evaluation: scikit-learn's accuracy, macro-F1 and confusion matrix."""
from __future__ import annotations

import torch


def classification_metrics(labels: torch.Tensor, preds: torch.Tensor, num_classes: int) -> dict:
    """Macro-F1 averages over the classes that occur in the labels or the predictions (scikit-learn's default);
    per_class_f1 has every class, 0.0 for one that never occurs. The confusion matrix's rows are true classes."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    classes = range(num_classes)
    if len(labels) == 0:  # scikit-learn refuses empty input
        return {"accuracy": 0.0, "f1": 0.0, "confusion_matrix": [[0] * num_classes for _ in classes],
                "per_class_f1": [0.0] * num_classes}
    y_true, y_pred = labels.cpu().numpy(), preds.cpu().numpy()
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
        "per_class_f1": f1_score(y_true, y_pred, labels=classes, average=None, zero_division=0).tolist(),
    }
