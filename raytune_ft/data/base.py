"""A data source reads raw samples and labels per split; `prepare.py` turns them into tensors once.

Bad input is an `InputError` that names the file (and the row or line) and says how to fix it:
the job refuses to start rather than train on part of the data.
"""
from __future__ import annotations

import math
import numbers
import re
from pathlib import Path
from typing import Any, ClassVar, Iterator, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from raytune_ft.data import location
from raytune_ft.data.fisher import FisherSource
from raytune_ft.data.subsets import Shots, SizeEntry
from raytune_ft.errors import InputError  # noqa: F401  (raised here, caught once in the CLI)
from raytune_ft.registry import Registry

SPLITS = ("train", "validation", "test")




_NUMBER_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def label_name(label) -> str:
    """A label as the name of its class; ValueError (the reason) for a label that names no class.

    A class is a name or a whole number, whatever the column's type: 1, 1.0 and the text "1.0" are
    all class "1" (a Parquet float column, a CSV cell). Text that is not a number stays as written
    ("007" is "007"). Missing (None, empty text, NaN) and fractional (1.5) labels are errors.
    """
    if isinstance(label, str):
        text = label.strip()
        if not text:
            raise ValueError("the label is empty; fill it in or drop the row")
        if text.lower() == "nan":
            raise ValueError("the label is missing (NaN); fill it in or drop the row")
        if not _NUMBER_TEXT.fullmatch(text) or not any(c in text for c in ".eE"):
            return label  # a name, or an integer as written
        label = float(text)
    if label is None:
        raise ValueError("the label is empty; fill it in or drop the row")
    if isinstance(label, bool) or not isinstance(label, numbers.Real):
        return str(label)
    if isinstance(label, numbers.Integral):
        return str(int(label))
    value = float(label)
    if math.isnan(value):
        raise ValueError("the label is missing (NaN); fill it in or drop the row")
    if not value.is_integer():
        raise ValueError(f"label {value!r} is not a class: a class label is a name or a whole number "
                         "(1.0 counts as 1); fix the row or drop it")
    return str(int(value))


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
    seed: int = 0
    fisher_source: Optional[FisherSource] = Field(
        None, description="EWC (hparams.ewc) only: the samples its Fisher information is estimated on: "
        "{split: train | validation | test} of this job's data, or {path: ...}, a file or folder of the source "
        "task in this source's format and columns; default: the train split (raytune_ft/ewc.py)")
    fisher_samples: int = Field(
        256, ge=1, le=100_000, description="EWC only: samples of the Fisher estimate, drawn at random "
        "(one backward pass each, once per job, on the driver's CPU)")

    @field_validator("fisher_source")
    @classmethod
    def _fisher_source(cls, value, info):
        if value is not None and value.path is not None:
            raise ValueError(f"{cls.model_fields['source'].default} reads no files of its own, so fisher_source "
                             "cannot name one: name a split instead, e.g. {split: train}")
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
                             "label_columns (multi-task data: text_table, image_parquet, digits)")
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


