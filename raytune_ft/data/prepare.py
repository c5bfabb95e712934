"""Decode / tokenize a job's data once, before any trial, into `<run>/data/` (data/store.py) + `meta.json`.

Streamed, so the driver's memory does not grow with the data: the source lists its samples and labels
without decoding them (`index`), every check, hold-out and subsample is made on that list, and only then
are the chosen samples decoded and written, a chunk at a time (data/encode.py: in this process, or for a
job on a cluster by actors on its free CPUs). Trials read the rows they need from the files
(`load_split`), so a sweep of 32 trials prepares its data once and none of them loads it whole.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from raytune_ft.data import encode
from raytune_ft.data.config import SPLITS
from raytune_ft.data.labels import class_names, encode_labels, first_task, label_name, label_names
from raytune_ft.data.sources import DATA_SOURCES
from raytune_ft.data.sources.prepared import link_prepared, prepared_for
from raytune_ft.data.store import SplitWriter
from raytune_ft.errors import InputError


def _enough_classes(classes, source, config, task=None) -> None:
    if len(classes) < 2:
        column = f" column {task!r}" if task is not None else ""
        raise InputError(f"{source.describe(config, 'train')}{column}: found {len(classes)} class(es) {classes}; "
                         "a classifier needs at least 2" + (" (each task does)" if column else ""))


def check_train_labels(config) -> None:
    """The checks on train's labels that need no decoding (a label column, class folder names), made
    at `validate` and by `run` before its folder exists: each label names a class (file and row
    otherwise), and train has at least 2 classes. Sources that cannot read labels alone are skipped."""
    source = DATA_SOURCES.get(config.source)()
    try:
        labels = source.train_labels(config)
    except OSError as e:  # a folder that cannot be listed
        raise InputError(f"{source.describe(config, 'train')}: cannot be read ({e.strerror or e})") from None
    if labels is None:
        return
    if not labels:
        raise InputError(f"{source.describe(config, 'train')} has no samples; give it at least one")
    tasks = source.task_names(config)
    for t, task in enumerate(tasks or [None]):
        names = label_names([y[t] for y in labels] if tasks else labels,
                             _locator(source, config, "train", task), "train")
        if not config.classes:
            _enough_classes(_classes(source, config, task, names), source, config, task)


def _classes(source, config, task, train_names) -> list[str]:
    """A task's classes in label order: data.classes, else those the data declare (a ClassLabel, a
    torchvision set's), else the sorted labels of train."""
    if config.classes:
        return list(config.classes)
    declared = source.declared_classes(config, task)
    if declared is None:
        return class_names(train_names)
    try:
        return [label_name(c) for c in declared]  # named as labels are ("1.0" is class "1")
    except ValueError as e:
        raise InputError(f"{source.describe(config, 'train')}: a class name the data declare: {e}") from None


def _locator(source, config, split: str, task=None):
    """Where a row of a split is, for error messages; a multi-task source's also names the task's column."""
    if task is None:
        return lambda row: source.locate(config, split, row)
    return lambda row: f"{source.locate(config, split, row)} column {task!r}"


def hold_out(labels: list[int], n_val: int, seed: int) -> tuple[list[int], list[int]]:
    """(train, validation) row indices, n_val of them held out, seeded.

    Stratified (each class keeps its share in both parts) when it can be: every class has at least
    2 samples, and both parts have room for one sample of each class. Otherwise (a class with a
    single sample, a hold-out smaller than the number of classes) a plain random split.
    """
    from sklearn.model_selection import train_test_split

    counts = Counter(labels)
    stratify = min(counts.values()) >= 2 and min(n_val, len(labels) - n_val) >= len(counts)
    train_idx, val_idx = train_test_split(list(range(len(labels))), test_size=n_val, random_state=seed,
                                          stratify=labels if stratify else None)
    return sorted(train_idx), sorted(val_idx)


def _check_vocabulary(tokenizer, input_ids, attention_mask, model_name: str) -> None:
    """A model folder without tokenizer files still loads a tokenizer, with no words: every text is [UNK].
    Checked on the first chunk of train."""
    import torch

    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return
    special = torch.tensor([i for i in tokenizer.all_special_ids if i != unk] or [-1])
    words = attention_mask.bool() & ~torch.isin(input_ids, special)
    if words.any() and bool((input_ids[words] == unk).all()):
        raise InputError(f"model.name {model_name}: its tokenizer turns every word of train into "
                         f"{tokenizer.unk_token}: the folder has no usable vocabulary (vocab.txt / tokenizer.json); "
                         "save the tokenizer there with save_pretrained")


