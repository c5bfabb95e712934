"""A trial's data: the prepared splits it reads (data/store.py), its train subset (a data-size curve's
point), the training augmentation, the DataLoaders, and the steps an epoch and the trial take."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Optional

from raytune_ft.cluster import storage
from raytune_ft.data import load_meta, load_split
from raytune_ft.data.images import ImageRecipe
from raytune_ft.data.store import subset
from raytune_ft.data.text_augment import TextAugment
from raytune_ft.train.config import TrialConfig
from raytune_ft.train.evaluate import TensorDict
from raytune_ft.train.tasks import Tasks


@dataclass
class TrialData:
    meta: dict
    tasks: Tasks  # one, or several sharing the backbone
    train_set: dict  # the columns of the rows this trial trains on (the prototypes read them whole)
    train_counts: list  # each task's class counts in train_set
    train_samples: int
    load_seconds: float
    steps_per_epoch: int  # optimizer steps, over every worker
    total_steps: int
    text_augment: Optional[TextAugment]  # EDA on tokens; None when off
    train_loader: Any
    val_loader: Any
    test_loader: Any  # None but in the confirm stage


def load_trial_data(config: TrialConfig, num_processes: int) -> TrialData:
    """The trial's data, for `num_processes` data-parallel workers (Accelerate's)."""
    import torch

    training, batch_size = config.training, int(config.hparams.batch_size)
    load_start = time.perf_counter()
    storage.ensure_local(config.data_dir)  # a node without the prepared data gets it from the run's URI
    meta = load_meta(config.data_dir)
    tasks = Tasks.from_meta(meta, training.task_weights)
    train_set, val_set = load_split(config.data_dir, "train"), load_split(config.data_dir, "validation")
    if config.train_subset:  # a data-size curve's point: nested, stratified, the same for every trial
        # (several tasks: stratified on the first)
        labels = tasks.stratify_on(train_set["labels"]).numpy()
        train_set = subset(train_set, config.train_subset.indices(labels))
    train_counts, train_samples = tasks.class_counts(train_set["labels"]), len(train_set["labels"])
    load_seconds = time.perf_counter() - load_start  # prepared once per job, before any trial
    per_process = math.ceil(train_samples / num_processes)
    batches = per_process // batch_size if per_process > batch_size else 1
    steps_per_epoch = math.ceil(batches / training.grad_accum_steps)
    augment = ImageRecipe.from_meta(meta, train_set["pixel_values"].shape[-1]).train_transform(
        training.augment.model_dump()) if "pixel_values" in train_set else None
    text_augment = TextAugment.for_trial(config, train_set)
    train_loader = torch.utils.data.DataLoader(
        TensorDict(train_set, augment, text_augment), batch_size=batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(config.seed),
        # a last batch of 1 sample breaks BatchNorm in train mode (1x1 feature maps): drop the remainder
        drop_last=per_process > batch_size)
    val_loader = torch.utils.data.DataLoader(TensorDict(val_set), batch_size=training.eval_batch_size)
    # the confirm stage scores the test split at each epoch better than all before (the best-validation one)
    test_loader = torch.utils.data.DataLoader(
        TensorDict(load_split(config.data_dir, "test")), batch_size=training.eval_batch_size) \
        if config.stage == "confirm" else None
    return TrialData(meta=meta, tasks=tasks, train_set=train_set, train_counts=train_counts,
                     train_samples=train_samples, load_seconds=load_seconds, steps_per_epoch=steps_per_epoch,
                     total_steps=steps_per_epoch * training.epochs, text_augment=text_augment,
                     train_loader=train_loader, val_loader=val_loader, test_loader=test_loader)
