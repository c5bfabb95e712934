"""Prepared data: a folder `raytune-ft prepare` wrote once, linked into each run that uses it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from raytune_ft.data.config import DataConfig
from raytune_ft.data.sources.base import DataSource, register_data_source
from raytune_ft.data.store import LABELS, column_path, has_split, load_meta
from raytune_ft.errors import InputError


class PreparedConfig(DataConfig):
    source: Literal["prepared"] = "prepared"
    path: Path = Field(description="a folder `raytune-ft prepare JOB --output DIR` wrote (its meta.json and splits)")

    @field_validator("path")
    @classmethod
    def _prepared(cls, path, info):
        if (info.context or {}).get("prepared"):
            return path
        if not path.exists():
            from raytune_ft.data.location import looked_in

            raise ValueError(f"{path} does not exist{looked_in(path, (info.context or {}).get('spec_dir'))}; give "
                             "the folder `raytune-ft prepare JOB.yaml --output DIR` wrote")
        if not (path / "meta.json").is_file():
            raise ValueError(f"{path} holds no prepared data (no meta.json); make it with "
                             "`raytune-ft prepare JOB.yaml --output DIR`, or give the raw files instead")
        return path

    @model_validator(mode="after")
    def _nothing_to_redo(self):
        for name in ("validation_fraction", "max_train_samples", "test_fraction"):
            if getattr(self, name) is not None:
                raise ValueError(f"data.{name}: prepared data are already split and sampled; set it in the job "
                                 "that prepares them (`raytune-ft prepare`), or use data.train_sizes")
        return self


@register_data_source
class Prepared(DataSource):
    """Data `raytune-ft prepare` wrote once, for many jobs: linked into the run, never decoded again.

    The job's model must see the images (resize, crop, mean / std) or the tokens (tokenizer, max_length)
    as the data were prepared for; `check(job)` says so before a run starts.
    """

    name = "prepared"
    family = "prepared"  # the meta says which: vision or text
    Config = PreparedConfig

    def family_of(self, config):
        try:
            return load_meta(config.path)["family"]
        except (OSError, ValueError, KeyError):
            return None  # a resumed run's data need not be there: its own copy is

    def train_labels(self, config):
        import numpy as np

        meta = load_meta(config.path)
        labels = np.load(column_path(config.path, "train", LABELS)).tolist()
        if meta.get("tasks"):  # multi-task: a row of class indices, one per task
            classes = list(meta["tasks"].values())
            return [tuple(c[i] for c, i in zip(classes, row)) for row in labels]
        return [meta["classes"][i] for i in labels]

    def task_names(self, config):
        try:
            return list(load_meta(config.path).get("tasks") or [])
        except (OSError, ValueError):
            return None  # as family_of: a resumed run's data need not be there

    def describe(self, config, split):
        return f"{config.path} ({split} split, prepared)"

    def locate(self, config, split, row):
        return f"{config.path} {split} split, row {row}"


def prepared_for(job) -> dict:
    """What a prepared split depends on beyond the raw data: the model's image recipe or tokenizer."""
    model = job.model
    if model.family() == "vision":  # a transformers model: as its config.json says
        return {"image": model.image_recipe().to_meta()}
    return {"tokenizer": str(model.name), "max_length": model.max_length}


def link_prepared(job, out_dir: Path) -> dict:
    """A run's data folder from prepared data: every file hard-linked (or, across file systems, symbolically
    linked), after checking the prepared data fit this job (splits, its model's view of them)."""
    config = job.data
    meta = load_meta(config.path)
    wanted = prepared_for(job)
    have = {k: meta.get("prepared_for", {}).get(k) for k in wanted}
    if have != wanted:
        raise InputError(f"data.path {config.path}: prepared for {have}, but this job's model needs {wanted}; "
                         "prepare the data again with this job's model section")
    if getattr(job.search, "confirm", None) and not has_split(config.path, "test"):
        raise InputError(f"data.path {config.path}: no test split for search.confirm; prepare the data with "
                         "search.confirm set (a test split is held out) or with data.test")
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in sorted(config.path.iterdir()):
        if f.is_file() and not f.name.startswith("."):
            target = out_dir / f.name
            try:
                os.link(f, target)
            except OSError:
                os.symlink(f.resolve(), target)
    return meta
