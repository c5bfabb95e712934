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
from raytune_ft.data.store import concat, subset
from raytune_ft.data.subsets import TrainSubset
from raytune_ft.data.text_augment import TextAugment
from raytune_ft.train.config import TrialConfig
from raytune_ft.train.evaluate import TensorDict, loader
from raytune_ft.train.tasks import Tasks


@dataclass
class TrialData:
    meta: dict
    tasks: Tasks  # one, or several sharing the backbone
    train_set: dict  # the columns of the rows this trial trains on (the prototypes read them whole)
    train_counts: list  # each task's class counts in train_set
    train_samples: int
    val_samples: int  # what this trial validates on (data.cap_validation: at most train_samples)
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
    if config.data_seed is not None:  # search.confirm.vary_data: this seed's own train / validation split
        train_set, val_set = resplit(train_set, val_set, tasks, config.data_seed)
    if config.train_subset:  # a data-size curve's point: nested, stratified, the same for every trial
        # (several tasks: stratified on the first); vary_data: drawn with the trial's data seed
        labels = tasks.stratify_on(train_set["labels"]).numpy()
        drawn = config.train_subset if config.data_seed is None else \
            config.train_subset.model_copy(update={"seed": config.data_seed})
        train_set = subset(train_set, drawn.indices(labels))
    train_counts, train_samples = tasks.class_counts(train_set["labels"]), len(train_set["labels"])
    if config.cap_validation and len(val_set["labels"]) > train_samples:  # true few-shot (Perez et al. 2021)
        seed = config.data_seed if config.data_seed is not None else \
            (config.train_subset.seed if config.train_subset else 0)
        cap = TrainSubset(count=train_samples, size=train_samples, seed=seed)
        val_set = subset(val_set, cap.indices(tasks.stratify_on(val_set["labels"]).numpy()))
    load_seconds = time.perf_counter() - load_start  # prepared once per job, before any trial
    per_process = math.ceil(train_samples / num_processes)
    batches = per_process // batch_size if per_process > batch_size else 1
    steps_per_epoch = math.ceil(batches / training.grad_accum_steps)
    augment = ImageRecipe.from_meta(meta, train_set["pixel_values"].shape[-1]).train_transform(
        training.augment.model_dump()) if "pixel_values" in train_set else None
    text_augment = TextAugment.for_trial(config, train_set)
    resources = config.resources
    workers = resources.loader_workers if resources.loader_workers is not None else \
        min(4, max(0, int(resources.cpus_per_worker) - 1))
    pin = resources.gpus_per_worker > 0 and torch.cuda.is_available()
    train_loader = loader(
        TensorDict(train_set, augment, text_augment), batch_size, workers=workers, pin=pin, shuffle=True,
        generator=torch.Generator().manual_seed(config.seed),
        # a last batch of 1 sample breaks BatchNorm in train mode (1x1 feature maps): drop the remainder
        drop_last=per_process > batch_size)
    val_loader = loader(TensorDict(val_set), training.eval_batch_size, workers=workers, pin=pin)
    # the confirm stage scores the test split at each epoch better than all before (the best-validation one)
    test_loader = loader(TensorDict(load_split(config.data_dir, "test")), training.eval_batch_size, workers=workers,
                         pin=pin) if config.stage == "confirm" else None
    return TrialData(meta=meta, tasks=tasks, train_set=train_set, train_counts=train_counts,
                     train_samples=train_samples, val_samples=len(val_set["labels"]), load_seconds=load_seconds, steps_per_epoch=steps_per_epoch,
                     total_steps=steps_per_epoch * training.epochs, text_augment=text_augment,
                     train_loader=train_loader, val_loader=val_loader, test_loader=test_loader)


def resplit(train_set: dict, val_set: dict, tasks: Tasks, seed: int) -> tuple[dict, dict]:
    """The prepared train and validation rows split again with `seed`: stratified (on the first task), the
    validation split as large as before. The test split is never touched."""
    from raytune_ft.data.prepare import hold_out

    both = concat(train_set, val_set)
    labels = tasks.stratify_on(both["labels"]).tolist()
    train_idx, val_idx = hold_out(labels, len(val_set["labels"]), seed)
    return subset(both, train_idx), subset(both, val_idx)
