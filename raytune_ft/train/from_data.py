"""What a trial computes from its training data before it trains: a prototype head's start, and the batches a
strategy that starts from the data reads (EVA's LoRA initialisation: Strategy.init_from_data)."""
from __future__ import annotations

from raytune_ft.train.evaluate import TensorDict, loader, model_inputs


def init_prototypes(model, train_set: dict, meta: dict, device, batch_size: int) -> None:
    """A prototype head's start: each class's mean normalised feature of the pretrained backbone (eval mode:
    BatchNorm's running statistics, no dropout) over this trial's training samples, without augmentation.
    Every worker computes it over all of them, so all start the same."""
    from raytune_ft.models.heads import class_features

    batches = loader(TensorDict(train_set), batch_size)
    model.to(device)
    features, labels = class_features(model, ((model_inputs(b, meta, device), b["labels"]) for b in batches))
    model.to("cpu")
    model.head.set_prototypes(features, labels)


def init_batches(train_set: dict, meta: dict, batch_size: int, seed: int, n: int = 8) -> list[dict]:
    """Model inputs (on the CPU, where the model is built) of up to n shuffled training batches, seeded."""
    import torch

    batches = loader(TensorDict(train_set), batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    return [model_inputs(b, meta, torch.device("cpu")) for b, _ in zip(batches, range(n))]
