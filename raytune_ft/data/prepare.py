"""Decode / tokenize a job's data once, before any trial, into `<run>/data/{split}.pt` + `meta.json`.

Trials only load these tensors (`load_split`), so a sweep of 32 trials prepares its data once.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from raytune_ft.data.base import DATA_SOURCES, SPLITS


def _class_names(labels, given):
    if given:
        return list(given)
    uniq = set(labels)
    return [str(x) for x in sorted(uniq, key=lambda v: (not isinstance(v, (int, float)), v if isinstance(v, (int, float)) else str(v)))]


def _encode_labels(labels, classes, split, where):
    index = {name: i for i, name in enumerate(classes)}
    out = []
    for row, label in enumerate(labels):
        if label is None or (isinstance(label, str) and not label.strip()):
            raise ValueError(f"{where} ({split} split) row {row}: the label is empty; fill it in or drop the row")
        key = str(label)
        if key not in index:
            raise ValueError(f"{where} ({split} split) row {row}: label {label!r} is not one of the classes "
                             f"{classes}; fix the row or list it in data.classes")
        out.append(index[key])
    return out


def _images_to_tensor(images, size: int):
    import numpy as np
    import torch
    import torch.nn.functional as F

    out = torch.empty((len(images), 3, size, size), dtype=torch.uint8)
    for start in range(0, len(images), 256):
        chunk = [torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).float()
                 for im in images[start:start + 256]]
        resized = [F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
                   for x in chunk]
        out[start:start + len(chunk)] = torch.stack(resized).round().clamp(0, 255).to(torch.uint8)
    return out


def prepare_data(job, out_dir: Path) -> dict:
    """Write every split's tensors and meta.json into out_dir; return the meta."""
    import torch

    source = DATA_SOURCES.get(job.data.source)()
    raw = source.load(job.data)
    where = f"data ({job.data.source})"
    if "validation" not in raw:  # hold out part of train
        xs, ys = raw["train"]
        order = list(range(len(xs)))
        random.Random(job.data.seed).shuffle(order)
        n_val = max(1, round(len(order) * job.data.validation_fraction))
        raw["validation"] = ([xs[i] for i in order[:n_val]], [ys[i] for i in order[:n_val]])
        raw["train"] = ([xs[i] for i in order[n_val:]], [ys[i] for i in order[n_val:]])
    if job.data.max_train_samples:
        xs, ys = raw["train"]
        order = list(range(len(xs)))
        random.Random(job.data.seed).shuffle(order)
        keep = sorted(order[: job.data.max_train_samples])
        raw["train"] = ([xs[i] for i in keep], [ys[i] for i in keep])
    for split, (xs, _) in raw.items():
        if not xs:
            raise ValueError(f"{where}: the {split} split is empty; give it at least one sample")

    classes = _class_names([y for y in raw["train"][1] if y is not None and str(y).strip()], job.data.classes)
    if len(classes) < 2:
        raise ValueError(f"{where}: found {len(classes)} class(es) in train; a classifier needs at least 2")
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = None
    if source.family == "text":
        from raytune_ft.models.text import Transformers

        tokenizer = Transformers.tokenizer(job.model)
    meta = {"family": source.family, "classes": classes, "splits": {}}
    for split in SPLITS:
        if split not in raw:
            continue
        xs, ys = raw[split]
        tensors = {"labels": torch.tensor(_encode_labels(ys, classes, split, where), dtype=torch.long)}
        if source.family == "vision":
            tensors["pixel_values"] = _images_to_tensor(xs, job.model.image_size)
        else:
            enc = tokenizer(xs, max_length=job.model.max_length, truncation=True, padding="max_length",
                            return_tensors="pt")
            tensors["input_ids"] = enc["input_ids"]
            tensors["attention_mask"] = enc["attention_mask"]
        tmp = out_dir / f".{split}.pt.tmp"
        torch.save(tensors, tmp)
        tmp.replace(out_dir / f"{split}.pt")
        counts = torch.bincount(tensors["labels"], minlength=len(classes)).tolist()
        meta["splits"][split] = {"samples": len(ys), "class_counts": counts}
    if source.family == "vision":
        meta["mean"], meta["std"] = list(job.model.mean), list(job.model.std)
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def load_meta(data_dir) -> dict:
    return json.loads((Path(data_dir) / "meta.json").read_text())


def load_split(data_dir, split: str) -> dict:
    """The prepared tensors of one split (tensors only: weights_only=True)."""
    import torch

    return torch.load(Path(data_dir) / f"{split}.pt", weights_only=True, mmap=True)
