"""A data source reads raw samples and labels per split; `prepare.py` turns them into tensors once."""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from raytune_ft.registry import Registry

SPLITS = ("train", "validation", "test")


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    classes: Optional[list[str]] = Field(
        None, description="the class names, in label order; default: the sorted labels found in train")
    validation_fraction: Optional[float] = Field(
        None, gt=0, lt=1, description="hold out this share of train as validation when no validation split is given")
    max_train_samples: Optional[int] = Field(None, ge=1, description="use only this many training samples")
    seed: int = 0


class FileSplitsConfig(DataConfig):
    """Sources that read one file or folder per split."""

    train: Path
    validation: Optional[Path] = None
    test: Optional[Path] = None

    @model_validator(mode="after")
    def _splits(self):
        for split in SPLITS:
            path = getattr(self, split)
            if path is not None and not path.exists():
                raise ValueError(f"data.{split}: {path} does not exist; give the path of the {split} split")
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


DATA_SOURCES: Registry[type[DataSource]] = Registry("data source")


def register_data_source(cls: type[DataSource]) -> type[DataSource]:
    return DATA_SOURCES.register(cls.name)(cls)


def read_table(path: Path, columns: list[str]):
    """CSV, JSONL or Parquet into a pyarrow Table with `columns`; errors name the file and what is missing."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            table = pacsv.read_csv(path)
        elif suffix in (".jsonl", ".json"):
            table = pajson.read_json(path)
        elif suffix == ".parquet":
            table = pq.read_table(path)
        else:
            raise ValueError(f"{path}: unknown table format {suffix!r}; use .csv, .jsonl or .parquet")
    except (pa.ArrowInvalid, UnicodeDecodeError, OSError) as e:
        raise ValueError(f"{path}: cannot be read ({e})") from None
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(map(repr, missing))}; "
                         f"it has {', '.join(table.column_names)}")
    return table.select(columns)
