"""The cluster path: storage mirroring, the Jobs API client, cluster.yaml, and a real two-node Ray
cluster on this machine (`ray start --head` + `ray start --address`, loopback only, token auth)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from raytune_ft.cluster import ship, storage
from raytune_ft.cluster.client import submission
from tests.cluster_fixture import RAY_SINGLETONS, free_port, running_cluster, write_spec
from tests.conftest import ROOT, vision_spec

# --------------------------------------------------------------------------- storage (file:// URIs)


def _tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_mirror_keeps_the_layout_and_copies_only_what_changed(tmp_path):
    run = tmp_path / "run"
    (run / "trials" / "t1" / "best").mkdir(parents=True)
    (run / "trials.parquet").write_bytes(b"v1")
    (run / "job.yaml").write_text("name: x\n")
    (run / "trials" / "t1" / "best" / "model.safetensors").write_bytes(b"w" * 1000)
    (run / ".trials.parquet.tmp").write_bytes(b"half")  # a temporary being written: never mirrored
    uri = (tmp_path / "bucket" / "runs" / "r1").as_uri()  # file:///..., pyarrow's LocalFileSystem

    assert sorted(storage.mirror(run, uri)) == ["job.yaml", "trials.parquet", "trials/t1/best/model.safetensors"]
    remote = tmp_path / "bucket" / "runs" / "r1"
    assert _tree(remote) == {k: v for k, v in _tree(run).items() if not k.startswith(".")}
    assert storage.mirror(run, uri) == []  # nothing changed
    time.sleep(0.01)
    (run / "trials.parquet").write_bytes(b"v2 longer")
    assert storage.mirror(run, uri) == ["trials.parquet"]
    assert (remote / "trials.parquet").read_bytes() == b"v2 longer"

    (run / "reports").mkdir()
    (run / "reports" / "full.json").write_text("{}")
    storage.mirror(run, uri)
    home = tmp_path / "home"
    assert sorted(storage.fetch(uri, home)) == ["job.yaml", "reports", "trials.parquet"]
    assert (home / "reports" / "full.json").read_text() == "{}" and not (home / "trials").exists()
    with pytest.raises(FileNotFoundError):
        storage.fetch((tmp_path / "nothing").as_uri(), home)


def test_workers_sync_their_folders_through_the_job_environment(tmp_path, monkeypatch):
    local, uri = tmp_path / "head" / "r1", (tmp_path / "bucket" / "r1").as_uri()
    trial = local / "trials" / "t1"
    trial.mkdir(parents=True)
    (trial / "last").write_text("epoch 3")
    assert storage.sync_up(trial) == []  # no URI in the environment: local run, nothing to do
    monkeypatch.setenv(storage.URI_ENV, uri)
    monkeypatch.setenv(storage.LOCAL_ENV, str(local))
    assert storage.sync_up(trial) == ["last"]
    assert (tmp_path / "bucket" / "r1" / "trials" / "t1" / "last").read_text() == "epoch 3"
    assert storage.sync_up(tmp_path / "elsewhere") == []

    # another node: the folder is not there, so it comes from the URI
    import shutil
    shutil.rmtree(local)
    assert storage.ensure_local(trial) and (trial / "last").read_text() == "epoch 3"
    assert not storage.ensure_local(local / "data")  # nothing mirrored there


def test_mirror_thread_copies_while_running_and_at_the_end(tmp_path):
    run, uri = tmp_path / "run", (tmp_path / "out").as_uri()
    run.mkdir()
    with storage.Mirror(run, uri, interval_s=0.2):
        (run / "epochs.parquet").write_bytes(b"1")
        deadline = time.monotonic() + 10
        while not (tmp_path / "out" / "epochs.parquet").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "out" / "epochs.parquet").exists()
        (run / "strategies.parquet").write_bytes(b"2")
    assert (tmp_path / "out" / "strategies.parquet").read_bytes() == b"2"


# --------------------------------------------------------------------------- the request sent to the Jobs API


def test_submission_ships_a_package_of_raytune_ft_and_the_spec(tmp_path):
    with ship.staged(ROOT / "jobs" / "quickstart.yaml", ROOT) as package:
        inside = submission(ROOT / "jobs" / "quickstart.yaml", "r1", "/shared/runs", package)
        # digits and packaged weights: nothing but the package and the spec (not the project's README, tests/, ...)
        assert {f.split("/")[0] for f in package.files} == {"raytune_ft", "jobs"}
        assert [f for f in package.files if f.startswith("jobs/")] == ["jobs/quickstart.yaml"]
    assert inside["entrypoint"] == ("python -m raytune_ft.cli run jobs/quickstart.yaml --address auto "
                                    "--run-dir /shared/runs/r1")
    env = inside["runtime_env"]
    assert env["working_dir"] == str(package.folder) and set(env) == {"working_dir", "env_vars"}
    assert env["env_vars"]["RAY_USAGE_STATS_ENABLED"] == "0" and storage.URI_ENV not in env["env_vars"]

    spec = tmp_path / "job.yaml"
    spec.write_text((ROOT / "jobs" / "quickstart.yaml").read_text())
    with ship.staged(spec, ROOT) as package:
        outside = submission(spec, "r2", "s3://bucket/runs", package)
    assert outside["entrypoint"] == ("python -m raytune_ft.cluster.entry --run-dir /tmp/raytune_ft_runs/r2 "
                                     "--storage-uri s3://bucket/runs/r2")
    env = outside["runtime_env"]["env_vars"]
    assert env["RAYTUNE_FT_SPEC_YAML"] == spec.read_text()
    assert env[storage.URI_ENV] == "s3://bucket/runs/r2" and env[storage.LOCAL_ENV] == "/tmp/raytune_ft_runs/r2"


def _cli(*args, env=None, timeout=120, cwd=ROOT):
    pythonpath = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])  # from any cwd
    return subprocess.run([sys.executable, "-m", "raytune_ft.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, "PYTHONPATH": pythonpath, **(env or {})})


def test_cluster_commands_refuse_bad_input_with_exit_2(tmp_path, resnet_weights):
    home = {"RAYTUNE_FT_HOME": str(tmp_path / "home")}
    out = _cli("submit", str(tmp_path / "missing.yaml"), "--address", "http://127.0.0.1:9", env=home)
    assert out.returncode == 2 and "no such file" in out.stderr and "Traceback" not in out.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**vision_spec(resnet_weights), "training": {"epochs": 0}}))
    out = _cli("submit", str(bad), "--address", "http://127.0.0.1:9", "--storage", str(tmp_path), env=home)
    assert out.returncode == 2 and "training.epochs" in out.stderr and "Traceback" not in out.stderr

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(vision_spec(resnet_weights)))
    port = free_port()  # nothing listens there
    out = _cli("submit", str(good), "--address", f"http://127.0.0.1:{port}", "--storage", str(tmp_path), env=home)
    assert out.returncode == 2 and "cannot reach the Ray Jobs API" in out.stderr and "Traceback" not in out.stderr
    out = _cli("submit", str(good), "--address", f"http://127.0.0.1:{port}", env={**home, "RAYTUNE_FT_STORAGE": ""})
    assert out.returncode == 2 and "--storage" in out.stderr

    for command in ("status", "logs", "stop", "fetch"):
        out = _cli(command, "no-such-run", env={**home, "RAY_ADDRESS": "", "RAY_API_SERVER_ADDRESS": ""})
        assert out.returncode == 2 and "--address" in out.stderr and "Traceback" not in out.stderr, command


# --------------------------------------------------------------------------- cluster.yaml


def test_cluster_yaml_passes_ray_validation():
    """What `ray up cluster.yaml --no-config-cache` checks before it calls AWS: Ray's own defaults
    merge and JSON-schema validation (ray.autoscaler._private.util), offline."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config = prepare_config(raw)
    validate_config(config)

    assert config["provider"]["type"] == "aws"
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"]["raytune_ft_driver"] >= 100 and head["resources"]["CPU"] == 0
    workers = [t for name, t in config["available_node_types"].items() if name != config["head_node_type"]]
    assert workers and all(t["min_workers"] == 0 and t["resources"]["GPU"] >= 1 for t in workers)
    assert any(t["node_config"].get("InstanceMarketOptions", {}).get("MarketType") == "spot" for t in workers)

    # Our own security group on every node: Ray's default group would open SSH to 0.0.0.0/0.
    assert all(t["node_config"].get("SecurityGroupIds") for t in config["available_node_types"].values())
    for rule in config["provider"].get("security_group", {}).get("IpPermissions", []):
        open_to_all = any(r.get("CidrIp") == "0.0.0.0/0" for r in rule.get("IpRanges", []))
        assert not open_to_all or (rule["FromPort"], rule["ToPort"]) == (22, 22), rule

    head_start = " ".join(config["head_start_ray_commands"])
    assert "RAY_AUTH_MODE=token" in head_start and "--dashboard-host=127.0.0.1" in head_start
    assert "raytune_ft_driver" in head_start and "--disable-usage-stats" in head_start
    assert "RAY_AUTH_MODE=token" in " ".join(config["worker_start_ray_commands"])
    assert "~/.ray/auth_token" in config["file_mounts"]
    setup = " ".join(config["setup_commands"])
    pins = [d for d in _pyproject_dependencies() if d.split("==")[0].split("[")[0] in
            ("torch", "torchvision", "ray", "accelerate", "peft", "transformers")]
    assert pins and all(p in setup for p in pins), pins


