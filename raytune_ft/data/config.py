"""The data spec's shared bases: `DataConfig` (every source's fields: classes, hold-outs, sizes, multi-task,
EWC's Fisher samples) and `FileSplitsConfig` (sources that read one file or folder per split). Their
rules are checked when a spec is parsed: each broken one is a message that says how to fix it.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from raytune_ft.data import location
from raytune_ft.data.labels import label_name
from raytune_ft.data.subsets import Shots, SizeEntry
from raytune_ft.ewc.config import FisherSource

SPLITS = ("train", "validation", "test")


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    classes: Optional[list[str]] = Field(
        None, description="the class names, in label order; default: the sorted labels found in train")
    validation_fraction: Optional[float] = Field(
        None, gt=0, lt=1, description="hold out this share of train as validation when no validation split is given")
    max_train_samples: Optional[int] = Field(None, ge=1, description="use only this many training samples")
    train_sizes: Optional[list[SizeEntry]] = Field(
        None, min_length=1, description="run the whole comparison on nested, stratified subsets of train: each "
        "entry a count (e.g. 200), a fraction (0.25) or {shots: k} (k samples per class); default: all of train")
    shots: Optional[int] = Field(
        None, ge=1, description="few-shot: train on k samples of each class, drawn from train (stratified, "
        "seeded by data.seed; the same draw as train_sizes: [{shots: k}]); a class with fewer is refused")
    test_fraction: Optional[float] = Field(
        None, gt=0, lt=1, description="when there is no test split and search.confirm is set, hold out this "
        "share of train as the test split (stratified, seeded); default: validation_fraction, else 0.15")
    label_columns: Optional[list[str]] = Field(
        None, min_length=2, description="multi-task: several label columns, one task each with its own classes "
        "(found in train); one shared backbone, one head output per class of every task")
    cap_validation: bool = Field(
        False, description="with train_sizes / shots: each trial validates on a stratified subset of the validation "
        "split no larger than its training set, so a 10-shot run is not tuned on hundreds of validation samples "
        "(true few-shot, Perez et al. 2021); default: the whole validation split")
    seed: int = Field(0, description="seeds every draw from the data: hold-outs (validation_fraction, "
                      "test_fraction, the digits' split), train sizes and shots, EWC's Fisher samples")
    fisher_source: Optional[FisherSource] = Field(
        None, description="EWC (hparams.ewc) only: the samples its Fisher information is estimated on: "
        "{split: train | validation | test} of this job's data, or {path: ...}, a file or folder of the source "
        "task in this source's format and columns; default: the train split (raytune_ft/ewc/)")
    fisher_samples: int = Field(
        256, ge=1, le=100_000, description="EWC only: samples of the Fisher estimate, drawn at random "
        "(one backward pass each, once per job, on the driver's CPU)")

    @field_validator("fisher_source")
    @classmethod
    def _fisher_source(cls, value, info):
        if value is not None and value.path is not None:
            raise ValueError(f"path: {cls.model_fields['source'].default} takes EWC's samples from a split of its own "
                             "data: name one instead, e.g. {split: train}")
        return value

    # whether the source reads several label columns (data.label_columns); False: one label per sample
    multi_task: ClassVar[bool] = False

    @model_validator(mode="after")
    def _label_columns(self):
        columns = self.label_columns
        if columns is None:
            return self
        if not self.multi_task:
            raise ValueError(f"label_columns: {self.source} has one label per sample, so one task: remove "
                             "label_columns (multi-task data: text_table, image_parquet, hf_dataset, digits)")
        for i, c in enumerate(columns):
            if not c.strip() or "." in c:
                raise ValueError(f"label_columns[{i}] {c!r}: a task's name is not empty and has no '.' "
                                 "(metrics are named <metric>.<task>, e.g. val_accuracy.topic)")
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise ValueError(f"label_columns: {', '.join(map(repr, repeated))} listed more than once: each task once")
        if self.classes is not None:
            raise ValueError("classes lists the classes of one task; with label_columns each task's classes are "
                             "those found in its train column: remove data.classes")
        if "label_column" in self.model_fields_set:
            raise ValueError("give label_column (one task) or label_columns (several), not both")
        return self

    def task_names(self) -> list[str]:
        """The tasks of a multi-task job, in head order; [] for one task."""
        return list(self.label_columns or [])

    @field_validator("train_sizes")
    @classmethod
    def _train_sizes(cls, sizes):
        for i, size in enumerate(sizes or []):
            if isinstance(size, bool) or (isinstance(size, int) and size < 2):
                raise ValueError(f"entry {i} ({size!r}): a count of samples is at least 2; for a share of "
                                 "train give a fraction like 0.5, for few-shot {shots: k}")
            if isinstance(size, float) and not 0 < size <= 1:
                raise ValueError(f"entry {i} ({size!r}): a fraction of train is in (0, 1]; for a count give a "
                                 "whole number")
        return sizes

    @model_validator(mode="after")
    def _shots_or_sizes(self):
        if self.shots is not None and self.train_sizes:
            raise ValueError(f"data.shots ({self.shots}) and data.train_sizes are both set: give one. For a curve "
                             f"over shots use train_sizes: [{{shots: 1}}, {{shots: {self.shots}}}, ...] alone")
        return self

    def sizes(self) -> Optional[list[SizeEntry]]:
        """The train sizes the comparison runs on: train_sizes, or data.shots as the one size {shots: k}."""
        return [Shots(shots=self.shots)] if self.shots is not None else self.train_sizes

    @field_validator("classes")
    @classmethod
    def _classes(cls, classes):
        if classes is None:
            return classes
        if len(classes) < 2:
            raise ValueError(f"a classifier needs at least 2 classes; got {classes}")
        blank = [i for i, c in enumerate(classes) if not c.strip()]
        if blank:
            raise ValueError(f"class names must not be empty (entry {blank[0]})")
        named = []
        for i, c in enumerate(classes):  # as labels are named: "1.0" is class "1"
            try:
                named.append(label_name(c))
            except ValueError as e:
                raise ValueError(f"entry {i} ({c!r}): {str(e).split(';')[0]}") from None
        classes = named
        repeated = sorted({c for c in classes if classes.count(c) > 1})
        if repeated:
            raise ValueError(f"{', '.join(map(repr, repeated))} listed more than once: each class once")
        return classes

    def locations(self) -> dict[str, location.Location]:
        """{field: path or URI} of the files and folders the source reads (none for a built-in dataset)."""
        return {}

    def location_problems(self) -> list[tuple[str, str]]:
        """(field, problem) for each location that is missing or wrong, a bucket's asked (the job's pre-flight)."""
        return []

    def not_here(self) -> list[tuple[str, location.Location]]:
        """(field, location) of those this machine cannot check: in a bucket, or a path it does not have."""
        return [(field, where) for field, where in self.locations().items()
                if location.in_bucket(where) or location.kind(where) is None]



class FileSplitsConfig(DataConfig):
    """Sources that read one file or folder per split: a path, or a URI (s3://, gs://, file://).

    Parsing a spec looks at paths only (a bucket is asked by the job's pre-flight, `location_problems`);
    with context {"on_cluster": True} (`submit`) an absolute path this machine does not have is left to
    the cluster too: it may be on the cluster's shared file system."""

    split_kind: ClassVar[Literal["file", "folder"]] = "file"
    suffixes: ClassVar[tuple[str, ...]] = ()  # the file formats this source reads (empty: any / folders)

    # a Path, or a URI kept as its text (s3://, gs://, file://): see location.py
    train: Union[Path, str] = Field(description="the train split: a path (from the working directory or the "
                                    "spec's folder) or a URI (s3://, gs://, file://)")
    validation: Union[Path, str, None] = Field(None, description="the validation split; or set validation_fraction")
    test: Union[Path, str, None] = Field(None, description="the test split (optional; with search.confirm and no "
                                         "test split, one is held out of train)")

    @field_validator(*SPLITS, mode="before")
    @classmethod
    def _location(cls, value):
        return value if value is None else location.parse(value)

    @field_validator(*SPLITS)
    @classmethod
    def _split_exists(cls, value, info):
        problem = cls._location_problem(info.field_name, value, info.context or {})
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("fisher_source")
    @classmethod
    def _fisher_source(cls, value, info):
        problem = cls._location_problem("fisher_source", value.path, info.context or {}) if value else None
        if problem:
            raise ValueError(f"path: {problem}")
        return value

    @classmethod
    def _location_problem(cls, name: str, value, context: dict) -> Optional[str]:
        if value is None or context.get("prepared"):
            return None  # a resumed run whose data were prepared reads no raw file
        path = location.local_path(value)
        # submit: an absolute path this machine does not have may be on the cluster's shared file system
        # (a relative one is looked up in the folder shipped from here: it must be here)
        elsewhere = bool(context.get("on_cluster")) and path is not None and path.is_absolute() \
            and location.kind(path) is None
        problem = cls.split_problem(name, value, look=path is not None and not elsewhere,
                                    spec_dir=context.get("spec_dir"))
        if problem and context.get("on_cluster") and path is not None and not path.is_absolute():
            problem += " (a relative path is looked up in what submit ships from here; a path only the " \
                       "cluster has is absolute)"
        return problem

    @classmethod
    def split_problem(cls, split: str, where: location.Location, *, look: bool = True,
                      spec_dir: Optional[Path] = None) -> Optional[str]:
        """What is wrong with a split's location, or None. look=False: its form only (the suffix). A relative
        path that is not there: the message names where it was looked for (the working folder, `spec_dir`)."""
        kind, source = cls.split_kind, cls.model_fields["source"].default
        if look:
            try:
                found = location.kind(where)
            except OSError as e:
                return f"{where} cannot be checked ({' '.join(str(e).split())[:300]}): is the bucket right, " \
                       "and are its credentials set where the job runs?"
            if found is None:
                return f"{where} does not exist{location.looked_in(where, spec_dir)}; give the path of the {split} {kind}"
            if found != kind:
                found = "a folder" if found == "folder" else "a file"
                return f"{where} is {found}; {source} reads one {kind} per split"
        suffix = location.suffix(where)
        if kind == "file" and cls.suffixes and suffix not in cls.suffixes:
            return (f"{where}: {source} cannot read {repr(suffix) if suffix else 'a file without a suffix'}; "
                    f"give a {' / '.join(cls.suffixes)} file (the suffix says the format)")
        return None

    @model_validator(mode="after")
    def _splits(self):
        if self.validation is None and self.validation_fraction is None:
            raise ValueError("data needs a validation split: set data.validation to a path, "
                             "or data.validation_fraction (e.g. 0.15) to hold out part of train")
        return self

    def locations(self) -> dict[str, location.Location]:
        return {split: getattr(self, split) for split in SPLITS if getattr(self, split) is not None}

    def location_problems(self) -> list[tuple[str, str]]:
        found = ((split, self.split_problem(split, where)) for split, where in self.locations().items())
        return [(split, problem) for split, problem in found if problem]
