"""A data source reads raw samples and labels per split; `data/prepare.py` turns them into tensors once.

Each source is a file in this folder, registered under its name (`register_data_source`), with its
spec section (`Config`, a `DataConfig`: data/config.py), plus its import line in `__init__.py`.

Bad input is an `InputError` that names the file (and the row or line) and says how to fix it:
the job refuses to start rather than train on part of the data.
"""
from __future__ import annotations

from typing import Any, ClassVar, Iterator, Optional

from raytune_ft.data import location
from raytune_ft.data.config import DataConfig
from raytune_ft.registry import Registry


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

    def declared_classes(self, config: DataConfig, task: Optional[str] = None) -> Optional[list[str]]:
        """The class names in label order where the data declare them (a `datasets` ClassLabel, a torchvision
        set's `classes`), for `task` (a label column) of a multi-task source; None: the classes are the
        sorted labels of train. data.classes, when given, wins."""
        return None

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

