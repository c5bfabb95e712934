"""Bad input, through the CLI: one clear message naming the field or file (and row), exit code 2,
no traceback, and nothing started: `validate` refuses the spec, `run` refuses the data before Ray.

Each case builds a small spec (and its files) in a temporary folder; `run` cases fail in
prepare_data, so none of them trains or starts Ray.
"""
from __future__ import annotations

import copy
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from raytune_ft.cli import app
from raytune_ft.spec import SpecError, parse_job
from tests.conftest import sentiment_rows, text_spec, vision_spec


def invoke(tmp_path: Path, spec, command: str):
    """Write the spec, run `raytune-ft <command>` in-process; return the result, checked for the basics."""
    import ray

    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(spec, default=str)), allow_unicode=True))
    args = [command, str(path)] + (["--run-dir", str(tmp_path / "run")] if command == "run" else [])
    result = CliRunner().invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert not ray.is_initialized(), "Ray was started for a job that had to be refused"
    return result


# --------------------------------------------------------------------------- inputs

def _png(color=(200, 0, 0)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (10, 12), color).save(buf, format="PNG")
    return buf.getvalue()


def _noise_png() -> bytes:
    """A PNG that does not compress to nothing (a cut keeps the header, loses the pixels)."""
    import numpy as np

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _csvs(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for split, n, seed in (("train", 8, 0), ("validation", 4, 1)):
        out[split] = tmp_path / f"{split}.csv"
        out[split].write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in sentiment_rows(n, seed)))
    return out


def _image_folder(tmp_path: Path) -> dict:
    for split in ("train", "validation"):
        for cls, color in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(2):
                (tmp_path / split / cls / f"{i}.png").write_bytes(_png(color))
    return {"source": "image_folder", "train": str(tmp_path / "train"), "validation": str(tmp_path / "validation")}


