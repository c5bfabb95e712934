"""Batches into model inputs, and the one evaluation loop: validation in the worker, the test split
and reloads afterwards (results/evaluation.py) all run it, under the trial's autocast."""
from __future__ import annotations

from raytune_ft.data.images import ImageRecipe
from raytune_ft.train.metrics import classification_metrics


class TensorDict:
    """A map-style dataset over a dict of equally long tensors; `augment` maps one uint8 image,
    `text_augment` one sample (its dict, its index: data/text_augment.py)."""

    def __init__(self, tensors: dict, augment=None, text_augment=None):
        self.tensors = tensors
        self.augment, self.text_augment = augment, text_augment

    def __len__(self):
        return len(self.tensors["labels"])

    def __getitem__(self, i):
        item = {k: v[i] for k, v in self.tensors.items()}
        if self.augment is not None:
            item["pixel_values"] = self.augment(item["pixel_values"])
        if self.text_augment is not None:
            item = self.text_augment(item, i)
        return item


def loader(dataset, batch_size: int, *, workers: int = 0, pin: bool = False, **kwargs):
    """The DataLoader of a trial's split: batches made by `collate` (text padding trimmed on the CPU, before a
    batch goes to the device), `workers` processes reading and augmenting them (new each epoch, so each sees
    that epoch's augmentation), in pinned memory when a GPU will read them (`pin`)."""
    import torch

    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, pin_memory=pin,
                                       collate_fn=collate, **kwargs)


def collate(samples: list) -> dict:
    """A batch of samples (torch's default collation), its texts cut after the last column any row uses."""
    from torch.utils.data import default_collate

    return trim_padding(default_collate(samples))


def model_inputs(batch: dict, meta: dict, device):
    """Model inputs from a prepared batch: uint8 images are center-cropped (a stored, uncropped image:
    validation, test) and normalised here, on the device. Texts lose the padding no row of the batch needs:
    in `collate` for a loader's batches; here for a batch still on the CPU (pre-flight, EWC), never on the
    device (finding the last column used would wait for it)."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    if all(v.device.type == "cpu" for v in inputs.values()):
        inputs = trim_padding(inputs)
    inputs = {k: v.to(device) for k, v in inputs.items()}
    if "pixel_values" in inputs:
        pixels = inputs["pixel_values"]
        inputs["pixel_values"] = ImageRecipe.from_meta(meta, pixels.shape[-1]).model_inputs(pixels)
    return inputs


def trim_padding(inputs: dict) -> dict:  # (labels pass through: they are not 2-D of the mask's width)
    """Texts are stored padded to model.max_length; a batch of shorter ones is cut after its last column
    that any row attends to. The model computes the same for every real token (padding is masked out of
    attention and of mean pooling) at a cost that follows the batch's longest text, not max_length.
    Left padding (every row's last column is a token) is left as it is."""
    mask = inputs.get("attention_mask")
    if mask is None or mask.dim() != 2:
        return inputs
    used = mask.any(0).nonzero()
    n = int(used[-1]) + 1 if len(used) else mask.shape[1]
    if n == mask.shape[1]:
        return inputs
    return {k: v[:, :n] if v.dim() == 2 and v.shape[1] == mask.shape[1] else v for k, v in inputs.items()}


def autocast(mixed_precision: str, device):
    """The autocast Accelerate puts around a prepared model's forward for this mixed precision: every
    evaluation (validation in the loop, test split and reload afterwards) runs under it, so a
    reloaded model scores what it scored in training."""
    import contextlib

    import torch

    if mixed_precision == "no":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if mixed_precision == "bf16" else torch.float16)


def evaluate(model, loader, meta, device, num_classes: int, *, mixed_precision: str = "no", gather=None,
             tasks=None) -> dict:
    """Accuracy, macro-F1, confusion matrix and mean loss of `model` on `loader`.

    `gather` collects every worker's share (Accelerate's `gather_for_metrics`, which drops the
    samples that pad the last batch across workers); None in a single process.
    `tasks` (train/tasks.py) of a multi-task model: each task's scores under "tasks", and accuracy,
    f1 and loss their means over the tasks."""
    import torch
    import torch.nn.functional as F

    if tasks is not None and tasks.multi:
        return _evaluate_tasks(model, loader, meta, device, tasks, mixed_precision, gather)
    model.eval()
    all_preds, all_labels, loss_sum = [], [], 0.0
    with torch.no_grad(), autocast(mixed_precision, device):
        for batch in loader:
            logits = model(**model_inputs(batch, meta, device))
            labels = batch["labels"].to(device)
            losses = F.cross_entropy(logits.float(), labels, reduction="none")  # per sample (see `gather`)
            preds = logits.argmax(-1)
            if gather is not None:
                preds, labels, losses = gather((preds, labels, losses))
            all_preds.append(preds.cpu())
            all_labels.append(labels.cpu())
            loss_sum += float(losses.sum())
    labels, preds = torch.cat(all_labels), torch.cat(all_preds)
    out = classification_metrics(labels, preds, num_classes)
    out["loss"] = loss_sum / max(1, len(labels))
    return out


def _evaluate_tasks(model, loader, meta, device, tasks, mixed_precision: str, gather) -> dict:
    """`evaluate` for a multi-task model: each task's argmax and loss over its slice of the head's outputs."""
    import torch
    import torch.nn.functional as F

    model.eval()
    all_preds, all_labels, all_losses = [], [], []
    with torch.no_grad(), autocast(mixed_precision, device):
        for batch in loader:
            logits = model(**model_inputs(batch, meta, device)).float()
            labels = batch["labels"].to(device)  # rows x tasks
            preds = torch.stack([logits[:, part].argmax(-1) for part in tasks.slices], 1)
            losses = torch.stack([F.cross_entropy(logits[:, part], labels[:, t], reduction="none")
                                  for t, part in enumerate(tasks.slices)], 1)
            if gather is not None:
                preds, labels, losses = gather((preds, labels, losses))
            all_preds.append(preds.cpu())
            all_labels.append(labels.cpu())
            all_losses.append(losses.cpu())
    labels, preds, losses = torch.cat(all_labels), torch.cat(all_preds), torch.cat(all_losses)
    per_task = {}
    for t, (task, n) in enumerate(zip(tasks.names, tasks.sizes)):
        m = classification_metrics(labels[:, t], preds[:, t], n)
        m["loss"] = float(losses[:, t].sum()) / max(1, len(labels))
        per_task[task] = m
    out = {key: sum(m[key] for m in per_task.values()) / len(per_task) for key in ("accuracy", "f1", "loss")}
    out["tasks"] = per_task
    return out
