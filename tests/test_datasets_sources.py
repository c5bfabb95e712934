"""Data where teams keep it: `hf_dataset` (a `datasets` folder save_to_disk wrote, a folder of data files)
and `torchvision_dataset` (a CIFAR-10-format folder, a Food101-format folder), read back through
`validate` and `prepare`; bad input (a column, a split, the files) refused at validate, exit 2, naming the
field, before Ray starts. One sweep on a local Ray cluster runs a job of each (tests marked ray).
"""
from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from raytune_ft.cli import app
from raytune_ft.data import load_meta, load_split
from tests.conftest import ROOT, sentiment_rows

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# --------------------------------------------------------------------------- data written here

def save_texts(folder: Path, splits=(("train", 32, 0), ("validation", 16, 1), ("test", 16, 2)),
               names=("pos", "neg"), unlabelled_test=False, text="text") -> Path:
    """A DatasetDict of texts whose label is a ClassLabel, saved with save_to_disk. names: what the positive and
    the negative class are called (by default not in sorted order)."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({text: Value("string"), "label": ClassLabel(names=list(names)), "topic": Value("string")})
    out = {}
    for split, n, seed in splits:
        rows = sentiment_rows(n, seed)
        labels = [-1 if unlabelled_test and split == "test" else ("pos", "neg").index(label) for _, label in rows]
        out[split] = Dataset.from_dict({text: [t for t, _ in rows], "label": labels,
                                        "topic": ["film" if i % 3 else "book" for i in range(n)]}, features=features)
    DatasetDict(out).save_to_disk(str(folder))
    return folder


def save_images(folder: Path, splits=(("train", 12), ("dev", 6))) -> Path:
    """A DatasetDict of small colour images (an Image feature, ClassLabel red / blue), splits train and dev."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Image
    from PIL import Image as PILImage

    features = Features({"image": Image(), "label": ClassLabel(names=["red", "blue"])})
    colours = [(220, 20, 20), (20, 20, 220)]
    out = {}
    for split, n in splits:
        images = [PILImage.new("RGB" if i % 4 else "L", (10, 8), colours[i % 2] if i % 4 else 128) for i in range(n)]
        out[split] = Dataset.from_dict({"image": images, "label": [i % 2 for i in range(n)]}, features=features)
    DatasetDict(out).save_to_disk(str(folder))
    return folder


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def cifar_root(tmp_path, monkeypatch) -> Path:
    """A CIFAR-10-format folder (cifar-10-batches-py: data_batch_1..5, test_batch, batches.meta) of 4 images a
    batch. torchvision checks each file's md5 against CIFAR-10's own: here, against these files'."""
    import torchvision

    folder = tmp_path / "torchvision" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 1]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": CIFAR_CLASSES}))
    cifar = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cifar, "train_list", [[n, _md5(folder / n)] for n, _ in cifar.train_list])
    monkeypatch.setattr(cifar, "test_list", [[n, _md5(folder / n)] for n, _ in cifar.test_list])
    monkeypatch.setattr(cifar, "meta", {**cifar.meta, "md5": _md5(folder / "batches.meta")})
    return folder.parent


def text_job(model: Path, path, **data) -> dict:
    return {"name": "hf-text", "model": {"source": "transformers", "name": str(model), "max_length": 16},
            "data": {"source": "hf_dataset", "path": str(path), "text_column": "text", **data},
            "strategies": [{"name": "full"}, {"name": "feature_extraction"}], "training": {"epochs": 1},
            "search": {"num_samples": 1, "scheduler": {"name": "none"}, "hparams": {"lr": 3e-3, "batch_size": 16}}}


def vision_job(weights: Path, **data) -> dict:
    return {"name": "tv-cifar", "model": {"source": "torchvision", "name": "resnet18", "weights": str(weights),
                                          "image_size": 16},
            "data": {"source": "torchvision_dataset", "name": "CIFAR10", "validation_fraction": 0.25, **data},
            "strategies": [{"name": "full"}, {"name": "feature_extraction"}], "training": {"epochs": 1},
            "search": {"num_samples": 1, "scheduler": {"name": "none"}, "hparams": {"lr": 1e-3, "batch_size": 8}}}