def _pyproject_dependencies() -> list[str]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


# --------------------------------------------------------------------------- a real two-node cluster

@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory, monkeypatch_module):
    tmp = tmp_path_factory.mktemp("cluster")
    monkeypatch_module.setenv("RAYTUNE_FT_HOME", str(tmp / "home"))
    monkeypatch_module.delenv("RAY_ADDRESS", raising=False)
    monkeypatch_module.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    with running_cluster(tmp) as cluster:
        yield cluster


@pytest.mark.ray
def test_submitted_job_runs_trials_on_both_nodes(ray_cluster, resnet_weights, tmp_path):
    from raytune_ft.cluster import client as cluster
    from raytune_ft.results.tables import read_table

    # Everything of this cluster serves on loopback only.
    listening = ray_cluster.listeners()
    assert listening and all(ip in ("127.0.0.1", "::ffff:127.0.0.1") for ip, _, _ in listening), listening
    print("listening:", sorted(listening))

    shared = tmp_path / "shared"  # a path both nodes see
    spec = write_spec(tmp_path, resnet_weights, "two-nodes", epochs=1, samples=1,
                       strategies=[{"name": "full"}, {"name": "feature_extraction"}])
    started = time.monotonic()
    run_id = cluster.submit(spec, ray_cluster.address, storage=str(shared), project=ROOT)
    assert time.monotonic() - started < 60  # returns at once, the sweep runs on the cluster
    assert cluster.status(run_id)["status"] in ("PENDING", "RUNNING")  # the address remembered per run id

    final = cluster.wait(run_id, timeout_s=900, poll_s=3)
    log = []
    cluster.logs(run_id, out=log.append)
    (tmp_path / "job.log").write_text("".join(log))
    assert final["status"] == "SUCCEEDED", f"{final['message'][:300]}\nfull log: {tmp_path / 'job.log'}"
    assert "strategies by best val_accuracy" in "".join(log)

    run_dir = shared / run_id
    trials = read_table(run_dir / "trials.parquet")
    assert sorted(t["strategy"] for t in trials) == ["feature_extraction", "full"]
    assert all(t["status"] == "completed" and t["epochs_run"] == 1 for t in trials), [t["error"] for t in trials]
    assert {r["strategy"] for r in read_table(run_dir / "strategies.parquet")} == {"full", "feature_extraction"}
    assert all((run_dir / t["checkpoint_path"]).is_dir() for t in trials)  # kept by Ray Train on the shared path

    # One Train worker per trial, one CPU per node: the two trials' workers ran on the two nodes.
    nodes = {n["node_id"] for n in ray_cluster.nodes()}
    workers = [a for a in ray_cluster.actors("RayTrainWorker") if a.get("job_id") and a["node_id"]]
    assert {a["node_id"] for a in workers} == nodes, workers

    home = tmp_path / "home"
    dest, found = cluster.fetch(run_id, home)
    assert {"trials.parquet", "strategies.parquet", "job.yaml"} <= set(found)
    assert len(read_table(dest / "trials.parquet")) == 2

    out = _cli("status", run_id, env={"RAYTUNE_FT_HOME": os.environ["RAYTUNE_FT_HOME"], "RAY_ADDRESS": ""})
    assert out.returncode == 0 and "SUCCEEDED" in out.stdout


