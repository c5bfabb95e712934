"""The built-in data sources: scikit-learn digits, image folders, image Parquet, text tables."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from raytune_ft.data import location
from raytune_ft.data.base import (TABLE_SUFFIXES, DataConfig, DataSource, FileSplitsConfig, InputError,
                                  read_table, register_data_source)


DIGITS_MIN_SHARE = 0.02  # of 1,797 digits: 36 images, 3-4 of each of the 10 classes

# The digits' label columns (data.label_columns), each a task derived from the digit d:
# digit: d itself (the single task of a job without label_columns); parity: even / odd; high: d >= 5 (high / low)
DIGITS_TASKS = {
    "digit": lambda d: str(d),
    "parity": lambda d: "odd" if d % 2 else "even",
    "high": lambda d: "high" if d >= 5 else "low",
}


class DigitsConfig(DataConfig):
    source: Literal["digits"] = "digits"
    validation_fraction: float = Field(0.15, gt=0, lt=1, description=f"share held out as the validation split "
                                       f"(at least {DIGITS_MIN_SHARE})")
    test_fraction: float = Field(0.15, ge=0, lt=1, description="share held out as the test split (0: none, "
                                 f"else at least {DIGITS_MIN_SHARE})")
    multi_task = True

    @field_validator("label_columns")
    @classmethod
    def _digit_tasks(cls, columns):
        unknown = [c for c in columns or [] if c not in DIGITS_TASKS]
        if unknown:
            raise ValueError(f"{', '.join(map(repr, unknown))}: the digits have the label columns "
                             f"{', '.join(DIGITS_TASKS)} (the digit; even / odd; >= 5)")
        return columns

    @model_validator(mode="after")
    def _shares(self):
        """Every split is stratified over the 10 digits, so each needs a few images of every digit."""
        train = 1 - self.validation_fraction - self.test_fraction
        if train < DIGITS_MIN_SHARE - 1e-9:
            raise ValueError(
                f"data.validation_fraction {self.validation_fraction} + data.test_fraction {self.test_fraction} "
                f"= {self.validation_fraction + self.test_fraction:g} leaves {max(train, 0):.0%} of the digits to "
                f"train on: keep their sum at most {1 - DIGITS_MIN_SHARE:g} (e.g. 0.15 and 0.15)")
        for name in ("validation_fraction", "test_fraction"):
            share = getattr(self, name)
            if 0 < share < DIGITS_MIN_SHARE - 1e-9:
                raise ValueError(f"data.{name} {share} holds out {round(share * 1797)} of the 1,797 digits, too few "
                                 f"for a stratified split of 10 classes: use at least {DIGITS_MIN_SHARE}"
                                 + (" (or 0: no test split)" if name == "test_fraction" else ""))
        return self


@register_data_source
class Digits(DataSource):
    """scikit-learn's 1,797 real 8x8 handwritten digits (ships with scikit-learn: no download)."""

    name = "digits"
    family = "vision"
    Config = DigitsConfig

    def index(self, config):
        import numpy as np
        from sklearn.model_selection import train_test_split

        labels = _digits()[1]
        idx = np.arange(len(labels))
        held = config.validation_fraction + config.test_fraction
        train_idx, rest = train_test_split(idx, test_size=held, stratify=labels, random_state=config.seed)
        splits = {"train": train_idx}
        if config.test_fraction > 0:
            rest_labels = [labels[i] for i in rest]
            val_idx, test_idx = train_test_split(
                rest, test_size=config.test_fraction / held, stratify=rest_labels, random_state=config.seed)
            splits.update(validation=val_idx, test=test_idx)
        else:
            splits["validation"] = rest
        tasks = [DIGITS_TASKS[c] for c in config.label_columns] if config.label_columns else None
        return {s: ([int(i) for i in ix], [tuple(t(labels[i]) for t in tasks) if tasks else labels[i] for i in ix])
                for s, ix in splits.items()}

    def decode(self, config, refs, chunk):
        images = _digits()[0]
        for start in range(0, len(refs), chunk):
            yield [images[i] for i in refs[start:start + chunk]]


def _digits():
    """(images H x W x 3 uint8, labels) of scikit-learn's digits: 0..16 grey levels scaled to 0..255."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    return np.repeat(images[..., None], 3, axis=-1), digits.target.tolist()


def label_columns(config) -> list[str]:
    """The label columns a table source reads: data.label_columns (multi-task), else data.label_column."""
    return list(config.label_columns or [config.label_column])


def read_labels(table, config) -> list:
    """A table's labels: one per row, or a tuple per row (one per task) for a multi-task source."""
    columns = [table.column(c).to_pylist() for c in label_columns(config)]
    return list(zip(*columns)) if config.label_columns else columns[0]


def _label_column(config) -> list:
    """The train file's label column(s) alone (as `load` reads it: CSV / TSV cells as text)."""
    columns = label_columns(config)
    return read_labels(read_table(config.train, columns, text_columns=tuple(columns)), config)


