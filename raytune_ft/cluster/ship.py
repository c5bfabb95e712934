"""What `submit` sends to the cluster, and nothing more. Ray zips a job's working_dir into the cluster's
GCS and unpacks it on every node that runs a part of the job, so the working_dir is a staging folder
built for the run, never the project folder (where .env files, cloud credentials and SSH keys live):

    with staged("jobs/x.yaml", project) as package:   # a temp folder, removed when the block ends
        package.folder      # raytune_ft/ (this process's package source), jobs/x.yaml, the spec's files
        package.spec        # "jobs/x.yaml": the spec's path in it (None: the spec is outside the project)
        package.left_out    # credential-like files found inside folders the spec names, not shipped

What the spec names is shipped when it is a relative path (data split files and folders, a weights file,
a text model's local folder), laid out as the job on the cluster resolves it: from the working dir, and
for data also from the spec's folder (raytune_ft/spec/load.py). An absolute path is not shipped: the
nodes must see it themselves (a shared file system). `packaged:` weights come from the nodes' installs.

Never shipped: a name of SECRET_NAMES (any part of its path); the spec naming one is a SpecError. In
the folders the spec names, hidden entries (.env, .git/, .aws/, ...) and SECRET_NAMES are left out.
Everything shipped may weigh MAX_BYTES in all; bigger data belong on storage every node sees.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Iterator, Optional

import yaml

from raytune_ft.cluster import storage as st
from raytune_ft.errors import ClusterError, SpecError

# Names (of a file or of any folder above it, matched case-insensitively) that are never shipped.
SECRET_NAMES = (
    # environment files, private keys, certificates and key stores
    ".env", ".env.*", "*.env", ".envrc", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.ppk",
    "*.kdbx", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
    # passwords and tokens (Ray's auth_token, Hugging Face's token, .vault-token, ...)
    ".netrc", "_netrc", ".pgpass", ".pypirc", ".npmrc", ".htpasswd", ".git-credentials", "token", "*_token",
    "*-token", "*.token", "credential*", "*credentials.json", "secret", "secrets", "secret.*", "secrets.*",
    "*.secret", "client_secret*", "service?account*.json", "*-service?account*.json", "*.tfstate", "*.tfstate.*",
    "*.tfvars",
    # folders of credentials: cloud CLIs, SSH, GnuPG, Kubernetes, Docker, Ray, git (remotes with tokens)
    ".aws", ".azure", ".config", "gcloud", ".ssh", ".gnupg", ".kube", ".docker", ".ray", ".git",
)
MAX_BYTES = 256 << 20  # Ray refuses a package of 512 MiB (zipped) and warns from half of that
SKIPPED_IN_PACKAGE = ("__pycache__", "*.pyc")
MOVE_IT = ("put it where every node sees it and name it by its absolute path (a shared file system such "
           "as EFS / NFS mounted on every node, or cluster.yaml's file_mounts)")


@dataclasses.dataclass
class Package:
    folder: Path
    spec: Optional[str]  # the spec's path in the package (posix), None when it is outside the project
    files: list[str]  # every file shipped, relative to the folder (posix)
    left_out: list[str]  # credential-like files inside named folders, as the spec's paths name them
    bytes: int


def secret_part(path) -> Optional[str]:
    """The first part of `path` (a relative path, or a name) that SECRET_NAMES matches, else None."""
    for part in PurePosixPath(Path(path).as_posix()).parts:
        if any(fnmatch.fnmatchcase(part.lower(), pattern) for pattern in SECRET_NAMES):
            return part
    return None


def _secret(named: PurePosixPath, source: Path, project: Path) -> Optional[str]:
    """A secret part of the path as named, or of where it really is (a link's target): its path in the
    project, or its name and its folder's name outside it."""
    real = source.resolve()
    where = real.relative_to(project) if real.is_relative_to(project) else Path(real.parent.name, real.name)
    return secret_part(named) or secret_part(where)


def _inside(rel: str) -> Optional[PurePosixPath]:
    """`rel` normalised, if it stays inside the folder it is relative to; None if it climbs out."""
    norm = os.path.normpath(rel)
    if os.path.isabs(norm) or norm == ".." or norm.startswith(".." + os.sep):
        return None
    return PurePosixPath(Path(norm).as_posix())


@contextlib.contextmanager
def staged(spec_path, project=None, job=None, max_bytes: int = MAX_BYTES) -> Iterator[Package]:
    """The package of a run of the spec (`job`: the spec loaded, if it was), in a temp folder that lives
    until the block ends. SpecError (a field naming a secret, a path outside the project, too many
    bytes) before anything is copied."""
    from raytune_ft.spec import load_job

    spec_path, project = Path(spec_path).resolve(), Path(project or Path.cwd()).resolve()
    spec = spec_path.relative_to(project).as_posix() if spec_path.is_relative_to(project) else None
    plan, left_out = _plan(job or load_job(spec_path), spec_path, spec, project)
    total = sum(size for _, _, size in plan.values())
    if total > max_bytes:
        _too_big(spec_path, plan, total, max_bytes)
    folder = Path(tempfile.mkdtemp(prefix="raytune-ft-ship-"))
    try:
        for dest, (source, _, _) in plan.items():
            target = folder / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        yield Package(folder, spec, sorted(map(str, plan)), left_out, total)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# its path in the package -> (the file here, the field that named it, bytes)
Plan = dict[PurePosixPath, tuple[Path, str, int]]


def _plan(job, spec_path: Path, spec: Optional[str], project: Path) -> tuple[Plan, list[str]]:
    import raytune_ft

    raw = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    plan: Plan = {}
    left_out: list[str] = []

    package = Path(raytune_ft.__file__).resolve().parent
    _add_folder(plan, left_out, package, PurePosixPath("raytune_ft"), "the raytune_ft package", project,
                SKIPPED_IN_PACKAGE)

    spec_dir_in_package = None
    if spec is not None:
        if secret_part(spec):
            raise ClusterError(f"{spec_path}: the spec's path looks like a credential ({secret_part(spec)!r}), "
                               "and is never shipped to the cluster: rename it or move it")
        _add_file(plan, spec_path, PurePosixPath(spec), "the spec")
        spec_dir_in_package = PurePosixPath(spec).parent

    problems = []
    for section, key in job.file_fields():
        value = (raw.get(section) or {}).get(key) if isinstance(raw, dict) else None
        if not isinstance(value, str) or value.startswith("packaged:") or st.is_uri(value) \
                or Path(value).expanduser().is_absolute():
            continue  # unset, packaged weights, a bucket, or a path every node must see for itself
        field = f"{section}.{key}"
        found = _resolve(value, project, spec_path.parent if section == "data" else None, spec_dir_in_package)
        if found is None:
            if section == "model" and not (job.model.weights_file() if key == "weights" else value.startswith(".")):
                continue  # a torchvision weights enum, a Hugging Face hub name
            if section == "data" and not isinstance(getattr(job.data, key, None), Path):
                continue  # a name, not a path: a hub dataset's (hf_dataset)
            problems.append((field, f"{value} is not a file or folder in the project folder {project}"
                             + (" or the spec's folder" if section == "data" else "")
                             + ": fix the path, or give an absolute path every node sees"))
            continue
        source, dest = found
        if dest is None:
            problems.append((field, f"{value} is outside the project folder {project}, so it cannot be shipped "
                             "to the cluster: move it into the project folder, or " + MOVE_IT))
            continue
        secret = _secret(PurePosixPath(Path(value).as_posix()), source, project)
        if secret:
            problems.append((field, f"{value} looks like a credential ({secret!r}), and credentials are never "
                             "shipped to the cluster: point the field at the data or model itself (if this "
                             "holds no secret, rename it)"))
            continue
        if source.is_dir():
            _add_folder(plan, left_out, source, dest, field, project, (), named=PurePosixPath(Path(value).as_posix()))
        else:
            _add_file(plan, source, dest, field)
    if problems:
        raise SpecError(str(spec_path), problems)
    return plan, sorted(left_out)


def _resolve(value: str, project: Path, spec_dir: Optional[Path],
             spec_dir_in_package: Optional[PurePosixPath]) -> Optional[tuple[Path, Optional[PurePosixPath]]]:
    """(the file or folder `value` names here, its place in the package or None if it would climb out of
    it), as the cluster will look it up: from the working dir, else (data) from the spec's folder."""
    from raytune_ft.data.location import path_exists

    if path_exists(project / value):
        return project / value, _inside(value)
    if spec_dir is not None and path_exists(spec_dir / value):
        # the spec is shipped at its place in the project: beside it; outside the project the cluster's
        # spec is a temp file, so the working dir has it
        return spec_dir / value, _inside(os.path.join(str(spec_dir_in_package or ""), value))
    return None


def _add_file(plan: Plan, source: Path, dest: PurePosixPath, field: str) -> None:
    plan.setdefault(dest, (source, field, source.stat().st_size))


def _add_folder(plan: Plan, left_out: list[str], root: Path, dest: PurePosixPath, field: str, project: Path,
                skipped: tuple[str, ...], named: Optional[PurePosixPath] = None) -> None:
    """Every file under `root` but hidden entries, `skipped` names and credential-like ones (recorded in
    `left_out` as `named`/<path>), links followed once."""
    seen = set()
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = Path(folder).resolve()
        if real in seen:  # a link back up the tree
            dirs[:] = []
            continue
        seen.add(real)
        rel = PurePosixPath(Path(folder).relative_to(root).as_posix())
        keep = []
        for name in sorted(dirs):
            if name.startswith(".") or any(fnmatch.fnmatchcase(name, p) for p in skipped):
                if secret_part(name):
                    left_out.append(str((named or dest) / rel / name) + "/")
                continue
            if _secret(PurePosixPath(name), Path(folder, name), project):
                left_out.append(str((named or dest) / rel / name) + "/")
                continue
            keep.append(name)
        dirs[:] = keep
        for name in sorted(names):
            if any(fnmatch.fnmatchcase(name, p) for p in skipped):
                continue
            source = Path(folder, name)
            if _secret(PurePosixPath(name), source, project):
                left_out.append(str((named or dest) / rel / name))
                continue
            if name.startswith(".") or not source.is_file():
                continue
            _add_file(plan, source, dest / rel / name, field)


def _too_big(spec_path: Path, plan: Plan, total: int, max_bytes: int):
    by_field: dict[str, int] = {}
    for _, field, size in plan.values():
        by_field[field] = by_field.get(field, 0) + size
    problems, left = [], total
    for field, size in sorted(by_field.items(), key=lambda kv: -kv[1]):
        if left <= max_bytes:
            break
        left -= size
        problems.append((field, f"{_mib(size)} to ship, where the whole package (the raytune_ft package, the "
                         f"spec and the local files it names) may hold {_mib(max_bytes)} (Ray keeps a job's "
                         f"working_dir in the cluster's GCS and unpacks it on every node): {MOVE_IT}"))
    raise SpecError(str(spec_path), problems)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB"
