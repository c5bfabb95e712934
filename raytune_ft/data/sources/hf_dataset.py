"""Hugging Face `datasets`: a folder `save_to_disk` wrote, a folder of data files, or a hub name.

    data: {source: hf_dataset, path: data/sst2, text_column: sentence, label_column: label}
    data: {source: hf_dataset, path: data/beans, image_column: image, split_names: {test: null}}

Splits by name: `train`, `validation` and `test` (a folder of files: as `datasets` names them from the file
names, dev.csv is validation); other names through `split_names`. The dataset is opened memory-mapped and
read a chunk of rows at a time (data/hf_reading.py). What the spec names (the path, its splits, its
columns and their types, missing labels) is checked at `validate`, before anything is prepared.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from raytune_ft.cluster.storage import is_uri
from raytune_ft.data import hf_reading as hf
from raytune_ft.data import location
from raytune_ft.data.config import DataConfig
from raytune_ft.data.sources.base import DataSource, register_data_source
from raytune_ft.errors import InputError

HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")  # imdb, stanfordnlp/sst2


class HfDatasetConfig(DataConfig):
    source: Literal["hf_dataset"] = "hf_dataset"
    path: Union[Path, str] = Field(description="a folder `save_to_disk` wrote (a DatasetDict, or one Dataset: the "
                                   "train split), a folder of csv / json / parquet files (splits named by the file "
                                   "names: train.csv, dev.csv ...), or a hub name (e.g. stanfordnlp/sst2: read when "
                                   "this machine is online, or has it in its datasets cache)")
    config_name: Optional[str] = Field(None, description="the dataset's configuration, `load_dataset`'s name "
                                       "(e.g. sst2 of nyu-mll/glue), for a hub name or a folder of files")
    text_column: Optional[str] = Field(None, description="the column of texts (a text job); or image_column")
    image_column: Optional[str] = Field(None, description="the column of images, a datasets Image feature "
                                        "(a vision job); or text_column")
    label_column: str = Field("label", description="the column of labels: a ClassLabel (its names are the "
                              "classes, in order), whole numbers or class names")
    split_names: dict[Literal["train", "validation", "test"], Optional[str]] = Field(
        default_factory=dict, description="the dataset's split for a role whose split has another name, e.g. "
        "{validation: dev}; null leaves that split out (e.g. {test: null}: an unlabelled test split). By default "
        "each role is the split of its own name, where the dataset has one (validation: or validation_fraction)")
    multi_task = True

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, value, info):
        """A local path (a Path) or a hub name (kept as text); a path that is not here is refused now."""
        if not isinstance(value, (str, os.PathLike)) or is_uri(os.fspath(value)):
            raise ValueError(f"{value!r:.80}: give a folder on this machine (or on a file system every node "
                             "mounts), or a hub name; for data in a bucket use text_table or image_parquet")
        text = os.fspath(value)
        path, context = Path(text).expanduser(), info.context or {}
        if location.path_exists(path) or not HUB_NAME.fullmatch(text):
            if not location.path_exists(path) and not context.get("prepared") \
                    and not (context.get("on_cluster") and path.is_absolute()):
                raise ValueError(f"{text} does not exist{location.looked_in(path, context.get('spec_dir'))}; give "
                                 "a folder save_to_disk wrote, a folder of data files, or a hub name such as "
                                 "stanfordnlp/sst2")
            return path
        return text  # a hub name: looked up by `location_problems`

    @model_validator(mode="after")
    def _columns(self):
        if (self.text_column is None) == (self.image_column is None):
            raise ValueError("give data.text_column (a column of texts) or data.image_column (a column of images), "
                             + ("not both" if self.text_column else "to say which column holds the samples"))
        if "train" in self.split_names and not self.split_names["train"]:
            raise ValueError("data.split_names.train: a job needs a train split; name it, e.g. {train: train}")
        if self.split_names.get("validation") and self.validation_fraction is not None:
            raise ValueError("data.split_names.validation and data.validation_fraction are both set: give the "
                             "validation split, or hold one out of train, not both")
        return self

    def sample_column(self) -> str:
        return self.text_column or self.image_column

    def locations(self) -> dict[str, location.Location]:
        return {"path": self.path} if isinstance(self.path, Path) else {}

    def location_problems(self) -> list[tuple[str, str]]:
        """The splits and columns the spec names, and missing labels (-1) in the splits it uses, as
        (field, problem): one a field. A hub dataset is asked for its card only (nothing downloaded)."""
        try:
            features = hf.schema(self)
        except InputError as e:
            return [("path", str(e))]
        if features is None:  # a hub dataset whose card says neither: checked when the run loads it
            return []
        roles, problems = hf.split_roles(self, list(features))
        for role, name in roles.items():
            found = hf.column_problems(self, name, features[name])
            problems += found
            if not found and isinstance(self.path, Path):
                try:
                    hf.labels(self, hf.open_splits(self)[name], name)
                except InputError as e:
                    problems.append((f"split_names.{role}" if role != "train" else "label_column", str(e)))
        first: dict[str, str] = {}  # one problem a field: the first split that has it
        for field, problem in problems:
            first.setdefault(field, problem)
        return list(first.items())


@register_data_source
class HfDataset(DataSource):
    """A `datasets` dataset of texts or of images; the labels of a ClassLabel column name its classes."""

    name = "hf_dataset"
    family = "text or vision"  # as the config says: text_column or image_column (`family_of`)
    families = ("text", "vision")
    Config = HfDatasetConfig

    def family_of(self, config):
        return "text" if config.text_column else "vision"

    def readable_everywhere(self, config):
        return False  # a folder on this machine, or a hub dataset in its cache: decoded here

    def _train(self, config):
        splits = hf.open_splits(config)
        roles, problems = hf.split_roles(config, list(splits))
        problems += [p for name in roles.values() for p in hf.column_problems(config, name, splits[name].features)]
        if problems:  # what `validate` refuses (the data changed since?)
            raise InputError(f"data.{problems[0][0]}: {problems[0][1]}")
        return splits, roles

    def declared_classes(self, config, task=None):
        splits, roles = self._train(config)
        feature = splits[roles["train"]].features[task or config.label_column]
        return list(feature.names) if hf.is_class_label(feature) else None

    def train_labels(self, config):
        if not isinstance(config.path, Path):
            return None  # a hub dataset: read when the run loads it, never at validate
        splits, roles = self._train(config)
        return hf.labels(config, splits[roles["train"]], roles["train"])

    def index(self, config):
        """(split, row) of every sample, with its label; texts are checked (none empty), nothing is decoded."""
        splits, roles = self._train(config)
        out = {}
        for role, name in roles.items():
            if config.text_column:
                hf.check_texts(config, splits[name], name)
            out[role] = ([(name, row) for row in range(len(splits[name]))], hf.labels(config, splits[name], name))
        return out

    def decode(self, config, refs, chunk):
        """The samples of `refs`, `chunk` at a time, each split's rows read together (a held-out split's
        refs are rows of train)."""
        splits = hf.open_splits(config)
        for start in range(0, len(refs), chunk):
            part, samples, at = refs[start:start + chunk], [], 0
            while at < len(part):
                name, end = part[at][0], at
                while end < len(part) and part[end][0] == name:
                    end += 1
                samples += hf.read(config, splits[name], name, [row for _, row in part[at:end]])
                at = end
            yield samples

    def locate(self, config, split, row):
        return f"{config.path} split {config.split_names.get(split) or split!r} row {row}"

    def describe(self, config, split):
        return f"{config.path} ({split} split {config.split_names.get(split) or split!r})"