def split_columns(config, sample_column: str, text: bool = False):
    """(split, path, samples, labels) for each split file the config names (text: CSV cells stay strings)."""
    for split in ("train", "validation", "test"):
        path = getattr(config, split)
        if path is not None:
            columns = [sample_column, *label_columns(config)]
            table = read_table(path, columns, text_columns=tuple(columns) if text else ())
            yield split, path, table.column(sample_column).to_pylist(), read_labels(table, config)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _open_image(source, where: str):
    """An RGB PIL image, fully decoded now (a truncated or corrupt file fails here, named)."""
    from PIL import Image

    try:
        with Image.open(source) as im:
            return im.convert("RGB")
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        reason = str(e).split(" <_io.")[0] if "<_io." in str(e) else str(e)  # no BytesIO reprs
        raise InputError(f"{where}: not a readable image ({reason or type(e).__name__})") from None


def _image_file(where):
    """What PIL opens: a local path, or the bytes of an object in a bucket."""
    if isinstance(where, Path):
        return where
    try:
        return io.BytesIO(location.read_bytes(where))
    except OSError as e:
        raise InputError(f"{where}: cannot be read ({' '.join(str(e).split())})") from None


class ImageFolderConfig(FileSplitsConfig):
    source: Literal["image_folder"] = "image_folder"
    split_kind = "folder"


def _visible(folder) -> list:
    """A folder's entries (name, kind, location), sorted, hidden ones (.DS_Store) left out."""
    return [e for e in location.entries(folder) if not e[0].startswith(".")]


