"""The samples of the Fisher estimate (`data.fisher_source`, `data.fisher_samples`): rows of a split of the
prepared data, or samples of a source-task file read, labelled and encoded as the job's own data are."""
from __future__ import annotations

import random
from pathlib import Path

from raytune_ft.data import encode
from raytune_ft.data.labels import class_names, label_names
from raytune_ft.data.sources import DATA_SOURCES
from raytune_ft.data.store import load_split
from raytune_ft.errors import InputError
from raytune_ft.ewc.config import FisherSource


def fisher_samples(job, out_dir: Path, meta: dict):
    """({column: tensor} of the chosen samples, their labels 0..k-1 as a tensor, what they are)."""
    import numpy as np
    import torch

    config = job.data
    n = config.fisher_samples
    source_spec = config.fisher_source or FisherSource(split="train")
    rng = random.Random(config.seed)
    if source_spec.split is not None:
        split = source_spec.split
        if split not in meta["splits"]:
            raise InputError(f"data.fisher_source: the prepared data have no {split} split (they have "
                             f"{', '.join(meta['splits'])}); name one of those, or give data.{split}")
        columns = load_split(out_dir, split)
        total = len(columns["labels"])
        rows = sorted(rng.sample(range(total), min(n, total)))
        batch = {k: (v[rows] if not isinstance(v, torch.Tensor) else v[torch.tensor(rows)]) for k, v in columns.items()}
        labels = batch.pop("labels")
    else:
        source = DATA_SOURCES.get(config.source)()
        own = config.model_copy(update={"train": source_spec.path, "validation": None, "test": None})
        refs, ys = source.index(own)["train"]
        if not refs:
            raise InputError(f"data.fisher_source.path {source_spec.path} has no samples; give at least one")
        names = label_names(ys, lambda row: source.locate(own, "train", row), "fisher_source")
        classes = class_names(names)
        rows = sorted(rng.sample(range(len(refs)), min(n, len(refs))))
        family = meta["family"]
        encoder = encode.Encoder(
            source, own, recipe=job.model.image_recipe() if family == "vision" else None,
            tokenizer=encode.load_tokenizer(job.model) if family == "text" else None,
            max_length=job.model.max_length if family == "text" else None)
        index = {c: i for i, c in enumerate(classes)}
        parts = list(encoder.stream([refs[i] for i in rows], [index[names[i]] for i in rows]))
        batch = {k: torch.from_numpy(np.concatenate([p[k] for p in parts])) for k in parts[0]}
        labels = batch.pop("labels")
    present, labels = torch.unique(labels, return_inverse=True)  # the classes the sample has, as 0..k-1
    if len(present) < 2:
        raise InputError(f"data.fisher_source ({source_spec.describe()}): the {len(labels)} sample(s) drawn hold "
                         f"{len(present)} class; the probe that stands in for the pretrained head needs at least "
                         "2: raise data.fisher_samples or name data with more classes")
    return batch, labels, source_spec.describe()
