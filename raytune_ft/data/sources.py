"""The built-in data sources: scikit-learn digits, image folders, image Parquet, text tables."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from raytune_ft.data import location
from raytune_ft.data.base import (TABLE_SUFFIXES, DataConfig, DataSource, FileSplitsConfig, InputError,
                                  read_table, register_data_source)


DIGITS_MIN_SHARE = 0.02  # of 1,797 digits: 36 images, 3-4 of each of the 10 classes


class DigitsConfig(DataConfig):
    source: Literal["digits"] = "digits"
    validation_fraction: float = Field(0.15, gt=0, lt=1, description=f"share held out as the validation split "
                                       f"(at least {DIGITS_MIN_SHARE})")
    test_fraction: float = Field(0.15, ge=0, lt=1, description="share held out as the test split (0: none, "
                                 f"else at least {DIGITS_MIN_SHARE})")

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

    def load(self, config):
        import numpy as np
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)  # 0..16 -> 0..255
        images = np.repeat(images[..., None], 3, axis=-1)  # gray -> RGB, HxWx3
        labels = digits.target.tolist()
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
        return {s: ([images[i] for i in ix], [labels[i] for i in ix]) for s, ix in splits.items()}


def _label_column(config) -> list:
    """The train file's label column alone (as `load` reads it: CSV / TSV cells as text)."""
    column = config.label_column
    return read_table(config.train, [column], text_columns=(column,)).column(column).to_pylist()


def split_columns(config, sample_column: str, label_column: str, text: bool = False):
    """(split, path, samples, labels) for each split file the config names (text: CSV cells stay strings)."""
    for split in ("train", "validation", "test"):
        path = getattr(config, split)
        if path is not None:
            columns = [sample_column, label_column]
            table = read_table(path, columns, text_columns=tuple(columns) if text else ())
            yield split, path, table.column(sample_column).to_pylist(), table.column(label_column).to_pylist()


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

    def load(self, config):
        out, self.files = {}, {}
        for split in ("train", "validation", "test"):
            root = getattr(config, split)
            if root is None:
                continue
            images, labels, files = [], [], []
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
                    images.append(_open_image(_image_file(f), str(f)))
                    labels.append(name)
                    files.append(f)
            out[split] = (images, labels)
            self.files[split] = files
        return out

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


@register_data_source
class ImageParquet(DataSource):
    name = "image_parquet"
    family = "vision"
    Config = ImageParquetConfig

    def train_labels(self, config):
        return _label_column(config)

    def load(self, config):
        out = {}
        for split, path, cells, labels in split_columns(config, config.image_column, config.label_column):
            images = []
            for row, cell in enumerate(cells):
                data = cell.get("bytes") if isinstance(cell, dict) else cell
                if not isinstance(data, (bytes, bytearray)):
                    raise InputError(f"{path} row {row}: column {config.image_column!r} holds no image bytes "
                                     f"(found {type(data).__name__})")
                images.append(_open_image(io.BytesIO(data), f"{path} row {row}"))
            out[split] = (images, labels)
        return out


class TextTableConfig(FileSplitsConfig):
    source: Literal["text_table"] = "text_table"
    suffixes = TABLE_SUFFIXES
    text_column: str = "text"
    label_column: str = "label"


@register_data_source
class TextTable(DataSource):
    """CSV, TSV (tab-delimited, header row: GLUE), JSONL or Parquet files with a text column and a label column."""

    name = "text_table"
    family = "text"
    Config = TextTableConfig

    def train_labels(self, config):
        return _label_column(config)

    def load(self, config):
        out = {}
        for split, path, texts, labels in split_columns(config, config.text_column, config.label_column, text=True):
            for row, text in enumerate(texts):
                if not isinstance(text, str) or not text.strip():
                    raise InputError(f"{path} row {row}: column {config.text_column!r} is "
                                     + ("empty" if text is None or isinstance(text, str) else
                                        f"not text ({type(text).__name__} {text!r:.40})"))
            out[split] = (texts, labels)
        return out
