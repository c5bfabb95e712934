"""Submit a job spec to a running Ray cluster through the Ray Jobs API, and follow it by run id.

    run_id = submit("jobs/x.yaml", "http://127.0.0.1:8265", storage="/shared/runs")   # returns at once
    status(run_id); logs(run_id, follow=True); stop(run_id); fetch(run_id, "runs/x")

The job's working directory is a package built for the run (cluster/ship.py): this process's
`raytune_ft` source, the spec and the local files it names, never the rest of the project (its .env,
keys, credentials); the cluster runs it with the dependencies installed on its nodes. The job's runtime
environment is that folder and a few variables: no `pip`, so it never installs (or moves) Ray on the
cluster. Before anything is uploaded, the cluster's Ray and Python are compared with this process's
(cluster/versions.py): a mismatch is exit 2. The driver is
the same as `raytune-ft run`, started on the head by the Jobs API with
`--address auto --run-dir <storage>/<run_id>`. The run id is the Ray submission id; the address and
storage of each run are remembered in ~/.raytune_ft/runs.json (RAYTUNE_FT_HOME moves it).

Token authentication (Ray 2.60 turns it on for every `ray start --head`): the client sends
`Authorization: Bearer <token>`, the token read from RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH
names, or ~/.ray/auth_token, whichever comes first.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shlex
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from raytune_ft.cluster import ship, versions
from raytune_ft.cluster import storage as st
from raytune_ft.errors import ClusterError
from raytune_ft.files import write_text

SPEC_ENV = "RAYTUNE_FT_SPEC_YAML"  # the spec's text, when the spec file is outside the project
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
# The head keeps a URI run's folder here (each node writes its own trials' checkpoints at the same path).
LOCAL_RUNS_ON_HEAD = "/tmp/raytune_ft_runs"


# --------------------------------------------------------------------------- where runs are remembered

def _home() -> Path:
    return Path(os.environ.get("RAYTUNE_FT_HOME", Path.home() / ".raytune_ft"))


def known_runs() -> dict:
    path = _home() / "runs.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _remember(run_id: str, **info) -> None:
    runs = known_runs()
    runs[run_id] = {**runs.get(run_id, {}), **info}
    path = _home() / "runs.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(runs, indent=1))


def address_of(run_id: str, address: Optional[str] = None) -> str:
    """--address, else the one the run was submitted to, else RAY_API_SERVER_ADDRESS / RAY_ADDRESS."""
    address = (address or known_runs().get(run_id, {}).get("address")
               or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS"))
    if not address:
        raise ClusterError(f"{run_id}: not submitted from here; give the cluster with --address http://HEAD:8265")
    return address


# --------------------------------------------------------------------------- the Jobs API client

def auth_headers() -> dict:
    """{'Authorization': 'Bearer <token>'} from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if not token:
        for path in (os.environ.get("RAY_AUTH_TOKEN_PATH"), Path.home() / ".ray" / "auth_token"):
            if path and Path(path).is_file():
                token = Path(path).read_text().strip()
                if token:
                    break
    return {"Authorization": f"Bearer {token}"} if token else {}


