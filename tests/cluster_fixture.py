"""A real Ray cluster of two nodes on this machine, on loopback only, for the tests that submit jobs
to it (tests/test_cluster.py, tests/test_s3_storage.py):

    with running_cluster(tmp, env={"AWS_ENDPOINT_URL": ...}) as cluster:   # head + a second node
        cluster.address      # the Jobs API, http://127.0.0.1:PORT

Every process the nodes start inherits the environment of the `ray start`s: what the workers of every
node must see (a bucket's endpoint, credentials) goes in `env`.
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

import pytest
import yaml

from tests.conftest import ROOT, vision_spec

# `ray start` swaps 127.0.0.1 for this machine's LAN address (services.resolve_ip_for_localhost), and
# then every node, the GCS included, serves on that address. This launcher keeps 127.0.0.1, and the
# environment variable below makes every process the nodes start (agents, job drivers) keep it too.
LAUNCHER = """
import sys
import ray._private.ray_constants as rc
import ray._private.services as services
rc.ENABLE_RAY_CLUSTER = True  # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 would refuse a joining node here
_resolve = services.resolve_ip_for_localhost
services.resolve_ip_for_localhost = lambda host: host if host in ("127.0.0.1", "localhost") else _resolve(host)
from ray.scripts.scripts import main
sys.argv[0] = "ray"
sys.exit(main())
"""
RAY_SINGLETONS = {"_AutoscalingCoordinatorActor"}


def cli(*args, timeout=300):
    """`raytune-ft ARGS` in a fresh process, from the repository root, in this process's environment."""
    return subprocess.run([sys.executable, "-m", "raytune_ft.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=os.environ.copy())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_ports() -> list[str]:
    # every port a node opens, chosen here: other agents' Ray clusters on this machine hold the defaults
    return [f"--{k}={free_port()}" for k in ("node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
                                               "dashboard-agent-grpc-port", "metrics-export-port",
                                               "runtime-env-agent-port")]


class LocalCluster:
    def __init__(self, tmp: Path, env: Optional[dict] = None):
        self.tmp = tmp
        # Each node's session folders: every process of this cluster names one in its command line.
        # Short (Ray's unix sockets live there, at most 107 bytes a path), and one per node: nodes
        # sharing one would share runtime_resources/, and one node's runtime-env agent would delete
        # the job's working_dir under the other's driver.
        self.temp_dirs = [Path(tempfile.mkdtemp(prefix="rtc-", dir="/tmp")) for _ in range(2)]
        self.gcs_port, self.dash_port = free_port(), free_port()
        self.address = f"http://127.0.0.1:{self.dash_port}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0",
                    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                    "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                    # this checkout's raytune_ft wherever the nodes import it (the jobs also ship it)
                    "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
                    **(env or {})}
        for k in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
            self.env.pop(k, None)
        self.procs: list[subprocess.Popen] = []

    def _start(self, args: list[str], log: str) -> None:
        self.procs.append(subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1",
             f"--temp-dir={self.temp_dirs[len(self.procs)]}", "--disable-usage-stats", *_node_ports(), *args],
            env=self.env, stdout=open(self.tmp / log, "w"), stderr=subprocess.STDOUT, start_new_session=True))

    def start(self) -> None:
        self._start(["--head", f"--port={self.gcs_port}", "--dashboard-host=127.0.0.1",
                     f"--dashboard-port={self.dash_port}", f"--ray-client-server-port={free_port()}",
                     '--resources={"raytune_ft_driver": 100}'], "head.log")
        self.wait_for(lambda: len(self.nodes()) == 1, 300, "the head")
        self._start([f"--address=127.0.0.1:{self.gcs_port}", '--resources={"worker_node": 1}'], "node.log")
        self.wait_for(lambda: len(self.nodes()) == 2, 300, "the second node")

    def wait_for(self, ok, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"a `ray start` exited while waiting for {what}: "
                                   + (self.tmp / "head.log").read_text()[-2000:])
            try:
                if ok():
                    return
            except Exception:
                pass
            time.sleep(2)
        raise TimeoutError(f"{what} not up after {timeout_s}s")

    def api(self, path: str) -> dict:
        import requests

        from raytune_ft.cluster.client import auth_headers

        r = requests.get(f"{self.address}{path}", headers=auth_headers(), timeout=30)
        r.raise_for_status()
        return r.json()

    def nodes(self) -> list[dict]:
        rows = self.api("/api/v0/nodes?limit=100&detail=1")["data"]["result"]["result"]
        return [n for n in rows if n["state"] == "ALIVE"]

    def actors(self, class_name: str = "", state: str = "") -> list[dict]:
        q = "/api/v0/actors?limit=10000&detail=1"
        rows = self.api(q)["data"]["result"]["result"]
        return [a for a in rows if (not class_name or a["class_name"] == class_name) and (not state or a["state"] == state)]

    def resources(self) -> tuple[dict, dict]:
        """(total, available) from a driver attached to the cluster."""
        code = ("import json, ray; ray.init(address='auto', logging_level='ERROR'); "
                "print(json.dumps([ray.cluster_resources(), ray.available_resources()]))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                             env={**self.env, "RAY_ADDRESS": f"127.0.0.1:{self.gcs_port}"})
        return tuple(json.loads(out.stdout.strip().splitlines()[-1]))

    def package(self, uri: str, dest: Path) -> Path:
        """A runtime_env package (gcs://_ray_pkg_<hash>.zip, as a job's runtime_env names its working_dir)
        as the cluster's GCS holds it, written to `dest` (a zip file)."""
        code = ("import sys, ray; from ray.experimental.internal_kv import _internal_kv_get; "
                "ray.init(address='auto', logging_level='ERROR'); "
                "data = _internal_kv_get(sys.argv[1]); open(sys.argv[2], 'wb').write(data)")
        out = subprocess.run([sys.executable, "-c", code, uri, str(dest)], capture_output=True, text=True,
                             timeout=180, env={**self.env, "RAY_ADDRESS": f"127.0.0.1:{self.gcs_port}"})
        assert out.returncode == 0, out.stderr[-2000:]
        return dest

    def listeners(self) -> set[tuple[str, int, str]]:
        """(address, port, process) of every listening socket of every process of this cluster."""
        import psutil

        procs = []
        for p in self.procs:
            try:
                root = psutil.Process(p.pid)
                procs += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        out = set()
        for proc in procs:
            try:
                out |= {(c.laddr.ip, c.laddr.port, proc.name()) for c in proc.net_connections(kind="inet")
                        if c.status == psutil.CONN_LISTEN}
            except psutil.Error:
                pass
        return out

    def processes(self) -> list[int]:
        """Pids of live processes of this cluster: our `ray start`s, and anything whose command line
        names our temp dir (raylets, GCS, agents, workers all carry the session folder)."""
        import psutil

        mine = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if proc.info["pid"] in {p.pid for p in self.procs} or any(str(d) in cmd for d in self.temp_dirs):
                mine.append(proc.info["pid"])
        return mine

    def kill_node(self, index: int) -> None:
        """The node dies at once, as a machine that loses power: SIGKILL to its `ray start` and to every
        process that names its session folder (raylet, agents, workers)."""
        import psutil

        victims = [self.procs[index].pid]
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if str(self.temp_dirs[index]) in " ".join(proc.info["cmdline"] or []):
                victims.append(proc.info["pid"])
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.procs[index].wait(30)

    def stop(self) -> None:
        import psutil

        tree = []
        for p in self.procs:
            try:
                tree += [psutil.Process(p.pid), *psutil.Process(p.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        for p in reversed(self.procs):  # the joining node first, then the head
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(30)
        _, alive = psutil.wait_procs(tree, timeout=30)
        for proc in alive:  # only processes this cluster started, by pid
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=30)
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(1)
        if not self.processes():
            for d in self.temp_dirs:
                shutil.rmtree(d, ignore_errors=True)




@contextlib.contextmanager
def running_cluster(tmp: Path, env: Optional[dict] = None):
    """A started two-node LocalCluster; stopped at the end, and nothing of it may be left alive."""
    cluster = LocalCluster(tmp, env)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        time.sleep(2)
        left = cluster.processes()
        assert left == [], f"processes of the test cluster still alive: {left}"


def _loopback(ip: str) -> bool:
    return ipaddress.ip_address(ip.removeprefix("::ffff:")).is_loopback


class ConnectionWatch:
    """Samples, in a thread, the internet sockets of the processes `pids()` names (this test process,
    its children, a cluster's processes) and keeps every remote or listening address that is not
    loopback. A sampler: it sees every connection that stays open a moment (HTTP keep-alive pools, the
    nodes' gRPC channels); one opened and closed between two samples may slip through.

        with ConnectionWatch(lambda: [...]) as watch:
            ...
        assert not watch.outside, watch.outside
    """

    def __init__(self, pids: Callable[[], Iterable[int]], interval_s: float = 0.5):
        self.pids, self.interval_s = pids, interval_s
        self.outside: set[tuple[str, str, int]] = set()  # (process name, address, port)
        self.seen = 0  # connections seen in all, loopback included: proof the sampler saw something
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="connection-watch", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        import psutil

        mine, refreshed = set(), 0.0
        while True:
            if time.monotonic() - refreshed > 3:  # who is ours changes slowly; the listing costs
                mine, refreshed = set(self.pids()), time.monotonic()
            try:
                conns = psutil.net_connections(kind="inet")
            except psutil.Error:
                conns = []
            for c in conns:
                if c.pid not in mine:
                    continue
                self.seen += 1
                for addr in (c.raddr, c.laddr if c.status == psutil.CONN_LISTEN else None):
                    if addr and not _loopback(addr.ip):
                        try:
                            name = psutil.Process(c.pid).name()
                        except psutil.Error:
                            name = "?"
                        self.outside.add((name, addr.ip, addr.port))
            if self._stop.wait(self.interval_s):
                return


def process_tree(*roots: int) -> set[int]:
    """The pids of `roots` and all their descendants that are alive now."""
    import psutil

    out = set()
    for pid in roots:
        try:
            proc = psutil.Process(pid)
            out |= {pid, *(c.pid for c in proc.children(recursive=True))}
        except psutil.Error:
            pass
    return out


def write_spec(tmp: Path, weights: Path, name: str, epochs: int, samples: int, strategies: list) -> Path:
    """A tiny vision job (digits, a ResNet18 state-dict file) for a cluster of one CPU a node."""
    spec = vision_spec(weights, name=name, strategies=strategies, training={"epochs": epochs})
    spec["search"] = {"num_samples": samples, "scheduler": {"name": "none"}, "hparams": {"lr": 1e-3, "batch_size": 32}}
    spec["resources"] = {"workers_per_trial": 1, "cpus_per_worker": 1}  # one CPU a node: one trial a node
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


BUCKET = "raytune-ft-test"


class MotoS3:
    """moto's S3 server as a child process on 127.0.0.1, and the environment that points clients at it."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {
            "AWS_ENDPOINT_URL": self.endpoint,  # boto3 and pyarrow's S3FileSystem (http:// here) both read it
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            # never ask an instance-metadata service for credentials or a region, never read ~/.aws
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp / "no-aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
        }
        self.log = tmp / "moto.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.client().create_bucket(Bucket=BUCKET)
                return
            except Exception as e:  # not listening yet
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's server did not come up: {e}\n{self.log.read_text()[-2000:]}")
                time.sleep(0.5)

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint)

    def keys(self, prefix: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def read(self, key: str) -> bytes:
        return self.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()

    def size(self, key: str) -> int:
        return self.client().head_object(Bucket=BUCKET, Key=key)["ContentLength"]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # by its pid
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)


@pytest.fixture(scope="module")
def s3(tmp_path_factory, monkeypatch_module):
    moto = MotoS3(tmp_path_factory.mktemp("moto"))
    for k, v in moto.env.items():  # this process (submit, fetch, reload) and every node of the cluster
        monkeypatch_module.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch_module.delenv(k, raising=False)
    try:
        moto.start()
        yield moto
    finally:
        moto.stop()
