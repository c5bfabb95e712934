"""What `submit` ships to the cluster (raytune_ft/cluster/ship.py): the raytune_ft package, the spec and
the local files it names, never a credential. No cluster here: tests/test_cluster.py reads a package
back from a real one."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import raytune_ft
from raytune_ft.cli import app
from raytune_ft.cluster import ship
from raytune_ft.cluster.client import SPEC_ENV, submission
from raytune_ft.errors import SpecError

# planted in the project: none of them may leave it
SECRETS = {".env": "AWS_SECRET_ACCESS_KEY=x", ".aws/credentials": "[default]", ".ray/auth_token": "t0ken",
           "id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----", "service-account.json": '{"private_key": "k"}'}


def _project(root: Path) -> Path:
    """A project with an image-folder job (jobs/job.yaml), its weights, an unrelated file, and credentials
    in the project and inside the data folder the spec names."""
    for rel, text in SECRETS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    for split in ("train", "validation"):
        for label in ("cat", "dog"):
            (root / "data" / split / label).mkdir(parents=True)
            (root / "data" / split / label / "0.png").write_bytes(b"png " + label.encode())
    (root / "data" / "train" / ".env").write_text("TOKEN=x")
    (root / "data" / "train" / "cat" / "service-account.json").write_text("{}")
    (root / "data" / "train" / ".git").mkdir()
    (root / "data" / "train" / ".git" / "config").write_text("[remote]")
    (root / "weights").mkdir()
    (root / "weights" / "w.pt").write_bytes(b"tensors")
    (root / "notes.txt").write_text("not named by the spec")
    (root / "jobs").mkdir()
    _spec(root / "jobs" / "job.yaml", train="data/train", validation="data/validation", weights="weights/w.pt")
    return root


def _spec(path: Path, weights=None, **data) -> Path:
    spec = {"name": "ship", "model": {"source": "torchvision", "name": "resnet18", "weights": weights},
            "data": {"source": "image_folder", **data}, "strategies": [{"name": "full"}]}
    path.write_text(yaml.safe_dump(spec))
    return path


def _package_files() -> set[str]:
    root = Path(raytune_ft.__file__).resolve().parent
    return {f"raytune_ft/{p.relative_to(root).as_posix()}" for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def test_the_package_holds_raytune_ft_the_spec_and_the_named_files_only(tmp_path, monkeypatch):
    project = _project(tmp_path / "project")
    monkeypatch.chdir(project)
    with ship.staged("jobs/job.yaml") as package:
        folder = package.folder
        on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        assert on_disk == set(package.files)
        named = {"jobs/job.yaml", "weights/w.pt", "data/train/cat/0.png", "data/train/dog/0.png",
                 "data/validation/cat/0.png", "data/validation/dog/0.png"}
        assert on_disk == _package_files() | named
        assert "raytune_ft/cli/__init__.py" in on_disk and "raytune_ft/templates/report.html.j2" in on_disk
        assert (folder / "data/train/dog/0.png").read_bytes() == b"png dog"
        assert package.spec == "jobs/job.yaml"
        assert package.bytes == sum((folder / f).stat().st_size for f in on_disk)
        # credentials inside the named data folder: left out, and said
        assert package.left_out == ["data/train/.env", "data/train/.git/", "data/train/cat/service-account.json"]
        request = submission("jobs/job.yaml", "r1", "/shared/runs", package)
    assert not folder.exists()  # gone once the block ends (the Jobs API has uploaded it by then)
    assert request["runtime_env"] == {"working_dir": str(folder), "env_vars": request["runtime_env"]["env_vars"]}
    assert request["entrypoint"] == "python -m raytune_ft.cli run jobs/job.yaml --address auto --run-dir /shared/runs/r1"


def test_a_spec_outside_the_project_travels_in_the_environment_and_its_data_in_the_package(tmp_path, monkeypatch):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    (project / "id_rsa").write_text("key")
    for split in ("train", "validation"):
        for label in ("a", "b"):
            (elsewhere / "imgs" / split / label).mkdir(parents=True)
            (elsewhere / "imgs" / split / label / "1.png").write_bytes(b"png")
    spec = _spec(elsewhere / "job.yaml", train="imgs/train", validation="imgs/validation")
    monkeypatch.chdir(project)
    with ship.staged(spec) as package:
        assert package.spec is None
        # relative to the spec's folder here; on the cluster the spec is a temp file, so the working dir has them
        assert {f for f in package.files if not f.startswith("raytune_ft/")} == {
            "imgs/train/a/1.png", "imgs/train/b/1.png", "imgs/validation/a/1.png", "imgs/validation/b/1.png"}
        request = submission(spec, "r2", "s3://bucket/runs", package)
    assert request["runtime_env"]["env_vars"][SPEC_ENV] == spec.read_text()
    assert request["entrypoint"] == ("python -m raytune_ft.cluster.entry --run-dir /tmp/raytune_ft_runs/r2 "
                                     "--storage-uri s3://bucket/runs/r2")


def test_absolute_paths_are_not_shipped(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "jobs").mkdir(parents=True)
    for split in ("train", "validation"):
        for label in ("a", "b"):
            (tmp_path / "shared" / split / label).mkdir(parents=True)
    (tmp_path / "shared" / "w.pt").write_bytes(b"tensors")
    spec = _spec(project / "jobs" / "job.yaml", weights=str(tmp_path / "shared" / "w.pt"),
                 train=str(tmp_path / "shared" / "train"), validation=str(tmp_path / "shared" / "validation"))
    monkeypatch.chdir(project)
    with ship.staged(spec) as package:  # the nodes must see them: a shared file system
        assert set(package.files) == _package_files() | {"jobs/job.yaml"}


def _refused(spec: str, tmp_path, monkeypatch) -> list:
    """The problems staging `spec` (from the current folder) is refused with; nothing was staged."""
    staging = tmp_path / "tmp"
    staging.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(staging))
    with pytest.raises(SpecError) as e:
        with ship.staged(spec):
            pass
    assert not list(staging.iterdir())  # refused before anything was copied
    return e.value.problems


def test_a_spec_naming_a_credential_is_refused_before_anything_is_copied(tmp_path, monkeypatch):
    project = _project(tmp_path / "project")
    (project / "keys").mkdir()
    (project / "keys" / "id_ed25519").write_bytes(b"key")
    _spec(project / "jobs" / "bad.yaml", train=".aws", validation="data/validation", weights="keys/id_ed25519")
    monkeypatch.chdir(project)
    problems = dict(_refused("jobs/bad.yaml", tmp_path, monkeypatch))
    assert set(problems) == {"data.train", "model.weights"}
    assert problems["data.train"].startswith(".aws looks like a credential ('.aws')")
    assert problems["model.weights"].startswith("keys/id_ed25519 looks like a credential ('id_ed25519')")
    assert "never shipped to the cluster" in problems["data.train"]

    # through the CLI: exit 2, the file named, no traceback, nothing sent
    result = CliRunner().invoke(app, ["submit", "jobs/bad.yaml", "--address", "http://127.0.0.1:9",
                                      "--storage", str(tmp_path / "runs")],
                                env={"RAYTUNE_FT_HOME": str(tmp_path / "home")})
    assert result.exit_code == 2, result.output
    assert "data.train: .aws looks like a credential" in result.output and "Traceback" not in result.output


def test_a_link_to_a_credential_is_a_credential(tmp_path, monkeypatch):
    project = _project(tmp_path / "project")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host *")
    os.symlink(home / ".ssh" / "config", project / "data" / "train" / "dog" / "1.png")
    os.symlink(home / ".ssh", project / "data" / "train" / "keys")
    monkeypatch.chdir(project)
    with ship.staged("jobs/job.yaml") as package:
        assert not any("1.png" in f or "keys" in f for f in package.files)
        assert {"data/train/dog/1.png", "data/train/keys/"} <= set(package.left_out)


def test_paths_outside_the_project_or_missing_are_refused(tmp_path, monkeypatch):
    project = _project(tmp_path / "project")
    for split in ("train", "validation"):
        (tmp_path / "outside" / split / "a").mkdir(parents=True)
    _spec(project / "jobs" / "up.yaml", train="../../outside/train", validation="../outside/validation")
    monkeypatch.chdir(project)
    with pytest.raises(SpecError) as e:
        with ship.staged("jobs/up.yaml"):
            pass
    problems = dict(e.value.problems)
    assert set(problems) == {"data.train", "data.validation"}
    assert all("is outside the project folder" in p and "every node sees" in p for p in problems.values())

    # --project elsewhere than the current folder: relative paths start from the project on the cluster
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(SpecError, match="data/train is not a file or folder in the project folder"):
        with ship.staged("jobs/job.yaml", project=other):
            pass


def test_too_much_data_is_refused_with_where_to_put_it(tmp_path, monkeypatch):
    project = _project(tmp_path / "project")
    with open(project / "data" / "validation" / "cat" / "big.png", "wb") as f:
        f.truncate(300 << 20)  # sparse: 300 MiB that take no disk
    monkeypatch.chdir(project)
    (field, message), = _refused("jobs/job.yaml", tmp_path, monkeypatch)
    assert field == "data.validation" and message.startswith("300.0 MiB to ship")
    assert "256.0 MiB" in message and "every node sees" in message


@pytest.mark.parametrize("name", [".env", ".env.production", "prod.env", "id_rsa", "id_rsa.pub", "id_ed25519",
                                  "server.pem", "tls.key", "cert.p12", ".netrc", ".git-credentials", "auth_token",
                                  "token", ".vault-token", "credentials", "credentials.json", "gcp-credentials.json",
                                  "service-account.json", "service_account-prod.json", "my-service-account.json",
                                  "client_secret_123.json", "secrets.yaml", "terraform.tfstate", ".aws", ".ssh",
                                  ".ray", ".git", "ID_RSA", "data/.aws/x.csv"])
def test_credential_names(name):
    assert ship.secret_part(name)


@pytest.mark.parametrize("name", ["train.csv", "data/train", "0.png", "config.json", "tokenizer.json",
                                  "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "model.safetensors",
                                  "pytorch_model.bin", "resnet18.pt", "job.yaml", "keys.csv", "environment.yaml",
                                  "sentencepiece.model", "tokens.parquet", "secretary_bird", "raytune_ft/cluster/ship.py"])
def test_names_that_are_not_credentials(name):
    assert ship.secret_part(name) is None