@contextlib.contextmanager
def _without_address_env():
    # Ray lets RAY_API_SERVER_ADDRESS / RAY_ADDRESS override the address a client is given: ours wins.
    saved = {k: os.environ.pop(k) for k in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS") if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def client(address: str):
    """A JobSubmissionClient for the dashboard at `address` (http://HOST:8265), sending the token."""
    from ray.job_submission import JobSubmissionClient

    if "://" not in address:
        address = f"http://{address}"
    try:
        with _without_address_env():
            return JobSubmissionClient(address, headers=auth_headers())
    except Exception as e:  # ConnectionError, an auth error, a bad URL: all mean "cannot use this address"
        hint = ""
        if "uthenticat" in str(e) or "401" in str(e) or "403" in str(e):
            hint = (" (the cluster wants its token: copy the head's ~/.ray/auth_token here, or set "
                    "RAY_AUTH_TOKEN)")
        raise ClusterError(f"cannot reach the Ray Jobs API at {address}: {str(e).splitlines()[0]}{hint}") from None


def _call(run_id: str, fn: Callable, *args):
    try:
        return fn(*args)
    except RuntimeError as e:
        if "404" in str(e) or "does not exist" in str(e):
            raise ClusterError(f"{run_id}: no such run on this cluster") from None
        raise ClusterError(f"{run_id}: {str(e).splitlines()[0]}") from None


# --------------------------------------------------------------------------- submit

def new_run_id(name: str) -> str:
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def run_location(storage: str, run_id: str) -> str:
    return st.join(storage, run_id)


def submission(spec_path, run_id: str, storage: str, package: ship.Package, env: Optional[dict] = None) -> dict:
    """The Jobs API request for a run (entrypoint, runtime_env, metadata), without sending it; its
    working_dir is `package` (ship.staged), which must live until the request is sent."""
    env_vars = {"RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1",
                # GPU workers autoscale from zero: a trial's worker group may wait minutes for a node
                "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "900", "RAY_CHDIR_TO_TRIAL_DIR": "0", **(env or {})}
    if st.is_uri(storage):
        run_dir = f"{LOCAL_RUNS_ON_HEAD}/{run_id}"
        env_vars.update({st.URI_ENV: run_location(storage, run_id), st.LOCAL_ENV: run_dir})
    else:
        run_dir = str(Path(storage) / run_id) if Path(storage).is_absolute() else str(Path(storage, run_id))
    spec_arg = package.spec
    if spec_arg is None:  # outside the project: its text travels in the job's environment
        env_vars[SPEC_ENV] = Path(spec_path).read_text(encoding="utf-8")
    if spec_arg is not None and not st.is_uri(storage):
        entrypoint = ["python", "-m", "raytune_ft.cli", "run", spec_arg, "--address", "auto", "--run-dir", run_dir]
    else:
        entrypoint = ["python", "-m", "raytune_ft.cluster.entry", "--run-dir", run_dir]
        entrypoint += ["--spec", spec_arg] if spec_arg else []
        entrypoint += ["--storage-uri", env_vars[st.URI_ENV]] if st.is_uri(storage) else []
    return {
        "entrypoint": shlex.join(entrypoint),
        "runtime_env": {"working_dir": str(package.folder), "env_vars": env_vars},
        "metadata": {"raytune_ft_run": run_id, "storage": storage, "run_dir": run_dir},
    }


def submit(spec_path, address: str, run_id: Optional[str] = None, storage: Optional[str] = None,
           project=None, env: Optional[dict] = None) -> str:
    """Validate the spec here, ship the package (raytune_ft, the spec, the local files it names: see
    cluster/ship.py), start the driver on the cluster; return the run id at once. `project`: the folder
    relative paths start from (default: the current one). `storage`: a folder every node sees, or
    s3:// / gs:// / file:// (default RAYTUNE_FT_STORAGE). A head that has just started, not yet taking
    jobs, is waited for (SUBMIT_WAIT_S)."""
    from raytune_ft.spec import load_job

    # SpecError: every problem, before anything is sent; data only the cluster has is checked there
    job = load_job(spec_path, on_cluster=True)
    storage = storage or os.environ.get("RAYTUNE_FT_STORAGE")
    if not storage:
        raise ClusterError("where should the run folder go? give --storage: a path every node sees "
                           "(e.g. /mnt/shared/runs) or s3://bucket/runs, gs://bucket/runs")
    run_id = run_id or new_run_id(job.name)
    with ship.staged(spec_path, project, job) as package:  # the Jobs API uploads it in submit_job
        jobs = client(address)
        versions.check_jobs_api(address, auth_headers())  # another Ray or Python there: exit 2 before the upload
        for path in package.left_out:
            print(f"not shipped (looks like a credential): {path}", file=sys.stderr)
        request = submission(spec_path, run_id, storage, package, env)
        _submit_job(jobs, run_id, request)
    _remember(run_id, address=address, storage=storage, run_dir=request["metadata"]["run_dir"],
              submitted=time.strftime("%Y-%m-%d %H:%M:%S"))
    return run_id


# A head that has just started answers "No available agent to submit job, please try again later."
# (HTTP 500) until its job agent is up; each such answer itself takes up to 10 s.
NOT_READY = "No available agent"
SUBMIT_WAIT_S = 60.0


def _submit_job(jobs, run_id: str, request: dict, wait_s: float = SUBMIT_WAIT_S,
                sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
    """jobs.submit_job, tried again while the cluster is not ready to take jobs, for up to `wait_s`
    seconds in all (pauses of 0.5, 1, 2, 4, then 8 s). Any other refusal is a ClusterError at once."""
    deadline, pause = clock() + wait_s, 0.5
    while True:
        try:
            with _without_address_env():
                jobs.submit_job(submission_id=run_id, **request)
            return
        except RuntimeError as e:
            reason = str(e).splitlines()[0]
            if NOT_READY not in str(e):
                raise ClusterError(f"the cluster refused run {run_id}: {reason}") from None
            if clock() >= deadline:
                raise ClusterError(
                    f"the cluster did not take run {run_id}: for {wait_s:.0f} s its Jobs API answered \"{reason}\" "
                    "(a head that has just started, or whose job agent died). Try again in a minute; "
                    "if it persists, check the head with `ray status` and its dashboard_agent log") from None
        sleep(min(pause, max(deadline - clock(), 0.0)))
        pause = min(pause * 2, 8.0)


# --------------------------------------------------------------------------- follow a run

def status(run_id: str, address: Optional[str] = None) -> dict:
    """{'status': PENDING|RUNNING|SUCCEEDED|FAILED|STOPPED, 'message', 'run_dir', 'start', 'end'}."""
    info = _call(run_id, client(address_of(run_id, address)).get_job_info, run_id)
    meta = info.metadata or {}
    return {"run_id": run_id, "status": str(info.status), "message": info.message or "",
            "run_dir": meta.get("run_dir", ""), "storage": meta.get("storage", ""),
            "start": info.start_time and info.start_time / 1000, "end": info.end_time and info.end_time / 1000}


def wait(run_id: str, address: Optional[str] = None, timeout_s: float = 3600, poll_s: float = 2.0) -> dict:
    """Poll until the run is SUCCEEDED, FAILED or STOPPED (or the timeout passes); return its status."""
    deadline = time.monotonic() + timeout_s
    while True:
        s = status(run_id, address)
        if s["status"] in TERMINAL or time.monotonic() > deadline:
            return s
        time.sleep(poll_s)


def logs(run_id: str, address: Optional[str] = None, follow: bool = False,
         out: Callable[[str], None] = lambda text: print(text, end="", flush=True)) -> None:
    """The driver's output so far; with `follow`, keep printing until the run ends."""
    jobs = client(address_of(run_id, address))
    if not follow:
        out(_call(run_id, jobs.get_job_logs, run_id))
        return
    _call(run_id, jobs.get_job_info, run_id)  # an unknown id fails here, not inside the stream

    async def tail():
        async for chunk in jobs.tail_job_logs(run_id):
            out(chunk)
    asyncio.run(tail())


def stop(run_id: str, address: Optional[str] = None, timeout_s: float = 120) -> dict:
    """Stop the run (the driver gets SIGTERM, then SIGKILL) and wait until Ray calls it ended."""
    jobs = client(address_of(run_id, address))
    _call(run_id, jobs.stop_job, run_id)
    return wait(run_id, address, timeout_s=timeout_s, poll_s=1.0)


def fetch(run_id: str, dest=None, address: Optional[str] = None, storage: Optional[str] = None) -> tuple[Path, list]:
    """Copy the run's tables, job.yaml and reports/ from its storage (a path or a URI) to `dest`
    (default runs/<run_id>). The storage comes from --storage, this machine's record, or the cluster."""
    storage = storage or known_runs().get(run_id, {}).get("storage")
    if not storage:
        storage = status(run_id, address)["storage"]
    dest = Path(dest or Path("runs") / run_id)
    try:
        found = st.fetch(run_location(storage, run_id), dest)
    except FileNotFoundError as e:
        raise ClusterError(f"{run_id}: {e} (is --storage a path this machine sees?)") from None
    if not found:
        raise ClusterError(f"{run_id}: no results yet in {run_location(storage, run_id)}")
    return dest, found