def path_exists(path: Path) -> bool:
    """Whether path exists; a path the OS cannot even look up (too long, a NUL byte) counts as missing."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


class FileSplitsConfig(DataConfig):
    """Sources that read one file or folder per split: a path, or a URI (s3://, gs://, file://).

    Parsing a spec looks at paths only (a bucket is asked by the job's pre-flight, `location_problems`);
    with context {"on_cluster": True} (`submit`) an absolute path this machine does not have is left to
    the cluster too: it may be on the cluster's shared file system."""

    split_kind: ClassVar[Literal["file", "folder"]] = "file"
    suffixes: ClassVar[tuple[str, ...]] = ()  # the file formats this source reads (empty: any / folders)

    # a Path, or a URI kept as its text (s3://, gs://, file://): see location.py
    train: Union[Path, str]
    validation: Union[Path, str, None] = None
    test: Union[Path, str, None] = None

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
        problem = cls.split_problem(name, value, look=path is not None and not elsewhere)
        if problem and context.get("on_cluster") and path is not None and not path.is_absolute():
            problem += " (a relative path is looked up in what submit ships from here; a path only the " \
                       "cluster has is absolute)"
        return problem

    @classmethod
    def split_problem(cls, split: str, where: location.Location, *, look: bool = True) -> Optional[str]:
        """What is wrong with a split's location, or None. look=False: its form only (the suffix)."""
        kind, source = cls.split_kind, cls.model_fields["source"].default
        if look:
            try:
                found = location.kind(where)
            except OSError as e:
                return f"{where} cannot be checked ({' '.join(str(e).split())[:300]}): is the bucket right, " \
                       "and are its credentials set where the job runs?"
            if found is None:
                return f"{where} does not exist; give the path of the {split} {kind}"
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


class DataSource:
    name: ClassVar[str]
    family: ClassVar[str]  # "vision" | "text"
    Config: ClassVar[type[DataConfig]]

    def index(self, config: DataConfig) -> dict[str, tuple[list[Any], list[Any]]]:
        """{split: (refs, labels)}: a cheap reference to each sample (a file, a row; a text itself) and its
        label, nothing decoded yet, so that hold-outs and subsets are chosen before any image is read."""
        raise NotImplementedError

    def decode(self, config: DataConfig, refs: list[Any], chunk: int) -> Iterator[list[Any]]:
        """The samples of `refs` (one split's, in order), `chunk` at a time: images as H x W x C uint8 arrays
        or PIL images, texts as str. Preparation writes each chunk out before asking for the next."""
        raise NotImplementedError

    # A slice of `index`'s refs decodes without reading what comes before it: preparation on a cluster
    # may hand slices to several actors (data/encode.py). False: decoded in the driver, streamed.
    decodes_in_parts: ClassVar[bool] = True

    def readable_everywhere(self, config: DataConfig) -> bool:
        """Whether every node of a cluster can read the samples: they are in a bucket (or in the refs
        themselves, as texts are). False: preparation decodes them on the driver's node (data/encode.py)."""
        return all(location.in_bucket(where) for where in config.locations().values())

    def family_of(self, config: DataConfig) -> Optional[str]:
        """"vision" or "text": what this source gives for `config` (None: cannot tell yet)."""
        return self.family

    def task_names(self, config: DataConfig) -> Optional[list[str]]:
        """The tasks (data.label_columns), [] for a single-task source; None: cannot tell yet."""
        return config.task_names()

    def train_labels(self, config: DataConfig) -> Optional[list[Any]]:
        """The train split's labels if they can be read without decoding the samples (a label column,
        class folder names), for the checks made before a run folder exists; None where not."""
        return None

    def locate(self, config: DataConfig, split: str, row: int) -> str:
        """Where sample `row` of `split` (as `index` listed it) came from, for error messages."""
        path = getattr(config, split, None)
        return f"{path} row {row}" if path is not None else f"{self.name} {split} split, sample {row}"

    def describe(self, config: DataConfig, split: str) -> str:
        """The file or folder of a split, for error messages."""
        path = getattr(config, split, None)
        return f"{path} ({split} split)" if path is not None else f"the {split} split of {self.name}"


DATA_SOURCES: Registry[type[DataSource]] = Registry("data source")


def register_data_source(cls: type[DataSource]) -> type[DataSource]:
    return DATA_SOURCES.register(cls.name)(cls)


# --------------------------------------------------------------------------- tables

def _check_utf8(path: location.Location, data: bytes) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise InputError(f"{path} line {line}: not UTF-8 text (byte 0x{data[e.start]:02x} at column {column}); "
                         "save the file as UTF-8") from None


# Table formats by suffix. TSV (GLUE's format) is tab-delimited with a header row and no quoting: a
# field ends at the next tab or line end, so quotes inside a text are kept as they are.
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
_DELIMITED = {".csv": ("CSV", ","), ".tsv": ("TSV", "\t")}


def _csv_reader(data: bytes, suffix: str):
    import csv
    import io

    text = io.StringIO(data.decode("utf-8-sig"), newline="")
    if suffix == ".tsv":
        return csv.reader(text, delimiter="\t", quoting=csv.QUOTE_NONE)
    return csv.reader(text)


def _csv_bad_line(data: bytes, suffix: str = ".csv") -> Optional[str]:
    """The first line whose field count differs from the header's, as 'line N: ...' (pyarrow does not say)."""
    import csv

    reader = _csv_reader(data, suffix)
    try:
        header = next(reader, None)
        for row in reader:
            if header is not None and row and len(row) != len(header):
                return f"line {reader.line_num}: {len(row)} fields where the header has {len(header)}"
    except csv.Error as e:
        return f"line {reader.line_num}: {e}"
    return None


def _jsonl_bad_line(data: bytes) -> Optional[str]:
    """The first line that is not one JSON object, as 'line N: ...'."""
    import json

    for number, line in enumerate(data.decode("utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            return f"line {number}: not valid JSON ({e.msg} at column {e.colno})"
        if not isinstance(value, dict):
            return f"line {number}: a JSON {type(value).__name__} where each line must be one object " \
                   '(e.g. {"text": ..., "label": ...})'
    return None


def read_table(path: location.Location, columns: list[str], text_columns: tuple[str, ...] = ()):
    """CSV, TSV, JSONL or Parquet (a path, or a URI read through pyarrow's filesystems) into a pyarrow
    Table with `columns`; errors name the file, the line or the column. CSV / TSV cells of
    `text_columns` stay text (never parsed as numbers)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    suffix = location.suffix(path)
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"{path}: unknown table format {suffix!r}; use {', '.join(TABLE_SUFFIXES)}")
    try:
        if suffix == ".parquet":
            source, filesystem = location.parquet_source(path)  # a bucket's object is read through pyarrow.fs
            if location.kind(path) is None:  # else pyarrow's "not found" would read as a corrupt file
                raise InputError(f"{path}: no such file (moved or removed since the spec was checked?)")
            try:
                _check_columns(path, pq.read_schema(source, filesystem=filesystem).names, columns)
                table = pq.read_table(source, columns=columns, filesystem=filesystem)  # only these columns are read
            except (pa.ArrowException, OSError) as e:
                raise InputError(f"{path}: not a readable Parquet file (truncated or corrupt?): {e}") from None
        else:
            data = location.read_bytes(path)
            _check_utf8(path, data)
            try:
                if suffix in _DELIMITED:
                    _check_columns(path, _csv_header(data, suffix), columns)
                    delimiter = _DELIMITED[suffix][1]
                    parse = pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if suffix == ".csv" else False)
                    options = pacsv.ConvertOptions(include_columns=columns,
                                                   column_types={c: pa.string() for c in text_columns})
                    table = pacsv.read_csv(pa.BufferReader(data), parse_options=parse, convert_options=options)
                else:
                    table = pajson.read_json(pa.BufferReader(data))
            except pa.ArrowException as e:
                where = _csv_bad_line(data, suffix) if suffix in _DELIMITED else _jsonl_bad_line(data)
                kind = _DELIMITED[suffix][0] if suffix in _DELIMITED else "JSON lines"
                raise InputError(f"{path} {where}" if where else f"{path}: not a readable {kind} file: {e}") from None
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror or e})") from None
    _check_columns(path, table.column_names, columns)
    return table.select(columns)


def _csv_header(data: bytes, suffix: str = ".csv") -> list[str]:
    import csv

    try:
        return next(_csv_reader(data, suffix), [])
    except csv.Error:
        return []


def _check_columns(path: location.Location, have: list[str], want: list[str]) -> None:
    missing = [c for c in want if c not in have]
    if missing:
        raise InputError(f"{path}: no column {', '.join(map(repr, missing))}; "
                         f"it has {', '.join(map(repr, have)) if have else 'no columns (an empty file?)'}")
