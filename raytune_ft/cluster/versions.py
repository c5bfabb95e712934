"""The cluster's Ray and Python against this machine's, before anything is uploaded or any trial starts.

Ray wants a client and its cluster on the same Ray release (and Python): `submit` asks the cluster's
Jobs API (`/api/version`, and the dashboard's `/api/v0/cluster_metadata` for its Python), and `run
--address` turns Ray's own refusal when it attaches into the same message. Either way a mismatch is a
ClusterError (exit 2) that names both sides and what to do.

    check_jobs_api("http://HEAD:8265", headers)     # submit, before the package is built and uploaded
    refusal = from_ray_refusal(error, address)       # run --address: Ray's RuntimeError, or None
"""
from __future__ import annotations

import platform
import re
from typing import Optional

from raytune_ft.errors import ClusterError

SUPPORTED_RAY = ">=2.55.1,<3"  # pyproject.toml's range (docs/reference/versions.md)


def local_versions() -> tuple[str, str]:
    """(Ray, Python) of this process."""
    import ray

    return ray.__version__, platform.python_version()


def mismatch(where: str, cluster_ray: str, cluster_python: Optional[str]) -> Optional[ClusterError]:
    """The ClusterError for a cluster on another Ray release, or another Python (major.minor), than this
    process; None when they match (a Python the cluster does not report is not compared)."""
    ray_here, python_here = local_versions()
    other_python = cluster_python is not None and cluster_python.split(".")[:2] != python_here.split(".")[:2]
    if cluster_ray == ray_here and not other_python:
        return None
    todo = []
    if cluster_ray != ray_here:
        todo.append(f"install the cluster's Ray here: pip install 'ray[default,train,tune]=={cluster_ray}' "
                    f"(raytune_ft supports Ray {SUPPORTED_RAY}), or start the cluster with Ray {ray_here} "
                    f"(cluster.yaml's RAY_VERSION)")
    if other_python:
        short = ".".join(cluster_python.split(".")[:2])
        todo.append(f"run raytune-ft here with Python {short} (a virtual environment of it), or give the cluster's "
                    f"nodes Python {'.'.join(python_here.split('.')[:2])}")
    return ClusterError(
        f"the cluster at {where} runs Ray {cluster_ray}" + (f" on Python {cluster_python}" if cluster_python else "")
        + f", this machine Ray {ray_here} on Python {python_here}: Ray wants the same release on both sides. "
        "Nothing was uploaded and no trial started. To fix: " + "; or ".join(todo))


def check_jobs_api(address: str, headers: dict, timeout_s: float = 30.0) -> None:
    """The versions of the cluster whose Jobs API (dashboard) is at `address`; ClusterError on a mismatch."""
    import requests

    base = address if "://" in address else f"http://{address}"
    try:
        r = requests.get(f"{base}/api/version", headers=headers, timeout=timeout_s)
        r.raise_for_status()
        cluster_ray = r.json()["ray_version"]
    except (requests.RequestException, ValueError, KeyError) as e:
        raise ClusterError(f"cannot read the Ray version of the cluster at {address} (its Jobs API's /api/version): "
                           f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    cluster_python = None
    try:  # the dashboard's cluster metadata: every Ray since 2.x records it (usage stats on or off)
        r = requests.get(f"{base}/api/v0/cluster_metadata", headers=headers, timeout=timeout_s)
        if r.ok:
            cluster_python = (r.json().get("data") or {}).get("python_version")
    except (requests.RequestException, ValueError):
        pass
    error = mismatch(address, cluster_ray, cluster_python)
    if error is not None:
        raise error


def from_ray_refusal(error: Exception, address: str) -> Optional[ClusterError]:
    """Ray's own refusal to attach to a cluster of other versions ("Version mismatch: The cluster was
    started with: Ray: X Python: Y ..."), as our ClusterError; None for any other error."""
    text = str(error)
    if "Version mismatch" not in text:
        return None
    found = re.search(r"cluster was started with:\s*Ray:\s*(\S+)\s*Python:\s*(\S+)", text)
    if found:
        return mismatch(address, found.group(1), found.group(2)) or ClusterError(
            f"Ray refused to attach to the cluster at {address}, whose Python is {found.group(2)} "
            f"(here {platform.python_version()}): use that Python here, or set "
            "RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL=minor. No trial started.")
    return ClusterError(f"Ray refused to attach to the cluster at {address}: {text.strip()}\nInstall the cluster's "
                        f"Ray release here (raytune_ft supports Ray {SUPPORTED_RAY}), or start the cluster with "
                        "this machine's (cluster.yaml's RAY_VERSION). No trial started.")
