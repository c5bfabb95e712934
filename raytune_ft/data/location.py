"""Where a data split lives: a path on the machine the job runs on, or a URI read through pyarrow's
filesystems (the same ones the run storage uses, raytune_ft/cluster/storage.py).

    train: /mnt/shared/sst2/train.csv     # a path: a local disk, or a shared file system every node mounts
    train: s3://bucket/sst2/train.csv     # a bucket (s3://, gs://), credentials from the usual environment
    train: file:///data/sst2/train.csv    # a path written as a URI

A URI is kept as the text it is: a pathlib.Path would collapse its "//" (s3:/bucket/...). A path or a
file:// URI is looked at directly; a bucket URI only where the job runs (its pre-flight), never while
a spec is merely parsed.

    kind("s3://bucket/sst2/train.csv")    # "file" | "folder" | None (not there); OSError: cannot tell
    read_bytes("s3://bucket/sst2/train.csv")
    entries("gs://bucket/images/train")   # [(name, "file" | "folder" | "other", location)], sorted
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Optional, Union
from urllib.parse import unquote, urlparse

from raytune_ft.cluster.storage import filesystem, is_uri, join

Location = Union[Path, str]  # str: a URI
SCHEMES = ("s3", "gs", "gcs", "hdfs", "file")  # what pyarrow.fs.FileSystem.from_uri reads


def parse(value) -> Location:
    """A spec's data path: a URI stays text, anything else becomes a Path. ValueError for a scheme that
    pyarrow's filesystems do not read (http://, ...)."""
    if isinstance(value, Path):
        return value
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"a path or a URI (s3://, gs://, file://) is text; got {value!r:.60}")
    value = os.fspath(value)
    if not is_uri(value):
        return Path(value)
    scheme = value.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise ValueError(f"{value}: {scheme}:// is not storage this tool reads; use a path, or a URI "
                         f"{', '.join(s + '://' for s in SCHEMES)}")
    if not urlparse(value).path.strip("/") and scheme != "file":
        raise ValueError(f"{value}: a bucket alone; give the file or folder inside it, "
                         f"e.g. {value.rstrip('/')}/train.csv")
    return value


def path_exists(path: Path) -> bool:
    """Whether path exists; a path the OS cannot even look up (too long, a NUL byte) counts as missing."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def local_path(location: Location) -> Optional[Path]:
    """The local path of a path or a file:// URI; None for a bucket (s3://, gs://, ...)."""
    if not is_uri(location):
        return Path(location).expanduser()
    parsed = urlparse(str(location))
    return Path(unquote(parsed.path)) if parsed.scheme.lower() == "file" else None


def looked_in(location: Location, spec_dir: Optional[Path] = None) -> str:
    """Where a relative path was looked for, for a message: ' (looked for /work/data/train, from the working
    folder, and /work/jobs/data/train, from the spec's folder)'; '' for an absolute path or a URI."""
    path = local_path(location)
    if path is None or path.is_absolute():
        return ""
    here = Path.cwd() / path
    there = (Path(spec_dir).resolve() / path) if spec_dir is not None else None
    if there is None or there == here:
        return f" (looked for {here}, from the working folder" + (", which is the spec's folder)" if there else ")")
    return f" (looked for {here}, from the working folder, and {there}, from the spec's folder)"


def in_bucket(location: Location) -> bool:
    return local_path(location) is None


def suffix(location: Location) -> str:
    """The file's suffix, lower case ('.csv'), for a path or a URI."""
    name = Path(location).name if not is_uri(location) else PurePosixPath(urlparse(str(location)).path).name
    return PurePosixPath(name).suffix.lower()


def _kind(path: Path) -> Optional[str]:
    try:
        return "file" if path.is_file() else "folder" if path.is_dir() else None
    except (OSError, ValueError):  # too long, a NUL byte: the OS cannot even look it up
        return None


def kind(location: Location) -> Optional[str]:
    """"file", "folder", or None where nothing is there. A bucket is asked (OSError when it cannot be:
    no credentials, no such bucket, no network)."""
    path = local_path(location)
    if path is not None:
        return _kind(path)
    from pyarrow import fs as pafs

    remote, inside = filesystem(str(location))
    found = remote.get_file_info(inside).type
    return {pafs.FileType.File: "file", pafs.FileType.Directory: "folder"}.get(found)


def read_bytes(location: Location) -> bytes:
    """The whole file; OSError when it cannot be read."""
    path = local_path(location)
    if path is not None:
        return path.read_bytes()
    remote, inside = filesystem(str(location))
    with remote.open_input_stream(inside) as f:
        return f.read()


def parquet_source(location: Location) -> tuple:
    """(path, filesystem) as pyarrow.parquet's read_table / read_schema take them."""
    path = local_path(location)
    if path is not None:
        return str(path), None
    remote, inside = filesystem(str(location))
    return inside, remote


def entries(folder: Location) -> list[tuple[str, str, Location]]:
    """(name, "file" | "folder" | "other", location) of each entry of a folder, sorted by name."""
    path = local_path(folder)
    if path is not None:
        return sorted((p.name, _kind(p) or "other", p) for p in path.iterdir())
    from pyarrow import fs as pafs

    remote, inside = filesystem(str(folder))
    kinds = {pafs.FileType.File: "file", pafs.FileType.Directory: "folder"}
    found = remote.get_file_info(pafs.FileSelector(inside, recursive=False))
    return sorted((i.base_name, kinds.get(i.type, "other"), join(str(folder), i.base_name)) for i in found)
