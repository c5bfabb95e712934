"""torchvision's classification data sets (CIFAR-10/100, MNIST, Flowers102, Food101 ...) from a local folder.

    data: {source: torchvision_dataset, name: CIFAR10, root: data/torchvision, validation_fraction: 0.1}

`download: true` fetches a set into `root` when it is not there, when the run prepares its data (never at
`validate`, never unless asked). The sets read here are those of `SETS`: each with how it takes its
split, where under `root` torchvision reads it, how its labels are listed without decoding an image,
and where its class names come from.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from raytune_ft.data import location
from raytune_ft.data.config import DataConfig
from raytune_ft.data.image_files import open_image
from raytune_ft.data.sources.base import DataSource, register_data_source
from raytune_ft.errors import InputError


@dataclass(frozen=True)
class TorchvisionSet:
    splits: dict[str, Any]  # role -> its split argument: train=True / False, or split="train" / "val" / ...
    folder: str  # where under root torchvision reads the set ("": root itself)
    labels: str  # "targets" / "labels": the public list of every sample's class index; "loader": the set
    # takes a loader, given one that returns the image's path: labels listed, no image opened (then decoded here)
    classes: str = "classes"  # "classes": the set's own list, in label order; "digits": 0..9 (SVHN names none)

    def argument(self, role: str) -> dict[str, Any]:
        value = self.splits[role]
        return {"train": value} if isinstance(value, bool) else {"split": value}


_TRAIN_TEST = {"train": True, "test": False}
_SPLITS = {"train": "train", "test": "test"}
_WITH_VAL = {"train": "train", "validation": "val", "test": "test"}
SETS = {
    "CIFAR10": TorchvisionSet(_TRAIN_TEST, "cifar-10-batches-py", "targets"),
    "CIFAR100": TorchvisionSet(_TRAIN_TEST, "cifar-100-python", "targets"),
    "MNIST": TorchvisionSet(_TRAIN_TEST, "MNIST", "targets"),
    "FashionMNIST": TorchvisionSet(_TRAIN_TEST, "FashionMNIST", "targets"),
    "KMNIST": TorchvisionSet(_TRAIN_TEST, "KMNIST", "targets"),
    "SVHN": TorchvisionSet(_SPLITS, "", "labels", classes="digits"),
    "STL10": TorchvisionSet(_SPLITS, "stl10_binary", "labels"),
    "Flowers102": TorchvisionSet(_WITH_VAL, "flowers-102", "loader"),
    "Food101": TorchvisionSet(_SPLITS, "food-101", "loader"),
    "DTD": TorchvisionSet(_WITH_VAL, "dtd", "loader"),
    "FGVCAircraft": TorchvisionSet(_WITH_VAL, "fgvc-aircraft-2013b", "loader"),
    "StanfordCars": TorchvisionSet(_SPLITS, "stanford_cars", "loader"),
    "Country211": TorchvisionSet({"train": "train", "validation": "valid", "test": "test"}, "country211", "targets"),
}


class TorchvisionDatasetConfig(DataConfig):
    source: Literal["torchvision_dataset"] = "torchvision_dataset"
    name: Literal[tuple(SETS)] = Field(description="the torchvision.datasets class; sets with a validation split "
                                       "(Flowers102, DTD, FGVCAircraft, Country211) use it, the others hold one "
                                       "out of train: data.validation_fraction")
    root: Path = Field(description="torchvision's `root`: the folder that holds the set's own folder "
                       "(for CIFAR10: ROOT/cifar-10-batches-py)")
    download: bool = Field(False, description="fetch the set into root when it is not there (needs the network), "
                           "when the run prepares the data; never at validate")
    use_test: bool = Field(True, description="prepare the set's test split (scored by search.confirm and each "
                           "strategy's best trial); false: leave it out (search.confirm then holds one out of train)")

    @model_validator(mode="after")
    def _validation(self):
        if "validation" not in SETS[self.name].splits and self.validation_fraction is None:
            raise ValueError(f"data.validation_fraction: {self.name} has no validation split (torchvision gives it "
                             f"{' and '.join(SETS[self.name].splits)}): set data.validation_fraction (e.g. 0.1) to "
                             "hold out part of train")
        return self

    def locations(self) -> dict[str, location.Location]:
        return {"root": self.root / SETS[self.name].folder}

    def location_problems(self) -> list[tuple[str, str]]:
        """The set's files are in root (torchvision is asked, nothing is downloaded); with download: true
        missing files are not a problem: the run fetches them."""
        try:
            _open(self.name, self.root, "train")
        except InputError as e:
            return [] if self.download else [("root", f"{e}: set data.download: true to fetch it when this machine "
                                              "is online, or give data.root the folder that holds it")]
        return []


@register_data_source
class TorchvisionDataset(DataSource):
    """A torchvision classification set from a local folder: its splits, labels and class names as torchvision
    gives them."""

    name = "torchvision_dataset"
    family = "vision"
    Config = TorchvisionDatasetConfig

    def roles(self, config) -> list[str]:
        """The set's splits this job reads: validation where the set has one and no validation_fraction."""
        return [role for role in SETS[config.name].splits
                if not (role == "validation" and config.validation_fraction is not None)
                and not (role == "test" and not config.use_test)]

    def declared_classes(self, config, task=None):
        spec = SETS[config.name]
        if spec.classes == "digits":
            return [str(d) for d in range(10)]
        found = getattr(_open(config.name, config.root, "train", config.download), "classes", None)
        return list(found) if found else None  # STL10 without its class_names.txt: the indices

    def train_labels(self, config):
        try:
            return self._labels(config, "train", download=False)
        except InputError:
            return None  # not there yet (download: true), or location_problems said so

    def _labels(self, config, role: str, download: bool) -> list:
        spec, ds = SETS[config.name], _open(config.name, config.root, role, download)
        if spec.labels == "loader":  # the loader returns the path: no image is opened
            labels = [ds[i][1] for i in range(len(ds))]
        else:
            found = getattr(ds, spec.labels)
            labels = found.tolist() if hasattr(found, "tolist") else list(found)
        names = self.declared_classes(config)
        return [names[int(y)] if names else int(y) for y in labels]

    def index(self, config):
        """(split, row) of every sample with its class name; no image is decoded."""
        out = {}
        for role in self.roles(config):
            labels = self._labels(config, role, config.download)
            out[role] = ([(role, row) for row in range(len(labels))], labels)
        return out

    def decode(self, config, refs, chunk):
        loader = SETS[config.name].labels == "loader"
        for start in range(0, len(refs), chunk):
            images = []
            for role, row in refs[start:start + chunk]:
                sample = _open(config.name, config.root, role, config.download)[row][0]
                images.append(open_image(sample, str(sample)) if loader else sample.convert("RGB"))
            yield images

    def locate(self, config, split, row):
        return f"{config.name} {split} split in {config.root}, sample {row}"

    def describe(self, config, split):
        return f"{config.name} ({split} split, torchvision, in {config.root})"


def _open(name: str, root: Path, role: str, download: bool = False):
    """The torchvision set's split (images as PIL images; a "loader" set's as their paths), opened once per
    process; fetched into root first when it is not there and `download`. InputError saying where
    torchvision looked when it cannot be."""
    try:
        return _opened(name, root, role, False)
    except InputError:
        if not download:
            raise
    _construct(name, root, role, True)  # torchvision fetches the set into root
    return _opened(name, root, role, False)


def _construct(name: str, root: Path, role: str, download: bool):
    import torchvision

    spec = SETS[name]
    options = {"loader": str} if spec.labels == "loader" else {}
    where = root / spec.folder
    if not download and not location.path_exists(root):
        raise InputError(f"{root} does not exist (torchvision reads {name} from {where})")
    try:
        return getattr(torchvision.datasets, name)(str(root), download=download, **spec.argument(role), **options)
    except Exception as e:  # RuntimeError "Dataset not found", a missing metadata file, no network ...
        reason = " ".join(str(e).split())[:300] or type(e).__name__
        raise InputError(f"{where}: torchvision cannot read {name} there ({reason})") from None


_opened = functools.lru_cache(maxsize=8)(_construct)  # one object a split and process; never downloads