def _image_parquet(tmp_path: Path, validation_images=None) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for split in ("train", "validation"):
        images = validation_images if split == "validation" and validation_images else \
            [_png((i * 40, 0, 0)) for i in range(4)]
        pq.write_table(pa.table({"image": images, "label": ["a", "b"] * (len(images) // 2)}),
                       tmp_path / f"{split}.parquet")
    return {"source": "image_parquet", "train": str(tmp_path / "train.parquet"),
            "validation": str(tmp_path / "validation.parquet")}


def _truncated(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# --------------------------------------------------------------------------- the spec: `validate`

def _set(spec: dict, dotted: str, value) -> dict:
    *parents, last = dotted.split(".")
    node = spec
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    node[last] = value
    return spec


SPEC_CASES = {
    # case: (how the good vision spec is broken, what the message must say)
    "wrong type": (lambda s, t: _set(s, "training.epochs", "three"),
                   ["training.epochs: Input should be a valid integer", "got 'three'"]),
    "list where a mapping goes": (lambda s, t: _set(s, "model", ["resnet18"]),
                                  ["model: Input should be a valid dictionary", "got ['resnet18']"]),
    "mapping where a list goes": (lambda s, t: _set(s, "strategies", {"name": "full"}),
                                  ["strategies: Input should be a valid list"]),
    "null name": (lambda s, t: _set(s, "name", None), ["name: Input should be a valid string", "got None"]),
    "unknown key": (lambda s, t: _set(s, "training.epoch", 3),
                    ["training.epoch: unknown field: did you mean 'epochs'?"]),
    "unknown strategy knob": (lambda s, t: _set(s, "strategies", [{"name": "lora", "rank": 4}]),
                              ["strategies[0].rank: unknown field", "name, hparams, target_modules, r"]),
    "range min > max": (lambda s, t: _set(s, "search.hparams.weight_decay", {"uniform": [0.1, 0.01]}),
                        ["search.hparams.weight_decay: uniform needs low < high; got [0.1, 0.01]"]),
    "negative learning rate": (lambda s, t: _set(s, "strategies", [{"name": "full", "hparams": {"lr": -0.001}}]),
                               ["strategies[0].hparams.lr: must be > 0; got -0.001"]),
    "unknown strategy": (lambda s, t: _set(s, "strategies", [{"name": "lorra"}]),
                         ["strategies[0]: name 'lorra' is not known (did you mean 'lora'?)"]),
    "unknown peft method": (lambda s, t: _set(s, "strategies", [{"name": "peft", "method": "lokra"}]),
                            ["strategies[0].method: peft has no method 'lokra'", "lokr"]),
    "strategy not for the family": (lambda s, t: _set(s, "strategies", [{"name": "full"}, {"name": "prompt_tuning"}]),
                                    ["strategies[1]: 'prompt_tuning' applies to text models only"]),
    "missing weights file": (lambda s, t: _set(s, "model.weights", str(t / "missing.pt")),
                             ["model.weights: weights file", "missing.pt does not exist"]),
    "missing data file": (lambda s, t: _set(s, "data", {"source": "image_parquet", "train": str(t / "no.parquet"),
                                                        "validation_fraction": 0.2}),
                          ["data.train:", "no.parquet does not exist"]),
    "folder where a file goes": (lambda s, t: _set(s, "data", {"source": "image_parquet", "train": str(t),
                                                               "validation_fraction": 0.2}),
                                 ["data.train:", "is a folder; image_parquet reads one file per split"]),
    "repeated class": (lambda s, t: _set(s, "data.classes", ["0", "1", "1"]),
                       ["data.classes: '1' listed more than once"]),
    "fractional class": (lambda s, t: _set(s, "data.classes", ["1", "1.5"]),
                         ["data.classes: entry 1 ('1.5'): label 1.5 is not a class"]),
    "file format the source cannot read": (
        lambda s, t: _set(s, "data", {"source": "image_parquet", "train": _write(t / "train.csv", "image,label\n"),
                                      "validation_fraction": 0.2}),
        ["data.train:", "train.csv: image_parquet cannot read '.csv'; give a .parquet file"]),
    "name too long for a folder": (lambda s, t: _set(s, "name", "x" * 5000),
                                   ["name: 5,000 characters; at most 100"]),
    "digits held-out shares leave no train": (
        lambda s, t: _set(s, "data", {"source": "digits", "validation_fraction": 0.5, "test_fraction": 0.5}),
        ["data: data.validation_fraction 0.5 + data.test_fraction 0.5 = 1 leaves 0% of the digits to train on"]),
    "digits test share too small to stratify": (
        lambda s, t: _set(s, "data", {"source": "digits", "test_fraction": 0.001}),
        ["data: data.test_fraction 0.001 holds out 2 of the 1,797 digits", "at least 0.02 (or 0: no test split)"]),
    "a billion samples": (lambda s, t: _set(s, "search.num_samples", 1_000_000_000),
                          ["search.num_samples: Input should be less than or equal to 10000"]),
    "a hundred thousand workers": (lambda s, t: _set(s, "resources.workers_per_trial", 100_000),
                                   ["resources.workers_per_trial: Input should be less than or equal to 512"]),
}


@pytest.mark.parametrize("case", SPEC_CASES)
def test_bad_spec_is_refused_by_validate(case, tmp_path, resnet_weights):
    breaks, expected = SPEC_CASES[case]
    result = invoke(tmp_path, breaks(vision_spec(resnet_weights), tmp_path), "validate")
    assert result.exit_code == 2, result.output
    assert "1 problem(s)" in result.output, result.output
    for text in expected:
        assert text in result.output, result.output


def test_missing_model_folder_is_refused_by_validate(tmp_path, tiny_bert):
    result = invoke(tmp_path, text_spec(tmp_path / "no-model", _csvs(tmp_path)), "validate")
    assert result.exit_code == 2
    assert f"model.name: {tmp_path / 'no-model'} is not a Hugging Face model folder (no config.json" in result.output


def test_a_check_that_cannot_run_still_names_its_section(tmp_path):
    """A model path too long for the OS to look up makes the model check raise OSError, not a traceback."""
    result = invoke(tmp_path, text_spec(tmp_path / ("x" * 300), _csvs(tmp_path)), "validate")
    assert result.exit_code == 2
    assert "model: cannot be checked (OSError: [Errno 36] File name too long" in result.output


def test_run_refuses_a_bad_spec_before_anything(tmp_path, resnet_weights):
    spec = _set(vision_spec(resnet_weights), "search.hparams.lr", -1)
    result = invoke(tmp_path, spec, "run")
    assert result.exit_code == 2 and "search.hparams.lr: must be > 0" in result.output
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- the data: `run`

def _text(t: Path, bert, **data):
    """The text spec on fresh CSVs; a callable value gets the CSVs (to spoil one) and returns the path."""
    csvs = _csvs(t)
    spec = text_spec(bert, csvs)
    spec["data"].update({k: v(csvs) if callable(v) else v for k, v in data.items()})
    return spec


def _append(path: Path, data: bytes) -> Path:
    path.write_bytes(path.read_bytes() + data)
    return path


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _parquet_of(csv: Path) -> Path:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    pq.write_table(pacsv.read_csv(csv), csv.with_suffix(".parquet"))
    return csv.with_suffix(".parquet")


def _truncated_parquet(t: Path, weights):
    data = _image_parquet(t)
    _truncated(Path(data["train"]))
    return vision_spec(weights, data=data)


def _folder_with(t: Path, weights, relative: str, content: bytes):
    data = _image_folder(t)
    (t / relative).write_bytes(content)
    return vision_spec(weights, data=data)


def _folder_without(t: Path, weights, split: str):
    data = _image_folder(t)
    shutil.rmtree(t / split)
    (t / split).mkdir()
    return vision_spec(weights, data=data)


def _model_folder(bert: Path, t: Path, keep: list[str], extra: dict[str, str] = {}) -> Path:  # noqa: B006
    """A copy of the tiny BERT folder with only the files in `keep` (plus `extra`)."""
    (t / "model").mkdir()
    for name in keep:
        shutil.copy(bert / name, t / "model" / name)
    for name, text in extra.items():
        (t / "model" / name).write_text(text)
    return t / "model"


DATA_CASES = {
    # case: (spec built on tmp t with model m (tiny BERT or resnet weights), what the message must say)
    "missing column": ("text", lambda t, m: _text(t, m, text_column="review"),
                       ["train.csv: no column 'review'; it has 'text', 'label'"]),
    "label outside data.classes": ("text", lambda t, m: _text(t, m, classes=["pos", "meh"]),
                                   ["train.csv row 1 (train split): label 'neg' is not one of data.classes "
                                    "['pos', 'meh']"]),
    "validation label unseen in train": (
        "text", lambda t, m: _text(t, m, validation=_write(t / "v.csv", "text,label\ngood film,pos\nbad,meh\n")),
        ["v.csv row 1 (validation split): label 'meh' is not one of the classes found in train ['neg', 'pos']"]),
    "empty label": ("text", lambda t, m: _text(t, m, validation=_write(t / "v.csv", "text,label\ngood,pos\nbad,\n")),
                    ["v.csv row 1 (validation split): the label is empty"]),
    "empty split": ("text", lambda t, m: _text(t, m, test=_write(t / "test.csv", "text,label\n")),
                    ["test.csv (test split) has no samples"]),
    "empty file": ("text", lambda t, m: _text(t, m, test=_write(t / "test.csv", "")),
                   ["test.csv: no column 'text', 'label'; it has no columns"]),
    "one class in train": ("text", lambda t, m: _text(t, m, train=_write(t / "one.csv", "text,label\na,pos\nb,pos\n")),
                           ["one.csv (train split): found 1 class(es) ['pos']; a classifier needs at least 2"]),
    "non-UTF-8 CSV row": ("text", lambda t, m: _text(t, m, train=lambda c: str(_append(c["train"], b"caf\xe9 film,pos\n"))),
                          ["train.csv line 10: not UTF-8 text (byte 0xe9 at column 4)"]),
    "ragged CSV row": ("text", lambda t, m: _text(t, m, train=lambda c: str(_append(c["train"], b"a,b,c\n"))),
                       ["train.csv line 10: 3 fields where the header has 2"]),
    "malformed JSONL line": ("text", lambda t, m: _text(t, m, train=_write(
        t / "train.jsonl", '{"text": "good film", "label": "pos"}\n{"text": "bad", "label" "neg"}\n')),
        ["train.jsonl line 2: not valid JSON"]),
    "JSONL line not an object": ("text", lambda t, m: _text(t, m, train=_write(
        t / "train.jsonl", '{"text": "good film", "label": "pos"}\n["bad", "neg"]\n')),
        ["train.jsonl line 2: a JSON list where each line must be one object"]),
    "truncated text Parquet": ("text", lambda t, m: _text(t, m, train=lambda c: str(_truncated(_parquet_of(c["train"])))),
                               ["train.parquet: not a readable Parquet file"]),
    "model folder without tokenizer files": ("text", lambda t, m: text_spec(_model_folder(m, t, ["config.json"]), _csvs(t)),
                                             ["model.name", "its tokenizer turns every word of train into [UNK]"]),
    "model folder with a broken tokenizer": ("text", lambda t, m: text_spec(
        _model_folder(m, t, ["config.json"], {"tokenizer.json": "{not json"}), _csvs(t)),
        ["model.name", "cannot load its tokenizer"]),
    "unreadable image": ("vision", lambda t, m: _folder_with(t, m, "train/red/9.png", b"not an image"),
                         ["train/red/9.png: not a readable image"]),
    "truncated image file": ("vision", lambda t, m: _folder_with(t, m, "validation/blue/9.png",
                                                                 _noise_png()[:300]),
                             ["validation/blue/9.png: not a readable image"]),
    "truncated Parquet": ("vision", lambda t, m: _truncated_parquet(t, m), ["train.parquet: not a readable Parquet file"]),
    "undecodable image in a Parquet row": (
        "vision", lambda t, m: vision_spec(m, data=_image_parquet(t, [_png(), b"junk"])),
        ["validation.parquet row 1: not a readable image"]),
    "truncated image in a Parquet row": (
        "vision", lambda t, m: vision_spec(m, data=_image_parquet(t, [_png(), _noise_png()[:300]])),
        ["validation.parquet row 1: not a readable image"]),
    "non-image file in a class folder": ("vision", lambda t, m: _folder_with(t, m, "train/red/notes.txt", b"hi"),
                                         ["train/red/notes.txt: not an image file"]),
    "image outside a class folder": ("vision", lambda t, m: _folder_with(t, m, "train/stray.png", _png()),
                                     ["train/stray.png: an image outside any class folder"]),
    "empty image folder split": ("vision", lambda t, m: _folder_without(t, m, "validation"),
                                 ["validation (validation split: one sub-folder of images per class) has no samples"]),
}


@pytest.mark.parametrize("case", DATA_CASES)
def test_bad_data_is_refused_before_ray(case, tmp_path, tiny_bert, resnet_weights):
    family, build, expected = DATA_CASES[case]
    (tmp_path / "in").mkdir()
    spec = build(tmp_path / "in", tiny_bert if family == "text" else resnet_weights)
    result = invoke(tmp_path, spec, "run")
    assert result.exit_code == 2, result.output
    assert "bad input, nothing was trained: " in result.output
    for text in expected:
        assert text in result.output, result.output
    assert not (tmp_path / "run" / "ray").exists() and not (tmp_path / "run" / "trials").exists()


@pytest.mark.parametrize("case", ["model folder without weights", "corrupt weights file"])
def test_bad_model_files_are_refused_before_ray(case, tmp_path, tiny_bert):
    if case == "model folder without weights":
        model = _model_folder(tiny_bert, tmp_path, ["config.json", "vocab.txt", "tokenizer.json",
                                                    "tokenizer_config.json"])
        spec, expected = text_spec(model, _csvs(tmp_path)), "model"
    else:
        (tmp_path / "bad.pt").write_bytes(b"not a state dict")
        spec, expected = vision_spec(tmp_path / "bad.pt"), "bad.pt"
    result = invoke(tmp_path, spec, "run")
    assert result.exit_code == 2 and "bad input, nothing was trained: " in result.output and expected in result.output
    assert "Traceback" not in result.output


def test_a_weights_enum_of_another_model_is_refused_at_validate(tmp_path, resnet_weights):
    spec = vision_spec(resnet_weights)
    spec["model"]["weights"] = "ResNet50_Weights.IMAGENET1K_V2"
    result = invoke(tmp_path, spec, "validate")
    assert result.exit_code == 2 and "model" in result.output and "ResNet18_Weights.IMAGENET1K_V1" in result.output


# --------------------------------------------------------------------------- random specs

LEAVES = (st.none() | st.booleans() | st.integers(-10**6, 10**20) | st.floats() | st.text(max_size=10)
          | st.sampled_from(["full", "lora", "peft", "prompt_tuning", "lokr", "torchvision", "transformers",
                             "digits", "text_table", "image_folder", "/no/such/path", "x" * 300, "packaged:nope",
                             "1e-3", "asha", "grid", "val_loss", "min"]))
SAMPLERS = st.dictionaries(st.sampled_from(["choice", "grid", "uniform", "loguniform", "randint", "normal"]),
                           st.lists(LEAVES, max_size=3) | LEAVES, min_size=1, max_size=2)
KEYS = st.text(max_size=6) | st.sampled_from(["name", "source", "r", "alpha", "hparams", "lr", "method", "config",
                                              "classes", "train", "weights", "typo"])
GARBAGE = st.recursive(LEAVES | SAMPLERS, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(KEYS, inner, max_size=3), max_leaves=6)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


@st.composite
def mutated_specs(draw, bases):
    """A valid spec with 1-4 random mutations: a value replaced by garbage, a key dropped, a key added."""
    spec = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(list(_paths(spec))))
        op = draw(st.sampled_from(["replace", "drop", "add"]))
        if not path:
            if op == "replace" and draw(st.integers(0, 9)) == 0:
                return draw(GARBAGE)  # not even a mapping
            continue
        parent = spec
        for key in path[:-1]:
            parent = parent[key]
        if op == "replace":
            parent[path[-1]] = draw(GARBAGE)
        elif op == "drop":
            del parent[path[-1]]
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(KEYS)] = draw(GARBAGE)
        elif isinstance(parent[path[-1]], list):
            parent[path[-1]].append(draw(GARBAGE))
    return spec


@pytest.fixture(scope="module")
def base_specs(resnet_weights, tiny_bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("random-specs")
    csvs = _csvs(folder)
    bases = [vision_spec(resnet_weights), text_spec(tiny_bert, csvs)]
    bases[0]["strategies"].append({"name": "peft", "method": "lokr", "config": {"r": 4}})
    bases[1]["strategies"][2]["r"] = {"choice": [2, 4]}
    bases = [json.loads(json.dumps(b, default=str)) for b in bases]
    for base in bases:
        parse_job(copy.deepcopy(base))  # the starting points are valid
    return bases


def test_random_specs_validate_or_name_the_field(base_specs):
    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(mutated_specs(base_specs))
    def check(spec):
        try:
            parse_job(spec)
        except SpecError as e:
            assert e.problems
            for loc, msg in e.problems:
                assert loc and msg.strip()
                assert f"  {loc}: " in str(e)  # every problem under its field path

    check()


def test_random_specs_through_validate(base_specs, tmp_path_factory):
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(mutated_specs(base_specs))
    def check(spec):
        result = invoke(tmp_path_factory.mktemp("v"), spec, "validate")
        assert result.exit_code in (0, 2), result.output
        assert ("ok (" in result.output) if result.exit_code == 0 else ("problem(s)" in result.output)

    check()