def cli(tmp_path: Path, spec: dict, command: str, *extra: str):
    """`raytune-ft <command> job.yaml` in-process: the result, checked for the basics (no traceback, no Ray)."""
    import ray

    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(app, [command, str(path), *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and not ray.is_initialized()
    return result


def prepared(tmp_path: Path, spec: dict) -> dict:
    out = tmp_path / "prepared"
    result = cli(tmp_path, spec, "prepare", "--output", str(out))
    assert result.exit_code == 0, result.output
    return load_meta(out)


# --------------------------------------------------------------------------- hf_dataset

def test_a_saved_text_dataset_validates_and_prepares_with_its_classlabel_order(tiny_bert, tmp_path):
    spec = text_job(tiny_bert, save_texts(tmp_path / "sst"))
    result = cli(tmp_path, spec, "validate")
    assert result.exit_code == 0 and "data hf_dataset" in result.output, result.output
    meta = prepared(tmp_path, spec)
    assert meta["family"] == "text" and meta["classes"] == ["pos", "neg"]  # the ClassLabel's order, not sorted
    assert {s: v["samples"] for s, v in meta["splits"].items()} == {"train": 32, "validation": 16, "test": 16}
    assert load_split(tmp_path / "prepared", "train")["input_ids"].shape == (32, 16)


def test_named_splits_an_image_column_and_a_hold_out(resnet_weights, tmp_path):
    folder = save_images(tmp_path / "colours")
    spec = vision_job(resnet_weights)
    spec["data"] = {"source": "hf_dataset", "path": str(folder), "image_column": "image",
                    "split_names": {"validation": "dev"}}
    meta = prepared(tmp_path, spec)
    assert meta["family"] == "vision" and meta["classes"] == ["red", "blue"]
    assert {s: v["samples"] for s, v in meta["splits"].items()} == {"train": 12, "validation": 6}
    pixels = load_split(tmp_path / "prepared", "validation")["pixel_values"]
    assert pixels.shape == (6, 3, 18, 18) and int(pixels[1, 2].float().mean()) > 150  # row 1: blue, as RGB
    spec["data"] = {"source": "hf_dataset", "path": str(folder), "image_column": "image",
                    "split_names": {"validation": None}, "validation_fraction": 0.25, "max_train_samples": 5}
    meta = prepared(tmp_path / "again", spec)
    assert {s: v["samples"] for s, v in meta["splits"].items()} == {"train": 5, "validation": 3}


def test_a_folder_of_data_files_and_multi_task_columns(tiny_bert, tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")  # where datasets converts them
    files = tmp_path / "files"
    files.mkdir()
    for split, n, seed in (("train", 24, 0), ("dev", 8, 1)):  # dev.csv: datasets names it validation
        rows = sentiment_rows(n, seed)
        (files / f"{split}.csv").write_text("text,label,topic\n" + "".join(
            f"{t},{lab},{'film' if i % 2 else 'book'}\n" for i, (t, lab) in enumerate(rows)))
    meta = prepared(tmp_path, text_job(tiny_bert, files, label_columns=["label", "topic"]))
    assert meta["tasks"] == {"label": ["neg", "pos"], "topic": ["book", "film"]}  # plain strings: sorted
    assert {s: v["samples"] for s, v in meta["splits"].items()} == {"train": 24, "validation": 8}


# --------------------------------------------------------------------------- torchvision_dataset

def test_a_cifar10_folder_validates_and_prepares(resnet_weights, cifar_root, tmp_path):
    spec = vision_job(resnet_weights, root=str(cifar_root))
    result = cli(tmp_path, spec, "validate")
    assert result.exit_code == 0 and "data torchvision_dataset" in result.output, result.output
    meta = prepared(tmp_path, spec)
    assert meta["classes"] == CIFAR_CLASSES  # batches.meta's label names, in label order
    assert {s: v["samples"] for s, v in meta["splits"].items()} == {"train": 15, "validation": 5, "test": 4}
    assert meta["splits"]["test"]["class_counts"][:4] == [1, 2, 1, 0]
    assert load_split(tmp_path / "prepared", "train")["pixel_values"].shape == (15, 3, 18, 18)


def test_a_set_of_image_files_is_listed_without_opening_an_image(resnet_weights, tmp_path):
    """Food101 keeps its labels private: given a loader that returns the path, torchvision lists them with
    no image opened; the images are opened (and named when broken) when the split is prepared."""
    from PIL import Image

    base = tmp_path / "tv" / "food-101"
    meta = {"train": {}, "test": {}}
    for c, cls in enumerate(("ramen", "apple_pie")):
        (base / "images" / cls).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (12, 10), (40 * c, 90, 200)).save(base / "images" / cls / f"{i}.jpg")
            meta["train" if i < 4 else "test"].setdefault(cls, []).append(f"{cls}/{i}")
    (base / "meta").mkdir()
    for split, listed in meta.items():
        (base / "meta" / f"{split}.json").write_text(json.dumps(listed))
    spec = vision_job(resnet_weights, name="Food101", root=str(tmp_path / "tv"))
    done = prepared(tmp_path, spec)
    assert done["classes"] == ["apple_pie", "ramen"]
    assert {s: v["samples"] for s, v in done["splits"].items()} == {"train": 6, "validation": 2, "test": 4}
    (base / "images" / "ramen" / "5.jpg").write_bytes(b"not a jpeg")
    result = cli(tmp_path / "b", spec, "prepare", "--output", str(tmp_path / "b" / "out"))
    assert result.exit_code == 2 and "ramen/5.jpg: not a readable image" in result.output, result.output


# --------------------------------------------------------------------------- bad input: exit 2 at validate

def _refused(tmp_path, spec, field: str, *texts: str) -> None:
    result = cli(tmp_path, spec, "validate")
    assert result.exit_code == 2, result.output
    assert f"{field}:" in result.output, result.output
    for text in texts:
        assert text in " ".join(result.output.split()), result.output


def test_a_column_the_dataset_lacks_is_named(tiny_bert, tmp_path):
    folder = save_texts(tmp_path / "sst")
    _refused(tmp_path, text_job(tiny_bert, folder, text_column="sentence"), "data.text_column",
             "split 'train' has no column 'sentence' (its columns: 'text', 'label', 'topic')")
    _refused(tmp_path, text_job(tiny_bert, folder, label_column="stars"), "data.label_column", "no column 'stars'")
    _refused(tmp_path, text_job(tiny_bert, folder, text_column="label"), "data.text_column",
             "column 'label' holds ClassLabel", "not texts")


def test_a_split_the_dataset_lacks_is_named(tiny_bert, tmp_path):
    folder = save_texts(tmp_path / "sst")
    _refused(tmp_path, text_job(tiny_bert, folder, split_names={"validation": "dev"}), "data.split_names.validation",
             "has no split 'dev' (its splits: 'train', 'validation', 'test')")
    folder = save_texts(tmp_path / "imdb", splits=(("train", 16, 0), ("test", 8, 1)))
    _refused(tmp_path, text_job(tiny_bert, folder), "data.validation_fraction",
             "has no 'validation' split (its splits: 'train', 'test'): set data.validation_fraction")
    assert cli(tmp_path, text_job(tiny_bert, folder, validation_fraction=0.25), "validate").exit_code == 0


def test_an_unlabelled_test_split_is_named_and_can_be_left_out(tiny_bert, tmp_path):
    folder = save_texts(tmp_path / "glue", unlabelled_test=True)
    _refused(tmp_path, text_job(tiny_bert, folder), "data.split_names.test",
             "split 'test' row 0: column 'label' has no label (-1", "data.split_names: {test: null}")
    meta = prepared(tmp_path, text_job(tiny_bert, folder, split_names={"test": None}))
    assert set(meta["splits"]) == {"train", "validation"}


def test_a_hub_name_offline_and_a_missing_folder(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _refused(tmp_path, text_job(tiny_bert, "stanfordnlp/sst2"), "data.path",
             "stanfordnlp/sst2 is not a folder here, and the hub dataset 'stanfordnlp/sst2' could not be read",
             "this machine is offline")
    _refused(tmp_path, text_job(tiny_bert, tmp_path / "nowhere"), "data.path", "nowhere does not exist")
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    (tmp_path / "scripted").mkdir()
    (tmp_path / "scripted" / "scripted.py").write_text("import datasets\n")
    _refused(tmp_path, text_job(tiny_bert, tmp_path / "scripted"), "data.path", "datasets cannot load it",
             "datasets no longer runs loading scripts: save it with save_to_disk")
    spec = text_job(tiny_bert, save_texts(tmp_path / "sst"))
    spec["data"]["image_column"] = "text"
    _refused(tmp_path, spec, "data", "give data.text_column (a column of texts) or data.image_column", "not both")


def test_missing_torchvision_files_say_where_and_that_download_would_fetch_them(resnet_weights, tmp_path):
    (tmp_path / "empty").mkdir()
    _refused(tmp_path, vision_job(resnet_weights, root=str(tmp_path / "empty")), "data.root",
             f"{tmp_path / 'empty' / 'cifar-10-batches-py'}: torchvision cannot read CIFAR10 there",
             "set data.download: true to fetch it when this machine is online")
    _refused(tmp_path, vision_job(resnet_weights, root=str(tmp_path / "none")), "data.root",
             f"{tmp_path / 'none'} does not exist")
    spec = vision_job(resnet_weights, root=str(tmp_path / "empty"))
    del spec["data"]["validation_fraction"]
    _refused(tmp_path, spec, "data", "CIFAR10 has no validation split (torchvision gives it train and test)")
    ok = cli(tmp_path, vision_job(resnet_weights, root=str(tmp_path / "none"), download=True), "validate")
    assert ok.exit_code == 0, ok.output  # fetched when the run prepares its data, never by validate
    assert not (tmp_path / "none").exists()


def test_what_a_torchvision_set_cannot_take_is_refused(resnet_weights, tmp_path):
    from raytune_ft.spec import SpecError, parse_job

    for data, field, text in (
            ({"label_columns": ["a", "b"]}, "data", "torchvision_dataset has one label per sample"),
            ({"fisher_source": {"path": "x"}}, "data.fisher_source",
             "takes EWC's samples from a split of its own data: name one instead, e.g. {split: train}"),
            ({"name": "ImageNet"}, "data.name", "'CIFAR10', 'CIFAR100'")):
        with pytest.raises(SpecError) as e:
            parse_job(vision_job(resnet_weights, root=str(tmp_path), **data))
        assert text in dict(e.value.problems)[field], e.value.problems


def test_download_true_fetches_the_set_when_the_data_are_prepared(resnet_weights, cifar_root, tmp_path, monkeypatch):
    import torchvision

    fetched = []

    def download(dataset):  # what torchvision's download does, from a copy here (no network in tests)
        if not (Path(dataset.root) / "cifar-10-batches-py").exists():
            fetched.append(dataset.root)
            shutil.copytree(cifar_root / "cifar-10-batches-py", Path(dataset.root) / "cifar-10-batches-py")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", download)
    spec = vision_job(resnet_weights, root=str(tmp_path / "fresh"), download=True)
    assert cli(tmp_path, spec, "validate").exit_code == 0 and fetched == []
    assert prepared(tmp_path, spec)["splits"]["test"]["samples"] == 4
    assert fetched == [str(tmp_path / "fresh")]


def test_submit_ships_a_datasets_folder_and_no_hub_name(tiny_bert, tmp_path, monkeypatch):
    from raytune_ft.cluster import ship

    project = tmp_path / "project"
    save_texts(project / "data" / "sst")
    (project / "jobs").mkdir()
    monkeypatch.chdir(project)
    for path, shipped in (("data/sst", {"data/sst/dataset_dict.json", "data/sst/train/state.json"}),
                          ("stanfordnlp/sst2", set())):
        (project / "jobs" / "job.yaml").write_text(yaml.safe_dump(text_job(tiny_bert, path)))
        with ship.staged("jobs/job.yaml") as package:
            data = {f for f in package.files if not f.startswith(("raytune_ft/", "jobs/"))}
            assert shipped <= data and (data == set()) == (not shipped), data


# --------------------------------------------------------------------------- the shipped jobs

@pytest.mark.parametrize("name", ["cifar10_resnet.yaml", "text_bert_hf.yaml"])
def test_the_shipped_job_validates_where_its_data_are(name, tmp_path, cifar_root):
    """Copied beside data of its format (a CIFAR-10 folder, a saved datasets folder), the job validates."""
    spec = yaml.safe_load((ROOT / "jobs" / name).read_text())
    data = tmp_path / "data"
    if spec["data"]["source"] == "torchvision_dataset":
        shutil.copytree(cifar_root, data / "torchvision")
    else:
        save_texts(data / "sst2", names=("negative", "positive"), unlabelled_test=True, text="sentence")  # as SST-2
    assert spec["data"].get("root", spec["data"].get("path")).startswith("data/")
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "job.yaml")])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("name", ["cifar10_resnet.yaml", "text_bert_hf.yaml"])
def test_the_shipped_job_as_it_is(name):
    """Validated in place when its data are there (beside the job, or from the repository root)."""
    spec = yaml.safe_load((ROOT / "jobs" / name).read_text())
    where = spec["data"].get("root") or spec["data"]["path"]
    if not any((base / where).exists() for base in (ROOT, ROOT / "jobs")):
        pytest.skip(f"jobs/{name}: its data ({where}) are not in this checkout; the job's comment says how to "
                    "make them")
    result = CliRunner().invoke(app, ["validate", str(ROOT / "jobs" / name)])
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------- one sweep of each, on Ray

@pytest.mark.ray
def test_run_on_each_source(tiny_bert, resnet_weights, cifar_root, tmp_path):
    """`raytune-ft run` on a saved datasets folder of texts, then on a CIFAR-10 folder: one trial each."""
    import ray

    from raytune_ft.results.tables import read_table

    jobs = {"text": text_job(tiny_bert, save_texts(tmp_path / "sst")),
            "vision": vision_job(resnet_weights, root=str(cifar_root))}
    try:
        for family, spec in jobs.items():
            spec["strategies"] = spec["strategies"][:1]
            path = tmp_path / f"{family}.yaml"
            path.write_text(yaml.safe_dump(spec))
            result = CliRunner().invoke(app, ["run", str(path), "--run-dir", str(tmp_path / family)])
            assert result.exit_code == 0, result.output
            trials = read_table(tmp_path / family / "trials.parquet")
            assert len(trials) == 1 and trials[0]["status"] == "completed" and 0 <= trials[0]["score"] <= 1
            assert load_meta(tmp_path / family / "data")["family"] == family
    finally:
        ray.shutdown()
