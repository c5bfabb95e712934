"""A Hugging Face `datasets` dataset as the hf_dataset source reads it (data/sources/hf_dataset.py): opened
once per process, memory-mapped; its schema (a hub dataset's from its card, nothing downloaded); which of
its splits is train, validation and test; the columns the spec names, checked; labels and samples read a
chunk of rows at a time, never the whole dataset.

    splits = open_splits(config)                  # {split name: datasets.Dataset}
    roles, problems = split_roles(config, list(splits))   # {"train": "train", "validation": "dev"}, [(field, msg)]
    labels(config, splits["train"], "train")      # ClassLabel indices as their names
    read(config, splits["train"], "train", [0, 5, 9])     # texts, or RGB PIL images
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Optional, Union

from raytune_ft.data.config import SPLITS
from raytune_ft.errors import InputError

CHUNK_ROWS = 4096  # rows of a label or text column read at a time
SAVE_HINT = "save it with save_to_disk (or as csv / json / parquet files in a folder) and give that folder"
LABEL_TYPES = re.compile(r"u?int\d+|float\d+|string|large_string|bool")  # a Value feature a label may be


@functools.lru_cache(maxsize=4)
def _load(path: Union[Path, str], config_name: Optional[str]) -> dict:
    import datasets

    try:
        if isinstance(path, Path) and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
            loaded = datasets.load_from_disk(str(path))
        else:  # a folder of data files (datasets names the splits by the file names), or a hub name
            loaded = datasets.load_dataset(str(path), name=config_name)
    except Exception as e:  # datasets raises many kinds: FileNotFoundError, DataFilesNotFoundError, ValueError ...
        raise InputError(cannot_load(path, e)) from None
    return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}


def open_splits(config) -> dict:
    """{split name: Dataset}, memory-mapped: a folder save_to_disk wrote (one Dataset is the train split),
    a folder of data files, or a hub dataset (downloaded into the datasets cache by this call when it is
    not there and the machine is online). InputError, saying what to do, when it cannot be opened."""
    return _load(config.path, config.config_name)


def cannot_load(path, error: Exception) -> str:
    reason = " ".join(str(error).split())[:300] or type(error).__name__
    if isinstance(path, str):
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip() not in ("", "0")
        return (f"{path} is not a folder here, and the hub dataset {path!r} could not be read ({reason}); "
                + ("this machine is offline (HF_HUB_OFFLINE is set)" if offline else "this machine may be offline")
                + f": {SAVE_HINT} where it is online, and give that folder here")
    hint = f"; datasets no longer runs loading scripts: {SAVE_HINT}" if "script" in reason.lower() else ""
    return f"{path}: datasets cannot load it ({reason}){hint}"


def schema(config) -> Optional[dict]:
    """{split name: features}, nothing downloaded: a hub dataset's from its card (None where the card says
    neither its splits nor its features)."""
    if isinstance(config.path, Path):
        return {name: ds.features for name, ds in open_splits(config).items()}
    import datasets

    try:
        info = datasets.load_dataset_builder(config.path, name=config.config_name).info
    except Exception as e:
        raise InputError(cannot_load(config.path, e)) from None
    if not info.splits or info.features is None:
        return None
    return {name: info.features for name in info.splits}


def split_roles(config, have: list[str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """({role: the dataset's split}, problems as (field, message)) for train, validation and test: each
    role's own name where the dataset has it, data.split_names' otherwise (null: none); validation is held
    out of train when data.validation_fraction is set and data.split_names names none."""
    listed = ", ".join(map(repr, have)) or "none"
    roles, problems = {}, []
    for role in SPLITS:
        named = role in config.split_names
        name = config.split_names.get(role) if named else role
        if name is None or (role == "validation" and not named and config.validation_fraction is not None):
            continue
        if name in have:
            roles[role] = name
        elif named or role == "train":
            problems.append((f"split_names.{role}", f"{config.path} has no split {name!r} (its splits: {listed}): "
                             f"name its {role} split in data.split_names, e.g. {{{role}: {have[0] if have else role}}}"))
        elif role == "validation":
            problems.append(("validation_fraction", f"{config.path} has no 'validation' split (its splits: {listed}): "
                             "set data.validation_fraction (e.g. 0.15) to hold out part of train, or name its "
                             "validation split in data.split_names, e.g. {validation: dev}"))
    repeated = sorted({n for n in roles.values() if list(roles.values()).count(n) > 1})
    if repeated:
        problems.append(("split_names", f"split {repeated[0]!r} has two roles: each of train, validation and test "
                         "is a split of its own (or null)"))
    return roles, problems


def is_class_label(feature) -> bool:
    return type(feature).__name__ == "ClassLabel"


def column_problems(config, split: str, features) -> list[tuple[str, str]]:
    """(field, message) for each column the spec names that the split lacks, or that holds something the
    source cannot read (a text column of numbers, an image column that is not an Image feature)."""
    have = ", ".join(map(repr, features)) or "none"
    wanted = [("text_column" if config.text_column else "image_column", config.sample_column())]
    wanted += [(f"label_columns[{i}]", c) for i, c in enumerate(config.label_columns)] if config.label_columns \
        else [("label_column", config.label_column)]
    out = []
    for field, column in wanted:
        feature = features.get(column)
        kind = getattr(feature, "dtype", None)
        if feature is None:
            problem = f"has no column {column!r} (its columns: {have})"
        elif field == "text_column" and kind not in ("string", "large_string"):
            problem = f"column {column!r} holds {feature}, not texts"
        elif field == "image_column" and type(feature).__name__ != "Image":
            problem = (f"column {column!r} holds {feature}, not images: cast it to a datasets Image feature "
                       f"(dataset.cast_column({column!r}, datasets.Image())) and save it again")
        elif field.startswith("label") and not is_class_label(feature) and not (
                isinstance(kind, str) and LABEL_TYPES.fullmatch(kind)):
            problem = f"column {column!r} holds {feature}: a label is a ClassLabel, a whole number or a class name"
        else:
            continue
        out.append((field, f"{config.path} split {split!r} {problem}"))
    return out


def column(ds, name: str):
    """A column's values, read CHUNK_ROWS rows at a time."""
    for batch in ds.select_columns([name]).iter(batch_size=CHUNK_ROWS):
        yield from batch[name]


def labels(config, ds, split: str) -> list:
    """A split's labels: ClassLabel indices as their names; a tuple a row for a multi-task job. A missing
    label (-1) is an InputError naming its split and row."""
    out = []
    for name in config.label_columns or [config.label_column]:
        feature = ds.features[name]
        names = list(feature.names) if is_class_label(feature) else None
        values = []
        for row, value in enumerate(column(ds, name)):
            if names is not None:
                if value is None or not 0 <= value < len(names):
                    raise InputError(f"{config.path} split {split!r} row {row}: column {name!r} has no label "
                                     f"({value}: a ClassLabel's missing label); drop the unlabelled rows, or leave "
                                     "an unlabelled split out (a hub dataset's test split often is): "
                                     "data.split_names: {test: null}")
                value = names[value]
            values.append(value)
        out.append(values)
    return list(zip(*out)) if config.label_columns else out[0]


def check_texts(config, ds, split: str) -> None:
    """Every text of the split is text and not empty (InputError naming the row otherwise)."""
    for row, text in enumerate(column(ds, config.text_column)):
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{config.path} split {split!r} row {row}: column {config.text_column!r} is "
                             + ("empty" if text is None or isinstance(text, str) else f"not text ({text!r:.40})"))


def read(config, ds, split: str, rows: list[int]) -> list:
    """The samples at `rows`: texts, or RGB PIL images (one that does not decode is named by split and row)."""
    name = config.sample_column()
    try:
        values = ds.select_columns([name])[rows][name]
        return values if config.text_column else [image.convert("RGB") for image in values]
    except Exception:  # an image that does not decode: find which
        if len(rows) == 1 or config.text_column:
            raise
    out = []
    for row in rows:
        try:
            out += read(config, ds, split, [row])
        except Exception as e:
            raise InputError(f"{config.path} split {split!r} row {row}: column {name!r} is not a readable image "
                             f"({' '.join(str(e).split())[:200] or type(e).__name__})") from None
    return out
