"""A data source reads raw samples and labels per split; `prepare.py` turns them into tensors once.

Bad input is an `InputError` that names the file (and the row or line) and says how to fix it:
the job refuses to start rather than train on part of the data.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from raytune_ft.registry import Registry

SPLITS = ("train", "validation", "test")


class InputError(ValueError):
    """Bad input found while reading the data or the model (a file, a row, a column): exit code 2."""


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    classes: Optional[list[str]] = Field(
        None, description="the class names, in label order; default: the sorted labels found in train")
    validation_fraction: Optional[float] = Field(
        None, gt=0, lt=1, description="hold out this share of train as validation when no validation split is given")
    max_train_samples: Optional[int] = Field(None, ge=1, description="use only this many training samples")
    seed: int = 0

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
        repeated = sorted({c for c in classes if classes.count(c) > 1})
        if repeated:
            raise ValueError(f"{', '.join(map(repr, repeated))} listed more than once: each class once")
        return classes


def _exists(path: Path, kind: str) -> bool:
    """Whether path is an existing file / folder; a path the OS cannot even look up counts as missing."""
    try:
        return path.is_file() if kind == "file" else path.is_dir()
    except (OSError, ValueError):  # too long, a NUL byte, ...
        return False


class FileSplitsConfig(DataConfig):
    """Sources that read one file or folder per split."""

    split_kind: ClassVar[Literal["file", "folder"]] = "file"

    train: Path
    validation: Optional[Path] = None
    test: Optional[Path] = None

    @field_validator(*SPLITS)
    @classmethod
    def _split_exists(cls, path, info):
        if path is None:
            return path
        kind = cls.split_kind
        if not _exists(path, kind):
            if _exists(path, "folder" if kind == "file" else "file"):
                other = "a folder" if kind == "file" else "a file"
                raise ValueError(f"{path} is {other}; {cls.model_fields['source'].default} reads one {kind} "
                                 f"per split")
            raise ValueError(f"{path} does not exist; give the path of the {info.field_name} {kind}")
        return path

    @model_validator(mode="after")
    def _splits(self):
        if self.validation is None and self.validation_fraction is None:
            raise ValueError("data needs a validation split: set data.validation to a path, "
                             "or data.validation_fraction (e.g. 0.15) to hold out part of train")
        return self


class DataSource:
    name: ClassVar[str]
    family: ClassVar[str]  # "vision" | "text"
    Config: ClassVar[type[DataConfig]]

    def load(self, config: DataConfig) -> dict[str, tuple[list[Any], list[Any]]]:
        """{split: (samples, labels)}; images as HxWxC uint8 arrays or PIL images, texts as str."""
        raise NotImplementedError

    def locate(self, config: DataConfig, split: str, row: int) -> str:
        """Where sample `row` of `split` (as `load` returned it) came from, for error messages."""
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

def _check_utf8(path: Path, data: bytes) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise InputError(f"{path} line {line}: not UTF-8 text (byte 0x{data[e.start]:02x} at column {column}); "
                         "save the file as UTF-8") from None


def _csv_bad_line(data: bytes) -> Optional[str]:
    """The first line whose field count differs from the header's, as 'line N: ...' (pyarrow does not say)."""
    import csv
    import io

    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
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


def read_table(path: Path, columns: list[str], text_columns: tuple[str, ...] = ()):
    """CSV, JSONL or Parquet into a pyarrow Table with `columns`; errors name the file, the line or
    the column. CSV cells of `text_columns` stay text (never parsed as numbers)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".json", ".parquet"):
        raise InputError(f"{path}: unknown table format {suffix!r}; use .csv, .jsonl or .parquet")
    try:
        if suffix == ".parquet":
            try:
                table = pq.read_table(path)
            except (pa.ArrowException, OSError) as e:
                raise InputError(f"{path}: not a readable Parquet file (truncated or corrupt?): {e}") from None
        else:
            data = path.read_bytes()
            _check_utf8(path, data)
            try:
                if suffix == ".csv":
                    _check_columns(path, _csv_header(data), columns)
                    options = pacsv.ConvertOptions(include_columns=columns,
                                                   column_types={c: pa.string() for c in text_columns})
                    table = pacsv.read_csv(pa.BufferReader(data), convert_options=options)
                else:
                    table = pajson.read_json(pa.BufferReader(data))
            except pa.ArrowException as e:
                where = _csv_bad_line(data) if suffix == ".csv" else _jsonl_bad_line(data)
                kind = "CSV" if suffix == ".csv" else "JSON lines"
                raise InputError(f"{path} {where}" if where else f"{path}: not a readable {kind} file: {e}") from None
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror or e})") from None
    _check_columns(path, table.column_names, columns)
    return table.select(columns)


def _csv_header(data: bytes) -> list[str]:
    import csv
    import io

    try:
        return next(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")), [])
    except csv.Error:
        return []


def _check_columns(path: Path, have: list[str], want: list[str]) -> None:
    missing = [c for c in want if c not in have]
    if missing:
        raise InputError(f"{path}: no column {', '.join(map(repr, missing))}; "
                         f"it has {', '.join(map(repr, have)) if have else 'no columns (an empty file?)'}")
