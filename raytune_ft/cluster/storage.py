"""Run folders on storage every node sees: a shared path, or a URI (s3://, gs://, file://) through pyarrow.

A shared path needs nothing from here: the run folder simply lives there. For a URI the driver works in
a local folder on the head and this module mirrors it to `<uri>` with the same layout (tables,
job.yaml, reports/, data/, trials/<id>/...):

    mirror("/home/ubuntu/raytune_ft_runs/r1", "s3://bucket/runs/r1")   # copies what changed
    fetch("s3://bucket/runs/r1", "runs/r1")                           # the result files, home

Train workers on other nodes find where to upload from two environment variables that `submit` sets
for the whole job: RAYTUNE_FT_STORAGE_URI (the run's URI) and RAYTUNE_FT_LOCAL_RUN_DIR (the local
folder it mirrors); `sync_up(path)` and `ensure_local(path)` do nothing when they are not set.
"""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Iterable, Optional

from raytune_ft.files import replacing
from raytune_ft.layout import RESULT_FILES

URI_ENV = "RAYTUNE_FT_STORAGE_URI"
LOCAL_ENV = "RAYTUNE_FT_LOCAL_RUN_DIR"
# What `fetch` brings home: the tables, the resolved spec, the test-split reports.


def is_uri(location: str) -> bool:
    return "://" in str(location)


def join(base: str, *parts: str) -> str:
    """`base/part/...` for a path or a URI."""
    if not is_uri(base):
        return str(Path(base, *parts))
    return "/".join([str(base).rstrip("/"), *(p.strip("/") for p in parts if p)])


def filesystem(location: str):
    """(pyarrow filesystem, path inside it) for a URI or a local path."""
    from pyarrow import fs

    if is_uri(location):
        return fs.FileSystem.from_uri(str(location))
    return fs.LocalFileSystem(), str(Path(location).resolve())


def _local_files(local_dir: Path, exclude: Iterable[str] = ()) -> list[Path]:
    skip = tuple(exclude)
    out = []
    for p in sorted(local_dir.rglob("*")):
        rel = p.relative_to(local_dir).as_posix()
        if p.is_file() and not p.name.startswith(".") and not any(rel == s or rel.startswith(s + "/") for s in skip):
            out.append(p)
    return out


def mirror(local_dir, uri: str, exclude: Iterable[str] = ()) -> list[str]:
    """Copy every file of `local_dir` that is new or changed (size, or newer than the copy) to `uri`,
    keeping the layout. Hidden files (temporaries being written) and `exclude`d subfolders are left
    out. Returns the relative paths copied."""
    from pyarrow import fs as pafs

    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        return []
    remote, root = filesystem(uri)
    files = _local_files(local_dir, exclude)
    infos = {}
    if files:
        selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
        infos = {i.path[len(root):].lstrip("/"): i for i in remote.get_file_info(selector)
                 if i.type == pafs.FileType.File}
    copied = []
    for p in files:
        rel = p.relative_to(local_dir).as_posix()
        st = p.stat()
        have = infos.get(rel)
        if have is not None and have.size == st.st_size and have.mtime_ns is not None and have.mtime_ns >= st.st_mtime_ns:
            continue
        dest = f"{root}/{rel}"
        remote.create_dir(dest.rsplit("/", 1)[0], recursive=True)
        try:
            _copy_file(p, remote, dest)
        except FileNotFoundError:  # replaced or removed while we copied (an atomic rewrite): next time
            continue
        copied.append(rel)
    return copied


def _copy_file(src: Path, remote, dest: str) -> None:
    from pyarrow import fs as pafs

    if isinstance(remote, pafs.LocalFileSystem):  # atomic on a local or shared path: no half-written file
        with replacing(dest) as tmp:
            shutil.copyfile(src, tmp)
        return
    with src.open("rb") as f, remote.open_output_stream(dest) as out:  # an object store writes it whole
        shutil.copyfileobj(f, out, length=8 << 20)


def fetch(location: str, local_dir, include: Iterable[str] = RESULT_FILES) -> list[str]:
    """Copy the named files and folders of a run (a path or a URI) into `local_dir`; return those found."""
    from pyarrow import fs as pafs

    remote, root = filesystem(location)
    if remote.get_file_info(root).type != pafs.FileType.Directory:
        raise FileNotFoundError(f"{location}: no run folder there")
    local_dir = Path(local_dir)
    local_dir.mkdir(parents=True, exist_ok=True)
    found = []
    for name in include:
        info = remote.get_file_info(f"{root}/{name}")
        if info.type == pafs.FileType.NotFound:
            continue
        dest = local_dir / name
        if info.type == pafs.FileType.Directory:
            dest.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(f"{root}/{name}", str(dest.resolve()), source_filesystem=remote,
                        destination_filesystem=pafs.LocalFileSystem())
        found.append(name)
    return found


def download_dir(location: str, local_dir) -> bool:
    """Copy a whole folder (a path or a URI) to `local_dir`; False if there is none."""
    from pyarrow import fs as pafs

    remote, root = filesystem(location)
    if remote.get_file_info(root).type != pafs.FileType.Directory:
        return False
    Path(local_dir).mkdir(parents=True, exist_ok=True)
    pafs.copy_files(root, str(Path(local_dir).resolve()), source_filesystem=remote,
                    destination_filesystem=pafs.LocalFileSystem())
    return True


# --------------------------------------------------------------------------- hooks for the driver and workers

def _remote_for(path) -> Optional[str]:
    """The URI that mirrors `path`, when this job mirrors its run folder and `path` is inside it."""
    uri, local = os.environ.get(URI_ENV), os.environ.get(LOCAL_ENV)
    if not uri or not local:
        return None
    try:
        rel = Path(path).resolve().relative_to(Path(local).resolve())
    except ValueError:
        return None
    return join(uri, rel.as_posix()) if rel.parts else uri


def ray_storage(path) -> str:
    """Where Ray keeps what belongs under `path` of the run folder (Train's checkpoints): the run's
    URI when the job mirrors to one (Ray writes there directly), else the path itself."""
    return _remote_for(path) or str(Path(path).resolve())


def sync_up(path) -> list[str]:
    """Upload a folder of the run (a trial's checkpoints, the prepared data) to the run's URI, if the
    job mirrors to one; a no-op otherwise (local runs, shared paths)."""
    remote = _remote_for(path)
    return mirror(path, remote) if remote else []


def ensure_local(path) -> bool:
    """Make a folder of the run present on this node (download it from the run's URI if it is not
    here). True if the folder is there afterwards."""
    if Path(path).exists():
        return True
    remote = _remote_for(path)
    return bool(remote) and download_dir(remote, path)


class Mirror:
    """Mirrors a run folder to a URI every `interval_s` seconds in a thread, and once more at `close`."""

    def __init__(self, local_dir, uri: str, interval_s: float = 15.0, exclude: Iterable[str] = ()):
        self.local_dir, self.uri, self.interval_s, self.exclude = Path(local_dir), uri, interval_s, tuple(exclude)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="raytune-ft-mirror", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def _once(self) -> None:
        try:
            mirror(self.local_dir, self.uri, self.exclude)
        except OSError as e:  # a transient storage error: try again next round
            self.errors.append(str(e))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._once()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._once()
