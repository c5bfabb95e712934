"""More bad input (issue 11, items 9-17): table formats, model limits, labels, resources, resume.

Through the CLI where the item is about what the user sees (exit code 2, the field or file and row
named, no traceback, no run folder left); nothing here starts Ray: `init_ray` is replaced by a
function that fails the test, so a job that is not refused before Ray shows up as a failure.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from raytune_ft.cli import app
from raytune_ft.data import load_meta, prepare_data
from raytune_ft.spec import InputError, parse_job
from tests.conftest import sentiment_rows, text_spec, vision_spec
from tests.test_bad_input import _csvs, _png, invoke


@pytest.fixture(autouse=True)
def no_ray(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("Ray would start: the job was not refused before Ray")
    monkeypatch.setattr("raytune_ft.sweep.run.init_ray", refuse)


def _table(path: Path, rows, sep: str = ",") -> Path:
    path.write_text(f"text{sep}label\n" + "".join(f"{t}{sep}{lab}\n" for t, lab in rows))
    return path


def _refused_run(tmp_path, spec, *expected):
    result = invoke(tmp_path, spec, "run")
    assert result.exit_code == 2, result.output
    assert "bad input, nothing was trained: " in result.output
    for text in expected:
        assert text in result.output, result.output
    assert not (tmp_path / "run").exists(), "a half-made run folder was left"
    return result


def _refused_validate(tmp_path, spec, *expected):
    result = invoke(tmp_path, spec, "validate")
    assert result.exit_code == 2, result.output
    assert "1 problem(s)" in result.output, result.output
    for text in expected:
        assert text in result.output, result.output
    return result


# --------------------------------------------------------------------------- 9: table formats

def test_tsv_is_read_as_glue_writes_it(tiny_bert, tmp_path):
    """Tab-delimited, a header row, no quoting: a quote inside a text is part of the text."""
    rows = sentiment_rows(8, 0)
    rows[0] = ('he said "great film', "pos")
    train = _table(tmp_path / "train.tsv", rows, "\t")
    validation = _table(tmp_path / "dev.tsv", sentiment_rows(4, 1), "\t")
    spec = text_spec(tiny_bert, {"train": train, "validation": validation})
    assert invoke(tmp_path, spec, "validate").exit_code == 0
    meta = prepare_data(parse_job(spec), tmp_path / "data")
    assert meta["classes"] == ["neg", "pos"]
    assert {s: v["samples"] for s, v in meta["splits"].items()} == {"train": 8, "validation": 4}


def test_a_ragged_tsv_line_is_named(tiny_bert, tmp_path):
    train = tmp_path / "train.tsv"
    train.write_text("text\tlabel\ngood film\tpos\nbad\tfilm\tneg\n")
    spec = text_spec(tiny_bert, {"train": train, "validation": _csvs(tmp_path)["validation"]})
    _refused_validate(tmp_path, spec, "data.train:", "train.tsv line 3: 3 fields where the header has 2")


def test_a_format_the_source_cannot_read_is_refused_by_validate(tiny_bert, tmp_path):
    (tmp_path / "train.xlsx").write_bytes(b"PK\x03\x04")
    spec = text_spec(tiny_bert, {"train": tmp_path / "train.xlsx", "validation": _csvs(tmp_path)["validation"]})
    _refused_validate(tmp_path, spec, "data.train:", "train.xlsx: text_table cannot read '.xlsx'; give a "
                      ".csv / .tsv / .jsonl / .json / .parquet file")


# --------------------------------------------------------------------------- 10: the model's limits

def test_max_length_beyond_the_models_positions_is_refused_before_ray(tiny_bert, tmp_path):
    spec = text_spec(tiny_bert, _csvs(tmp_path))
    spec["model"]["max_length"] = 100  # the tiny BERT has 64 positions
    _refused_run(tmp_path, spec, "model.max_length: 100 tokens, but model", "has 64 positions",
                 "set model.max_length to 64 or less")


def test_virtual_tokens_beyond_the_models_positions_are_refused_before_ray(tiny_bert, tmp_path):
    spec = text_spec(tiny_bert, _csvs(tmp_path))
    spec["model"]["max_length"] = 32
    spec["strategies"].append({"name": "prompt_tuning", "num_virtual_tokens": {"choice": [4, 40]}})
    _refused_run(tmp_path, spec, "strategies[3].num_virtual_tokens: up to 40 virtual tokens + model.max_length 32 "
                 "= 72 positions", "keep num_virtual_tokens at most 32")


def test_a_forward_pass_in_preflight_catches_what_the_config_does_not_say(tiny_bert, tmp_path):
    """A tokenizer with words the model has no embedding for: every trial would fail on its first batch."""
    from transformers import BertTokenizerFast

    model = tmp_path / "model"
    shutil.copytree(tiny_bert, model)
    vocab = (tiny_bert / "vocab.txt").read_text().split() + ["zebra", "yak"]
    (model / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(model)
    csvs = _csvs(tmp_path)
    _table(csvs["train"], [("zebra yak good film", "pos"), ("zebra bad film", "neg")] * 4)
    _refused_run(tmp_path, text_spec(model, csvs), "strategies[0] (full) on model",
                 "a forward pass on 2 samples of the prepared train split fails (IndexError: index out of range")


def test_a_shape_error_in_a_trial_is_not_retried(tiny_bert, tmp_path):
    """Past pre-flight (train_trial called directly), a shape RuntimeError is marked as one that would repeat."""
    from raytune_ft.train.failures import FAILED_FILE
    from raytune_ft.train.loop import train_trial
    from raytune_ft.train.config import trial_config

    csvs = _csvs(tmp_path)
    rows = csvs["train"].read_text().splitlines()  # texts of ~90 tokens: more than the model's 64 positions
    csvs["train"].write_text("\n".join([rows[0]] + [f"{(t + ' ') * 15},{lab}" for t, lab in
                                                      (r.rsplit(",", 1) for r in rows[1:])]) + "\n")
    spec = text_spec(tiny_bert, csvs)
    spec["model"]["max_length"] = 100
    job = parse_job(spec)
    prepare_data(job, tmp_path / "data")
    hp = {"lr": 1e-3, "weight_decay": 0.0, "batch_size": 4, "warmup_ratio": 0.0, "label_smoothing": 0.0}
    config = trial_config(job, tmp_path / "data", tmp_path / "trial", {"name": "full"}, hp)
    with pytest.raises(RuntimeError, match="must match") as first:
        train_trial(config, report=lambda m: None)
    assert json.loads((tmp_path / "trial" / FAILED_FILE).read_text())["type"] == "RuntimeError"
    with pytest.raises(RuntimeError, match="raised again at once"):  # a restarted worker group: no second epoch
        train_trial(config, report=lambda m: None)
    from raytune_ft.train.failures import would_repeat

    assert would_repeat(first.value) and not would_repeat(RuntimeError("NCCL communicator was aborted on rank 1"))


# --------------------------------------------------------------------------- 11, 13: names and resources

def test_run_refuses_a_name_too_long_for_a_folder(tmp_path, resnet_weights):
    result = invoke(tmp_path, vision_spec(resnet_weights, name="x" * 5000), "run")
    assert result.exit_code == 2 and "name: 5,000 characters; at most 100" in result.output
    assert not (tmp_path / "run").exists()


def test_a_trial_this_machine_cannot_hold_is_refused_before_ray(tmp_path, resnet_weights, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default run folder: runs/<name>-<time>
    spec = vision_spec(resnet_weights, resources={"cpus_per_worker": os.cpu_count() + 1, "max_concurrent_trials": 1})
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(spec, default=str))))
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, result.output
    assert f"resources: a trial needs {os.cpu_count() + 1} CPU(s) but this machine (the local Ray cluster) has " \
           f"{os.cpu_count()} CPU(s)" in result.output, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists(), "a half-made run folder was left"


def test_a_cluster_that_cannot_hold_a_trial(resnet_weights):
    from raytune_ft.sweep.ray_setup import DRIVER_RESOURCE, concurrency

    job = parse_job(vision_spec(resnet_weights, resources={"gpus_per_worker": 1}))
    with pytest.raises(InputError, match=r"a trial needs 1 CPU\(s\) and 1 GPU\(s\) but the cluster has 4 CPU\(s\), "
                                         r"0 GPU\(s\).*set resources.max_concurrent_trials"):
        concurrency(job, {"CPU": 4.0, DRIVER_RESOURCE: 100})
    autoscaling = parse_job(vision_spec(resnet_weights, resources={"gpus_per_worker": 1, "max_concurrent_trials": 2}))
    assert concurrency(autoscaling, {"CPU": 4.0, DRIVER_RESOURCE: 100}) == 2  # GPU workers start on demand
    with pytest.raises(InputError, match="this machine"):  # a local cluster never grows
        concurrency(autoscaling, {"CPU": 4.0, DRIVER_RESOURCE: 100}, local=True)


# --------------------------------------------------------------------------- 14, 15: labels and classes

def _text_parquet(path: Path, labels) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [t for t, _ in sentiment_rows(len(labels), 0)]
    pq.write_table(pa.table({"text": texts, "label": labels}), path)
    return path


def test_a_nan_label_names_its_row(tiny_bert, tmp_path):
    train = _text_parquet(tmp_path / "train.parquet", [0.0, 1.0, float("nan"), 1.0])
    spec = text_spec(tiny_bert, {"train": train, "validation": _text_parquet(tmp_path / "v.parquet", [0.0, 1.0])})
    _refused_validate(tmp_path, spec, "data.train:", "train.parquet row 2 (train split): the label is missing (NaN)")


def test_whole_float_labels_are_the_integer_classes(tiny_bert, tmp_path):
    train = _text_parquet(tmp_path / "train.parquet", [0.0, 1.0, 1.0, 0.0])
    validation = _text_parquet(tmp_path / "v.parquet", [1, 0])
    csv = _table(tmp_path / "test.csv", [("good film", "1.0"), ("bad film", "0")])
    meta = prepare_data(parse_job(text_spec(tiny_bert, {"train": train, "validation": validation, "test": csv})),
                        tmp_path / "data")
    assert meta["classes"] == ["0", "1"]
    assert [meta["splits"][s]["class_counts"] for s in ("train", "validation", "test")] == [[2, 2], [1, 1], [1, 1]]


def test_a_fractional_label_names_its_row(tiny_bert, tmp_path):
    csvs = _csvs(tmp_path)
    _table(csvs["train"], [("good film", "1"), ("bad film", "0")] * 3)
    _table(csvs["validation"], [("good film", "1"), ("so so film", "1.5")])
    _refused_run(tmp_path, text_spec(tiny_bert, csvs),
                 "validation.csv row 1 (validation split): label 1.5 is not a class: a class label is a name or "
                 "a whole number")


def test_one_class_is_refused_by_validate_and_run_leaves_no_folder(tiny_bert, tmp_path, monkeypatch):
    csvs = _csvs(tmp_path)
    _table(csvs["train"], [("good film", "pos"), ("nice film", "pos")])
    spec = text_spec(tiny_bert, csvs)
    _refused_validate(tmp_path, spec, "data.train:", "train.csv (train split): found 1 class(es) ['pos']; "
                      "a classifier needs at least 2")
    monkeypatch.chdir(tmp_path)  # the default run folder: runs/<name>-<time>
    result = CliRunner().invoke(app, ["run", str(tmp_path / "job.yaml")])
    assert result.exit_code == 2 and "found 1 class(es) ['pos']" in result.output
    assert not (tmp_path / "runs").exists(), "a half-made run folder was left"


def test_one_class_folder_is_refused_by_validate(resnet_weights, tmp_path):
    (tmp_path / "train" / "red").mkdir(parents=True)
    (tmp_path / "train" / "red" / "0.png").write_bytes(_png())
    spec = vision_spec(resnet_weights, data={"source": "image_folder", "train": str(tmp_path / "train"),
                                             "validation_fraction": 0.5})
    _refused_validate(tmp_path, spec, "found 1 class(es) ['red']")


# --------------------------------------------------------------------------- 16: resume from anywhere

class DriverDied(Exception):
    pass


def test_resume_works_from_another_folder(tiny_bert, tmp_path, monkeypatch):
    """`run` from the project folder (relative data and model paths) dies after preparing the data;
    `resume` from elsewhere finds the spec valid, also once the raw data are gone."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (project / "data").mkdir(parents=True)
    shutil.copytree(tiny_bert, project / "model")
    csvs = _csvs(project / "data")
    spec = text_spec(Path("./model"), {k: v.relative_to(project) for k, v in csvs.items()})
    (project / "job.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(spec, default=str))))
    calls = []

    def sweep(job, run_dir, *, resume, **kwargs):
        calls.append((job, resume))
        if not resume:
            prepare_data(job, run_dir.resolve() / "data")
            raise DriverDied()
        return [{"status": "completed"}]
    monkeypatch.setattr("raytune_ft.sweep.run.run_sweep", sweep)
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["run", "job.yaml", "--run-dir", "runs/r"])
    assert isinstance(result.exception, DriverDied) and load_meta(project / "runs" / "r" / "data")["classes"]
    monkeypatch.chdir(elsewhere)
    for _ in ("with the raw data", "without them"):
        result = CliRunner().invoke(app, ["resume", str(project / "runs" / "r")])
        assert result.exit_code == 0, result.output
        assert calls[-1][1] is True and calls[-1][0].data.train.is_absolute()
        shutil.rmtree(project / "data")  # prepared: resume reads RUN/data, not these
        (project / "data").mkdir()


# --------------------------------------------------------------------------- 17: a stratified hold-out

@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_validation_fraction_keeps_class_shares(tiny_bert, tmp_path, seed):
    import random

    rows = [("good film", "a")] * 40 + [("bad film", "b")] * 10
    random.Random(seed).shuffle(rows)
    train = _table(tmp_path / "train.csv", rows)
    spec = text_spec(tiny_bert, {"train": train})
    spec["data"].update(validation_fraction=0.2, seed=seed)
    meta = prepare_data(parse_job(spec), tmp_path / "data")
    assert meta["splits"]["validation"]["class_counts"] == [8, 2]
    assert meta["splits"]["train"]["class_counts"] == [32, 8]
    # a class of one sample cannot be split both ways: a plain random split, of the same size
    _table(train, rows + [("odd film", "c")])
    meta = prepare_data(parse_job(spec), tmp_path / "data2")
    assert meta["splits"]["validation"]["samples"] == 10 and meta["splits"]["train"]["samples"] == 41
