"""What made a run: package versions, the code's git commit, sha256 of the data and the model weights,
the resolved spec. It lands in the run folder as `provenance.json`, and the same JSON is the schema
metadata (key b"raytune_ft.provenance") of every table `results/tables.py` writes in that folder.

    provenance.write(run_dir, provenance.collect(job))        # once per run, after the data are prepared
    provenance.read_provenance(run_dir / "trials.parquet")     # -> the dict back (None: the table has none)

Only what the spec names is read and hashed: never an environment variable or a credential file.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import subprocess
from datetime import datetime, timezone
from fnmatch import fnmatch
from importlib import metadata
from pathlib import Path
from typing import Optional

from raytune_ft.files import write_text
from raytune_ft.layout import RunLayout

KEY = b"raytune_ft.provenance"
# The installed packages that decide results (versions from their metadata: none of them is imported)
PACKAGES = ("torch", "torchvision", "transformers", "peft", "accelerate", "ray", "numpy", "scikit-learn",
            "pandas", "pyarrow", "opda", "optuna", "pillow", "safetensors", "efficientnet-lite-pytorch", "datasets")
# of a Hugging Face model folder: the weights, and what turns text into ids
MODEL_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth", "config.json", "vocab.txt", "tokenizer.json",
               "tokenizer_config.json", "special_tokens_map.json", "*.model")
DIGITS_FILE = "sklearn/datasets/data/digits.csv.gz"  # what sklearn.datasets.load_digits reads
CHUNK = 1 << 20
# s3://bucket/key, or s3:/bucket/key once a Path has collapsed the "//"; a scheme of 2+ letters (not C:/)
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/+(.*)$")


def collect(job) -> dict:
    """The provenance of a run of `job` (a JobSpec): hashes every data file and weights file it names."""
    import raytune_ft

    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "raytune_ft": raytune_ft.__version__,
        "python": platform.python_version(),
        "packages": packages(),
        "git": git_state(Path(raytune_ft.__file__).resolve().parent),
        "data": data_files(job),
        "weights": weight_files(job),
        "spec": _without_passwords(job.resolved()),
    }


def _without_passwords(spec: dict) -> dict:
    """The spec with the password of any URI in it (an MLflow server's user:password@host) blanked."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return re.sub(r"(://[^/@:\s]+):[^/@\s]+@", r"\1:***@", x) if isinstance(x, str) else x
    return clean(spec)


def write(run_dir, provenance: dict) -> None:
    """`provenance.json` of the run folder, written atomically."""
    write_text(RunLayout(Path(run_dir)).provenance, json.dumps(provenance, indent=2) + "\n")


def with_provenance(table, folder: Path):
    """`table` (pyarrow) with the folder's provenance.json as schema metadata, if the folder has one."""
    path = RunLayout(Path(folder)).provenance
    return table.replace_schema_metadata({KEY: path.read_bytes()}) if path.is_file() else table


def read_provenance(path) -> Optional[dict]:
    """The provenance a Parquet table carries, or None."""
    import pyarrow.parquet as pq

    value = (pq.read_schema(path).metadata or {}).get(KEY)
    return json.loads(value) if value is not None else None


def packages() -> dict:
    out = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):  # opda, ...: when installed
            out[name] = metadata.version(name)
    return out


def git_state(folder: Path) -> Optional[dict]:
    """{"commit", "dirty"} of the git checkout `folder` (the package's own source) is tracked in; None when
    it is not (an installed copy, even one inside some other repository), or git cannot tell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}  # no GIT_DIR pointing elsewhere

    def git(*args) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=5,
                              env=env, check=True).stdout.strip()
    try:
        git("ls-files", "--error-unmatch", "__init__.py")  # tracked: this is the checkout, not a venv in one
        # dirty: the package's files differ from the commit (untracked ones included)
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--", "."))}
    except (OSError, subprocess.SubprocessError):
        return None


def data_files(job) -> dict:
    """{field path: file entry} for every file or folder field of the data spec (and the digits file)."""
    out = {f"data.{name}": file_entry(value) for name, value in job.data.locations().items()}
    if job.data.source == "digits":
        with contextlib.suppress(metadata.PackageNotFoundError):
            sklearn = metadata.distribution("scikit-learn")
            out["data.source"] = {**file_entry(sklearn.locate_file(DIGITS_FILE)), "scikit-learn": sklearn.version}
    return out


def weight_files(job) -> dict:
    """{field path: file entry} for the model's weights file, packaged weights or local model folder."""
    from raytune_ft.models import packaged

    model = job.model
    field, ref = f"model.{model.weights_field}", getattr(model, model.weights_field)
    if ref is None:
        return {}  # random init
    local = model.weights_path()
    entry = file_entry(local, MODEL_FILES) if local is not None else _unhashed(
        ref, "a torchvision weights enum (fixed by the torchvision version)")
    if ref.startswith(packaged.PREFIX):
        package = packaged.PACKAGED[ref[len(packaged.PREFIX):].lower()][1]
        entry = {**entry, "ref": ref, "package": {package: metadata.version(package)}}
    return {field: entry}


def file_entry(value, patterns: Optional[tuple] = None) -> dict:
    """{"path", "sha256", "bytes"} of a file, or of a folder (its files matching `patterns`, all if None;
    hidden ones skipped). A URI, or a path that is not here, gets no hash and a "note" saying why."""
    uri = _URI.match(str(value))
    if uri:
        return _unhashed(f"{uri.group(1)}://{uri.group(2)}", "remote")
    path = Path(str(value)).expanduser()
    try:
        if not (path.is_file() or path.is_dir()):
            return _unhashed(path, "not a local file or folder")
        digest, size = hash_file(path) if path.is_file() else hash_folder(path, patterns)
    except OSError as e:
        return _unhashed(path, f"{type(e).__name__}: {e}")
    return {"path": str(path.resolve()), "sha256": digest, "bytes": size}


def _unhashed(path, why: str) -> dict:
    return {"path": str(path), "sha256": None, "bytes": None, "note": f"not hashed: {why}"}


def hash_file(path: Path) -> tuple[str, int]:
    """(sha256 hex, bytes), read in 1 MiB chunks."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def hash_folder(root: Path, patterns: Optional[tuple] = None) -> tuple[str, int]:
    """(sha256 over the sorted relative names and the contents of the folder's files, total bytes)."""
    files = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files += [Path(folder, n) for n in names if not n.startswith(".")
                  and (patterns is None or any(fnmatch(n, p) for p in patterns))]
    h, total = hashlib.sha256(), 0
    for rel, path in sorted((p.relative_to(root).as_posix(), p) for p in files):
        digest, size = hash_file(path)
        h.update(f"{rel}\0{digest}\0".encode())
        total += size
    return h.hexdigest(), total
