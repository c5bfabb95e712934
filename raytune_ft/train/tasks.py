"""Multi-task fine-tuning: one shared backbone, one head per task.

The model keeps one head, `model.head`, whose outputs are every task's logits side by side (a Linear
with sum-of-classes outputs): every strategy finds it and its "head." parameters as for one task. Here
the logits are split per task:

    tasks = Tasks.from_meta(meta, training.task_weights)     # meta["tasks"]: {task: classes}, in head order
    tasks.outputs                                            # the head's width: sum of every task's classes
    loss = tasks.loss(logits, labels)                        # sum_t w_t * CE(logits[:, slice_t], labels[:, t])

A single-task job (no meta["tasks"]) is one task over meta["classes"]: labels are 1-D, the loss is
the plain cross-entropy, and it reports no per-task metric.
"""
from __future__ import annotations

from typing import Optional

METRIC_KEYS = {"accuracy": "accuracy", "f1": "f1", "loss": "loss"}  # evaluate()'s key -> metric suffix


class Tasks:
    def __init__(self, classes: dict[str, list[str]], weights: Optional[dict[str, float]] = None, multi: bool = True):
        self.classes = dict(classes)
        self.names = list(self.classes)
        self.multi = multi
        self.sizes = [len(c) for c in self.classes.values()]
        self.outputs = sum(self.sizes)
        self.weights = [float((weights or {}).get(t, 1.0)) for t in self.names]
        starts = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.slices = [slice(a, a + n) for a, n in zip(starts, self.sizes)]

    @classmethod
    def from_meta(cls, meta: dict, weights: Optional[dict[str, float]] = None) -> "Tasks":
        if meta.get("tasks"):
            return cls(meta["tasks"], weights)
        return cls({"label": meta["classes"]}, multi=False)

    @classmethod
    def from_classes(cls, classes: list[str], tasks: Optional[dict[str, list[str]]]) -> "Tasks":
        """A saved TrialConfig's tasks (None: one task over `classes`)."""
        return cls(tasks, None) if tasks else cls({"label": classes}, multi=False)

    # ------------------------------------------------------------------ labels

    def task_labels(self, labels, t: int):
        """Task t's labels from a batch's labels (rows x tasks; 1-D for a single task)."""
        return labels[:, t] if self.multi else labels

    def stratify_on(self, labels):
        """What train_sizes stratify on: the first task's labels."""
        return self.task_labels(labels, 0)

    def class_counts(self, labels) -> list[list[int]]:
        """Each task's class counts in `labels`."""
        import torch

        return [torch.bincount(self.task_labels(labels, t), minlength=n).tolist() for t, n in enumerate(self.sizes)]

    # ------------------------------------------------------------------ loss

    def loss(self, logits, labels, class_weights: Optional[list] = None, label_smoothing: float = 0.0):
        """The training loss: one task's cross-entropy, or sum_t w_t * CE_t over the tasks' logit slices.
        `class_weights`: one weight tensor per task (training.class_weighted_loss), or None."""
        import torch.nn.functional as F

        if not self.multi:
            return F.cross_entropy(logits.float(), labels, weight=class_weights[0] if class_weights else None,
                                   label_smoothing=label_smoothing)
        total = 0.0
        for t, (part, w) in enumerate(zip(self.slices, self.weights)):
            if w == 0:
                continue
            total = total + w * F.cross_entropy(logits[:, part].float(), labels[:, t],
                                                weight=class_weights[t] if class_weights else None,
                                                label_smoothing=label_smoothing)
        return total

    # ------------------------------------------------------------------ metrics

    def report(self, scores: dict, prefix: str = "val") -> dict:
        """Each task's metrics of one evaluation as report keys: val_accuracy.topic, val_f1.topic, val_loss.topic
        ({} for a single task, whose plain val_accuracy is the only one)."""
        if not self.multi:
            return {}
        return {f"{prefix}_{suffix}.{task}": scores["tasks"][task][key]
                for task in self.names for key, suffix in METRIC_KEYS.items()}


def score_of(scores: dict, metric: str, keys: dict) -> float:
    """The value of `metric` (val_accuracy, or a task's val_accuracy.topic) in an evaluation's `scores`;
    `keys`: metric -> evaluate()'s key (recipe.SCORES)."""
    base, _, task = metric.partition(".")
    return scores["tasks"][task][keys[base]] if task else scores[keys[base]]