def prepare_data(job, out_dir: Path, on_cluster: bool = False) -> dict:
    """Write every split's tensors and meta.json into out_dir; return the meta. (A job's whole preparation,
    EWC's Fisher included when some trial can have ewc > 0, is raytune_ft/prepare.py's `prepare_job`.)

    Every label is checked in every split, against data.classes or the labels of the train file,
    before anything is held out or subsampled: an error names the file and row as the user wrote them.
    on_cluster: Ray is connected to a cluster; its free CPUs decode the samples (data/encode.py).
    """
    import torch

    config = job.data
    if config.source == "prepared":
        return link_prepared(job, out_dir)
    source = DATA_SOURCES.get(config.source)()
    raw = source.index(config)  # refs and labels: nothing decoded before the samples are chosen
    for split, (xs, _) in raw.items():
        if not xs:
            raise InputError(f"{source.describe(config, split)} has no samples; give it at least one")
    tasks = config.task_names()  # multi-task: each label is a tuple, one class per task
    task_classes = {}
    for t, task in enumerate(tasks or [None]):
        names = {split: label_names([y[t] for y in ys] if tasks else ys, _locator(source, config, split, task),
                                     split) for split, (_, ys) in raw.items()}
        classes = _classes(source, config, task, names["train"])
        _enough_classes(classes, source, config, task)
        task_classes[task] = (classes, {split: encode_labels(ns, classes, bool(config.classes),
                                                              _locator(source, config, split, task), split)
                                        for split, ns in names.items()})
    if tasks:
        classes = task_classes[tasks[0]][0]
        encoded = {split: (xs, list(zip(*(task_classes[t][1][split] for t in tasks))))
                   for split, (xs, _) in raw.items()}
    else:
        classes, by_split = task_classes[None]
        encoded = {split: (xs, by_split[split]) for split, (xs, _) in raw.items()}
    if "validation" not in encoded:  # hold out part of train
        xs, ys = encoded["train"]
        n_val = max(1, round(len(xs) * config.validation_fraction))
        if n_val >= len(xs):
            raise InputError(f"{source.describe(config, 'train')}: {len(xs)} sample(s) are too few to hold out "
                             f"data.validation_fraction {config.validation_fraction} and still train; "
                             "give more samples or a data.validation split")
        train_idx, val_idx = hold_out(first_task(ys), n_val, config.seed)
        encoded["validation"] = ([xs[i] for i in val_idx], [ys[i] for i in val_idx])
        encoded["train"] = ([xs[i] for i in train_idx], [ys[i] for i in train_idx])
    if "test" not in encoded and getattr(job.search, "confirm", None):  # the confirm stage scores on test
        xs, ys = encoded["train"]
        fraction = config.test_fraction or config.validation_fraction or 0.15
        n_test = max(1, round(len(xs) * fraction))
        if n_test >= len(xs):
            raise InputError(f"{source.describe(config, 'train')}: {len(xs)} sample(s) are too few to hold out a "
                             f"test split ({fraction}) for search.confirm; give a data.test split or more samples")
        train_idx, test_idx = hold_out(first_task(ys), n_test, config.seed + 1)
        encoded["test"] = ([xs[i] for i in test_idx], [ys[i] for i in test_idx])
        encoded["train"] = ([xs[i] for i in train_idx], [ys[i] for i in train_idx])
        held_out_test = n_test
    else:
        held_out_test = 0
    if config.max_train_samples:
        xs, ys = encoded["train"]
        order = list(range(len(xs)))
        random.Random(config.seed).shuffle(order)
        keep = sorted(order[: config.max_train_samples])
        encoded["train"] = ([xs[i] for i in keep], [ys[i] for i in keep])

    family = source.family_of(config)  # a source of either family (hf_dataset) says which by its config
    tokenizer = encode.load_tokenizer(job.model) if family == "text" else None
    recipe = job.model.image_recipe() if family == "vision" else None
    encoder = encode.Encoder(source, config, recipe=recipe, tokenizer=tokenizer, max_length=job.model.max_length
                             if family == "text" else None)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"family": family, "classes": classes, "splits": {}, "test_held_out": held_out_test,
            "format": "npy", "prepared_for": prepared_for(job)}
    if tasks:  # labels are stored as rows x tasks ({split}.labels.npy, one class index per task); "classes"
        # and "class_counts" are the first task's (what hold-outs and train_sizes stratify on)
        meta["tasks"] = {t: task_classes[t][0] for t in tasks}
    for split in SPLITS:
        if split not in encoded:
            continue
        refs, ys = encoded[split]
        writer = SplitWriter(out_dir, split, rows=len(ys))
        spread = on_cluster and source.decodes_in_parts
        for i, columns in enumerate((encode.on_cluster if spread else encode.Encoder.stream)(encoder, refs, ys)):
            if tokenizer is not None and split == "train" and i == 0:  # a tokenizer with no words, before a write
                _check_vocabulary(tokenizer, torch.from_numpy(columns["input_ids"]),
                                  torch.from_numpy(columns["attention_mask"]), job.model.name)
            writer.add(columns)
        writer.close()
        counts = torch.bincount(torch.tensor(first_task(ys), dtype=torch.long), minlength=len(classes)).tolist()
        meta["splits"][split] = {"samples": len(ys), "class_counts": counts}
        if tasks:
            meta["splits"][split]["task_class_counts"] = {
                t: torch.bincount(torch.tensor([y[i] for y in ys], dtype=torch.long),
                                  minlength=len(meta["tasks"][t])).tolist() for i, t in enumerate(tasks)}
    if family == "vision":
        meta["mean"], meta["std"] = list(recipe.mean), list(recipe.std)
        meta["image"] = recipe.to_meta()  # crop / resize sizes, interpolation, mean / std: train and eval use it
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta
