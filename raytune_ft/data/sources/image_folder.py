"""Image folders: one folder per split, one sub-folder of images per class."""
from __future__ import annotations

from typing import Literal

from raytune_ft.data import location
from raytune_ft.data.config import SPLITS, FileSplitsConfig
from raytune_ft.data.image_files import IMAGE_SUFFIXES, image_file, open_image
from raytune_ft.data.sources.base import DataSource, register_data_source
from raytune_ft.errors import InputError


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
        for split in SPLITS:
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
            yield [open_image(image_file(f), str(f)) for f in refs[start:start + chunk]]

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

