"""provenance.json and the tables' metadata: what made a run, hashed from real files in tmp_path."""
from __future__ import annotations

import json
import shutil

import pytest

from raytune_ft import provenance
from raytune_ft.layout import RunLayout
from raytune_ft.results.tables import read_table, write_table
from raytune_ft.spec import parse_job
from tests.conftest import text_spec, vision_spec


def fake_hf_folder(path):
    """What the spec's check of a local model folder needs (config.json), and a weights file to hash."""
    path.mkdir()
    (path / "config.json").write_text('{"model_type": "bert"}')
    (path / "model.safetensors").write_bytes(b"\0" * 64)
    (path / "README.md").write_text("not a weight file")
    return path


def text_job(tmp_path, csvs, data=None):
    """A text job on a model folder in tmp_path; `data` replaces the data section (as a resumed run's)."""
    splits = {k: v for k, v in csvs.items() if k != "test"}
    spec = text_spec(fake_hf_folder(tmp_path / "model"), splits, strategies=[{"name": "full"}])
    if data:
        spec["data"] = {"source": "text_table", **data}
    return parse_job(spec, prepared=data is not None)


def test_data_hashes_follow_the_files(tmp_path, text_csvs):
    job = text_job(tmp_path, text_csvs)
    first = provenance.collect(job)
    train = first["data"]["data.train"]
    assert train["path"] == str(text_csvs["train"].resolve()) and train["bytes"] == text_csvs["train"].stat().st_size
    assert set(first["data"]) == {"data.train", "data.validation"}
    with text_csvs["train"].open("a") as f:
        f.write("one more,pos\n")
    second = provenance.collect(job)
    assert second["data"]["data.train"]["sha256"] != train["sha256"]
    assert second["data"]["data.validation"] == first["data"]["data.validation"]


def test_model_folder_hashes_its_weight_files_only(tmp_path, text_csvs):
    job = text_job(tmp_path, text_csvs)
    before = provenance.collect(job)["weights"]["model.name"]
    (tmp_path / "model" / "README.md").write_text("edited")
    assert provenance.collect(job)["weights"]["model.name"] == before
    (tmp_path / "model" / "model.safetensors").write_bytes(b"\1" * 64)
    after = provenance.collect(job)["weights"]["model.name"]
    assert after["sha256"] != before["sha256"] and after["bytes"] == before["bytes"] == 64 + 22


def test_folder_hash_is_order_independent_and_content_dependent(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    files = {"cat/1.png": b"one", "cat/2.png": b"two", "dog/3.png": b"three"}
    for root, order in ((a, sorted(files)), (b, sorted(files, reverse=True))):
        for name in order:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(files[name])
    (b / ".DS_Store").write_bytes(b"finder")  # hidden: not data
    assert provenance.hash_folder(a) == provenance.hash_folder(b)
    assert provenance.hash_folder(a)[1] == 11
    (b / "dog" / "3.png").write_bytes(b"THREE")
    assert provenance.hash_folder(a)[0] != provenance.hash_folder(b)[0]
    (b / "dog" / "3.png").write_bytes(b"three")
    (b / "dog" / "3.png").rename(b / "cat" / "3.png")  # the same bytes under another class
    assert provenance.hash_folder(a)[0] != provenance.hash_folder(b)[0]


def test_versions_git_and_spec(tmp_path, text_csvs):
    job = text_job(tmp_path, text_csvs)
    got = provenance.collect(job)
    for name in ("torch", "transformers", "ray", "numpy", "pyarrow", "scikit-learn"):
        assert got["packages"][name], name
    assert got["spec"] == job.resolved() and got["created"].endswith("+00:00")
    assert got["git"] is None or (len(got["git"]["commit"]) == 40 and isinstance(got["git"]["dirty"], bool))


def test_digits_and_a_weights_file(tmp_path):
    weights = tmp_path / "lite0.pth"
    weights.write_bytes(b"weights")
    spec = vision_spec(weights, model={"source": "efficientnet_lite", "weights": str(weights)})
    got = provenance.collect(parse_job(spec))
    digits = got["data"]["data.source"]
    assert digits["path"].endswith("digits.csv.gz") and len(digits["sha256"]) == 64 and digits["scikit-learn"]
    assert got["weights"] == {"model.weights": {"path": str(weights), "sha256": provenance.hash_file(weights)[0],
                                                "bytes": 7}}


def test_a_table_written_after_provenance_carries_it(tmp_path, text_csvs):
    run = RunLayout(tmp_path / "run")
    run.root.mkdir()
    write_table([{"a": 1}], run.trials)
    assert provenance.read_provenance(run.trials) is None
    provenance.write(run.root, provenance.collect(text_job(tmp_path, text_csvs)))
    write_table([{"a": 1}, {"b": "x"}], run.trials)
    assert provenance.read_provenance(run.trials) == json.loads(run.provenance.read_text())
    got = read_table(run.trials)  # trials.parquet's declared columns (results/schema.py), then the rows' own
    assert [{k: r[k] for k in ("a", "b")} for r in got] == [{"a": 1, "b": None}, {"a": None, "b": "x"}]
    assert got[0]["trial_id"] is None and "error" in got[0]
    assert [p.name for p in run.root.iterdir()] in (["provenance.json", "trials.parquet"],
                                                    ["trials.parquet", "provenance.json"])  # no temporary files


def test_no_environment_variable_is_recorded(tmp_path, text_csvs, monkeypatch):
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzSECRET"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("HF_TOKEN", "hf_" + secret)
    run = tmp_path / "run"
    run.mkdir()
    provenance.write(run, provenance.collect(text_job(tmp_path, text_csvs)))
    assert secret not in RunLayout(run).provenance.read_text()


def test_remote_data_is_recorded_unhashed(tmp_path, text_csvs, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("provenance tried the network")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    job = text_job(tmp_path, text_csvs, {"train": "s3://bucket/data/train.csv", "validation_fraction": 0.2})
    got = provenance.collect(job)["data"]
    assert got == {"data.train": {"path": "s3://bucket/data/train.csv", "sha256": None, "bytes": None,
                                  "note": "not hashed: remote"}}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_is_the_packages_own_checkout(tmp_path, monkeypatch):
    """An installed copy inside some repository (a venv in it) is no checkout; GIT_DIR does not redirect it."""
    import subprocess

    def git(repo, *args):
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                       check=True, capture_output=True)
    package, other = tmp_path / "repo" / "pkg", tmp_path / "other"
    for folder in (package, other):
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
    git(package.parent, "init", "-q")
    git(other, "init", "-q")
    git(other, "add", "__init__.py")
    git(other, "commit", "-q", "-m", "x")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))  # where __init__.py is tracked: not the package's repo
    assert provenance.git_state(package) is None  # untracked in its own
    monkeypatch.delenv("GIT_DIR")
    git(package.parent, "add", "pkg/__init__.py")
    git(package.parent, "commit", "-q", "-m", "x")
    state = provenance.git_state(package)
    assert len(state["commit"]) == 40 and state["dirty"] is False
    (package / "new.py").write_text("")
    assert provenance.git_state(package)["dirty"] is True


def test_a_password_in_a_uri_of_the_spec_is_not_recorded():
    from raytune_ft.provenance import _without_passwords

    spec = {"tracking": {"mlflow_uri": "https://bob:s3cret@mlflow.example.com/x"}, "data": {"train": "s3://b/k.csv"}}
    clean = _without_passwords(spec)
    assert "s3cret" not in str(clean) and clean["tracking"]["mlflow_uri"] == "https://bob:***@mlflow.example.com/x"
    assert clean["data"]["train"] == "s3://b/k.csv"