def _image_folder(root: Path, per_class: int) -> None:
    from PIL import Image

    for label, color in (("cat", (200, 40, 40)), ("dog", (40, 40, 200))):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (16, 16), tuple(c + 5 * i for c in color)).save(root / label / f"{i}.png")


@pytest.mark.ray
def test_submit_ships_the_job_and_never_a_credential(ray_cluster, resnet_weights, tmp_path):
    """Issue 13 §3: credentials planted in the project and in the data folder the spec names are in
    neither the package the cluster's GCS holds nor the nodes' unpacked copies of it; the job runs."""
    import uuid
    import zipfile

    from raytune_ft.cluster import client as cluster
    from raytune_ft.results.tables import read_table

    project = tmp_path / "project"
    _image_folder(project / "data" / "train", 8)
    _image_folder(project / "data" / "validation", 4)
    (project / "notes.txt").write_text("not named by the spec")
    planted = [".env", ".aws/credentials", ".ray/auth_token", "id_rsa", "service-account.json",
               "data/train/.env", "data/train/cat/service-account.json"]  # the last: no image, the job would fail
    markers = {}
    for rel in planted:
        markers[rel] = f"SECRET-{uuid.uuid4().hex}"
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(markers[rel])
    # the weights by their absolute path, as every node here sees it: a relative model path reaches the
    # Train workers as it is, and they run in their own folder (Ray Train's working-directory callback)
    spec = vision_spec(resnet_weights, name="ship", strategies=[{"name": "feature_extraction"}],
                       data={"source": "image_folder", "train": "data/train", "validation": "data/validation"},
                       training={"epochs": 1})
    spec["search"] = {"num_samples": 1, "scheduler": {"name": "none"}, "hparams": {"lr": 1e-3, "batch_size": 8}}
    spec["resources"] = {"workers_per_trial": 1, "cpus_per_worker": 1}
    (project / "jobs").mkdir()
    (project / "jobs" / "ship.yaml").write_text(yaml.safe_dump(spec))

    shared = tmp_path / "shared"
    home = {"RAYTUNE_FT_HOME": os.environ["RAYTUNE_FT_HOME"], "RAY_ADDRESS": ""}
    out = _cli("submit", "jobs/ship.yaml", "--address", ray_cluster.address, "--storage", str(shared),
               env=home, cwd=project, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = out.stdout.split()[0]
    assert "not shipped (looks like a credential): data/train/.env" in out.stderr, out.stderr
    assert "not shipped (looks like a credential): data/train/cat/service-account.json" in out.stderr

    # the package as the cluster holds it (read now: the GCS may drop it once the job has ended)
    uri = cluster.client(ray_cluster.address).get_job_info(run_id).runtime_env["working_dir"]
    assert uri.startswith("gcs://_ray_pkg_"), uri
    with zipfile.ZipFile(ray_cluster.package(uri, tmp_path / "package.zip")) as zf:
        names = {n for n in zf.namelist() if not n.endswith("/")}
        contents = b"".join(zf.read(n) for n in names)
    print("shipped:", len(names), "files;", *sorted(n for n in names if not n.startswith("raytune_ft/")))
    assert {"jobs/ship.yaml", "data/train/cat/0.png", "data/validation/dog/3.png", "raytune_ft/cli/__init__.py",
            "raytune_ft/cluster/entry.py"} <= names
    assert {n.split("/")[0] for n in names} == {"raytune_ft", "jobs", "data"}  # not notes.txt
    planted_names = {part for rel in planted for part in rel.split("/")} - {"data", "train", "cat"}
    assert not [n for n in names if planted_names & set(n.split("/"))], planted_names
    assert not [rel for rel, marker in markers.items() if marker.encode() in contents]

    final = cluster.wait(run_id, timeout_s=900, poll_s=3)
    log = []
    cluster.logs(run_id, out=log.append)
    (tmp_path / "job.log").write_text("".join(log))
    assert final["status"] == "SUCCEEDED", f"{final['message'][:300]}\nfull log: {tmp_path / 'job.log'}"
    trials = read_table(shared / run_id / "trials.parquet")
    assert [t["status"] for t in trials] == ["completed"], [t["error"] for t in trials]

    # the nodes' unpacked copies: the head's (it ran the driver) is there, and no node holds a secret
    unpacked, leaked = [], []
    for node in ray_cluster.temp_dirs:
        for folder, _, files in os.walk(node):
            if "runtime_resources" not in Path(folder).parts:
                continue
            for name in files:
                path = Path(folder, name)
                unpacked.append(path)
                try:
                    data = path.read_bytes() if path.is_file() else b""
                except OSError:  # a socket, a file removed meanwhile
                    data = b""
                leaked += [(str(path), rel) for rel, marker in markers.items() if marker.encode() in data]
    assert any(p.as_posix().endswith("/jobs/ship.yaml") and ray_cluster.temp_dirs[0] in p.parents for p in unpacked)
    assert not leaked, leaked


@pytest.mark.ray
def test_stop_ends_a_running_job_and_frees_the_cluster(ray_cluster, resnet_weights, tmp_path):
    from raytune_ft.cluster import client as cluster

    spec = write_spec(tmp_path, resnet_weights, "long", epochs=200, samples=4,
                       strategies=[{"name": "full"}, {"name": "feature_extraction"}])
    run_id = cluster.submit(spec, ray_cluster.address, storage=str(tmp_path / "shared"), project=ROOT)
    run_dir = tmp_path / "shared" / run_id
    ray_cluster.wait_for(lambda: (run_dir / "epochs.parquet").exists(), 900, "the first epoch")
    assert cluster.status(run_id)["status"] == "RUNNING"

    out = _cli("stop", run_id, env={"RAYTUNE_FT_HOME": os.environ["RAYTUNE_FT_HOME"], "RAY_ADDRESS": ""},
               timeout=300)
    assert out.returncode == 0 and "STOPPED" in out.stdout, out.stdout + out.stderr
    assert cluster.status(run_id)["status"] == "STOPPED"

    # Nothing of the run is left: no live actor but Ray's per-cluster singletons, every CPU free.
    def freed():
        alive = [a["class_name"] for a in ray_cluster.actors(state="ALIVE") if a["class_name"] not in RAY_SINGLETONS]
        total, free = ray_cluster.resources()
        return not alive and free.get("CPU") == total.get("CPU") == 2
    ray_cluster.wait_for(freed, 120, "the stopped run's actors and CPUs to be released")