@register_data_source
class ImageFolder(DataSource):
    """One folder per split, one sub-folder per class: train/cat/1.png, train/dog/2.jpg, ...

    Every image is read: a file that is not an image (by its name) inside a class folder, an image
    outside one, or a nested folder is refused rather than skipped. Hidden files (.DS_Store) are ignored.
    A folder in a bucket (s3://, gs://) is read the same way, one request per image: for many images,
    image_parquet (a few large files) is much faster.
    """

    name = "image_folder"
    family = "vision"
    Config = ImageFolderConfig

    def index(self, config):
        """Every image file and its class (the folder's name); nothing is decoded yet."""
        out, self.files = {}, {}
        for split in ("train", "validation", "test"):
            root = getattr(config, split)
            if root is None:
                continue
            labels, files = [], []
            for name, kind, entry in _visible(root):
                if kind == "file" and location.suffix(name) in IMAGE_SUFFIXES:
                    raise InputError(f"{entry}: an image outside any class folder; move it into "
                                     f"{root}/<class>/ (the folder name is its label)")
                if kind != "folder":
                    continue
                for file_name, file_kind, f in _visible(entry):
                    if file_kind == "folder":
                        raise InputError(f"{f}: a folder inside class folder {name!r}; images go directly "
                                         f"in {root}/<class>/")
                    if location.suffix(file_name) not in IMAGE_SUFFIXES:
                        raise InputError(f"{f}: not an image file ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                                         "remove it or convert it, so that no sample is skipped")
                    labels.append(name)
                    files.append(f)
            out[split] = (files, labels)
            self.files[split] = files
        return out

    def decode(self, config, refs, chunk):
        for start in range(0, len(refs), chunk):
            yield [_open_image(_image_file(f), str(f)) for f in refs[start:start + chunk]]

    def train_labels(self, config):
        labels, self.files = [], {"train": []}
        for name, kind, entry in _visible(config.train):
            if kind != "folder":
                continue
            for file_name, file_kind, f in _visible(entry):
                if file_kind == "file" and location.suffix(file_name) in IMAGE_SUFFIXES:
                    labels.append(name)
                    self.files["train"].append(f)
        return labels

    def locate(self, config, split, row):
        return str(self.files[split][row])

    def describe(self, config, split):
        return f"{getattr(config, split)} ({split} split: one sub-folder of images per class)"


class ImageParquetConfig(FileSplitsConfig):
    source: Literal["image_parquet"] = "image_parquet"
    suffixes = (".parquet",)  # image bytes need a binary column
    image_column: str = Field("image", description="encoded image bytes (or a struct with a 'bytes' field)")
    label_column: str = "label"
    multi_task = True


@register_data_source
class ImageParquet(DataSource):
    name = "image_parquet"
    family = "vision"
    Config = ImageParquetConfig
    decodes_in_parts = False  # rows are reached by reading the file's record batches from its start

    def train_labels(self, config):
        return _label_column(config)

    def index(self, config):
        """(file, row) of every image, with its label; only the label column is read."""
        out = {}
        for split in ("train", "validation", "test"):
            path = getattr(config, split)
            if path is not None:
                _check_image_column(path, config.image_column)
                labels = read_labels(read_table(path, label_columns(config)), config)
                out[split] = ([(path, row) for row in range(len(labels))], labels)
        return out

    def decode(self, config, refs, chunk):
        """The images of `refs` (rows of one file, ascending), streamed from the file in record batches:
        never more than a batch of encoded images in memory."""
        import pyarrow.parquet as pq

        if not refs:
            return
        path = refs[0][0]
        wanted = [row for _, row in refs]
        if any(p != path for p, _ in refs) or wanted != sorted(wanted):
            raise ValueError("image_parquet decodes rows of one file in ascending order")
        images, at, first = [], 0, 0
        where, remote = location.parquet_source(path)
        source = remote.open_input_file(where) if remote is not None else where  # a bucket's object, streamed
        batches = pq.ParquetFile(source, pre_buffer=False, buffer_size=1 << 20).iter_batches(
            batch_size=256, columns=[config.image_column])
        for batch in batches:
            cells = batch.column(0)
            while at < len(wanted) and wanted[at] < first + len(cells):
                row = wanted[at]
                cell = cells[row - first].as_py()
                data = cell.get("bytes") if isinstance(cell, dict) else cell
                if not isinstance(data, (bytes, bytearray)):
                    raise InputError(f"{path} row {row}: column {config.image_column!r} holds no image bytes "
                                     f"(found {type(data).__name__})")
                images.append(_open_image(io.BytesIO(data), f"{path} row {row}"))
                at += 1
                if len(images) == chunk:
                    yield images
                    images = []
            first += len(cells)
            if at == len(wanted):
                break
        if images:
            yield images


def _check_image_column(path, column: str) -> None:
    import pyarrow.parquet as pq

    from raytune_ft.data.base import _check_columns

    where, remote = location.parquet_source(path)
    _check_columns(path, pq.read_schema(where, filesystem=remote).names, [column])


class TextTableConfig(FileSplitsConfig):
    source: Literal["text_table"] = "text_table"
    suffixes = TABLE_SUFFIXES
    text_column: str = "text"
    label_column: str = "label"
    multi_task = True


@register_data_source
class TextTable(DataSource):
    """CSV, TSV (tab-delimited, header row: GLUE), JSONL or Parquet files with a text column and a label column."""

    name = "text_table"
    family = "text"
    Config = TextTableConfig

    def train_labels(self, config):
        return _label_column(config)

    def index(self, config):
        """The texts themselves (small beside what they become), checked here: none empty."""
        out = {}
        for split, path, texts, labels in split_columns(config, config.text_column, text=True):
            for row, text in enumerate(texts):
                if not isinstance(text, str) or not text.strip():
                    raise InputError(f"{path} row {row}: column {config.text_column!r} is "
                                     + ("empty" if text is None or isinstance(text, str) else
                                        f"not text ({type(text).__name__} {text!r:.40})"))
            out[split] = (texts, labels)
        return out

    def readable_everywhere(self, config):
        return True  # the refs are the texts

    def decode(self, config, refs, chunk):
        for start in range(0, len(refs), chunk):
            yield refs[start:start + chunk]


class PreparedConfig(DataConfig):
    source: Literal["prepared"] = "prepared"
    path: Path = Field(description="a folder `raytune-ft prepare JOB --output DIR` wrote (its meta.json and splits)")

    @field_validator("path")
    @classmethod
    def _prepared(cls, path, info):
        if (info.context or {}).get("prepared"):
            return path
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
        import json

        try:
            return json.loads((config.path / "meta.json").read_text())["family"]
        except (OSError, ValueError, KeyError):
            return None  # a resumed run's data need not be there: its own copy is

    def train_labels(self, config):
        import json

        import numpy as np

        from raytune_ft.data.store import LABELS, column_path

        meta = json.loads((config.path / "meta.json").read_text())
        labels = np.load(column_path(config.path, "train", LABELS)).tolist()
        if meta.get("tasks"):  # multi-task: a row of class indices, one per task
            classes = list(meta["tasks"].values())
            return [tuple(c[i] for c, i in zip(classes, row)) for row in labels]
        return [meta["classes"][i] for i in labels]

    def task_names(self, config):
        import json

        try:
            return list(json.loads((config.path / "meta.json").read_text()).get("tasks") or [])
        except (OSError, ValueError):
            return None  # as family_of: a resumed run's data need not be there

    def describe(self, config, split):
        return f"{config.path} ({split} split, prepared)"

    def locate(self, config, split, row):
        return f"{config.path} {split} split, row {row}"


def prepared_for(job) -> dict:
    """What a prepared split depends on beyond the raw data: the model's image recipe or tokenizer."""
    model = job.model
    if model.family() == "vision":
        return {"image": model.image_recipe().to_meta()}
    return {"tokenizer": str(model.name), "max_length": model.max_length}


def link_prepared(job, out_dir: Path) -> dict:
    """A run's data folder from prepared data: every file hard-linked (or, across file systems, symbolically
    linked), after checking the prepared data fit this job (splits, its model's view of them)."""
    import json
    import os

    from raytune_ft.data.store import has_split

    config = job.data
    meta = json.loads((config.path / "meta.json").read_text())
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
