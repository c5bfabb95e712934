"""A run on bucket storage through a real S3 API (issue 12): moto's server on 127.0.0.1 is the bucket,
its endpoint given the standard way (AWS_ENDPOINT_URL, as for any S3-compatible store) to every node of
a two-node loopback cluster, the run submitted with `--storage s3://...` and fetched back.

What it proves: Ray Train writes each trial's checkpoints into the bucket and prunes them there
(`CheckpointConfig`: the best and the latest stay), the test split is evaluated from the bucket's
checkpoints, `fetch` brings the tables and reports home, and each best checkpoint reloads from its
s3:// URI. Nothing of it talks to anything but 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.cluster_fixture import BUCKET, ConnectionWatch, cli, process_tree, running_cluster, s3, write_spec  # noqa: F401 (s3: a fixture)

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def s3_cluster(s3, tmp_path_factory, monkeypatch_module):
    """The two-node loopback cluster, started with the bucket's environment; and a watch, from before it
    starts, on where any process of the test connects to."""
    tmp = tmp_path_factory.mktemp("s3-cluster")
    monkeypatch_module.setenv("RAYTUNE_FT_HOME", str(tmp / "home"))
    monkeypatch_module.delenv("RAY_ADDRESS", raising=False)
    monkeypatch_module.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    clusters = []
    with ConnectionWatch(lambda: process_tree(os.getpid()) | set(clusters[0].processes() if clusters else ())) as watch:
        with running_cluster(tmp, env=s3.env) as cluster:
            clusters.append(cluster)
            cluster.watch = watch
            yield cluster


def test_run_on_s3_storage_evaluates_and_keeps_its_checkpoints_in_the_bucket(s3_cluster, s3, resnet_weights,
                                                                              tmp_path):
    import torch

    from raytune_ft.cluster import client as cluster
    from raytune_ft.cluster import storage
    from raytune_ft.data import load_meta, load_split
    from raytune_ft.results.evaluation import evaluate_trial
    from raytune_ft.results.tables import read_table
    from raytune_ft.train import load_trial_model
    from raytune_ft.train.evaluate import model_inputs

    strategies = ["full", "feature_extraction"]
    # three epochs: Ray keeps two checkpoints at most (best, latest), so at least one is pruned from the bucket
    epochs = 3
    spec = write_spec(tmp_path, resnet_weights, "on-s3", epochs=epochs, samples=1,
                      strategies=[{"name": s} for s in strategies])
    out = cli("submit", spec, "--address", s3_cluster.address, "--storage", f"s3://{BUCKET}/runs")
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = out.stdout.split()[0]
    try:
        final = cluster.wait(run_id, timeout_s=900, poll_s=3)
        log = []
        cluster.logs(run_id, out=log.append)
        (tmp_path / "job.log").write_text("".join(log))
        assert final["status"] == "SUCCEEDED", "".join(log)[-4000:]
        assert "test split, best trial of each strategy" in "".join(log), tmp_path / "job.log"

        # fetch: the tables and the test-split reports, from the bucket
        home = tmp_path / "home"
        out = cli("fetch", run_id, "--storage", f"s3://{BUCKET}/runs", "--output", home)
        assert out.returncode == 0, out.stdout + out.stderr
        assert {"trials.parquet", "strategies.parquet", "epochs.parquet", "job.yaml", "reports"} <= \
            {p.name for p in home.iterdir()}
        table = read_table(home / "strategies.parquet")
        assert sorted(r["strategy"] for r in table) == sorted(strategies)
        for row in table:
            assert row["test_accuracy"] is not None and 0.0 <= row["test_accuracy"] <= 1.0, row
            report = json.loads((home / "reports" / row["strategy"] / "test_report.json").read_text())
            assert report["trial_id"] == row["best_trial_id"] and report["accuracy"] == row["test_accuracy"]

        # the prepared data went to the bucket too (workers of other nodes read it there)
        data = tmp_path / "data"
        assert storage.download_dir(f"s3://{BUCKET}/runs/{run_id}/data", data)
        meta, test = load_meta(data), load_split(data, "test")
        batch = {k: v[:8] for k, v in test.items()}

        trials = read_table(home / "trials.parquet")
        assert len(trials) == len(strategies)
        best_of = {r["best_trial_id"]: r for r in table}
        for t in trials:
            assert t["status"] == "completed" and t["epochs_run"] == epochs, t["error"]
            trial_prefix = f"runs/{run_id}/ray/train-{t['trial_id']}/"
            uri = t["checkpoint_path"]
            assert uri.startswith(f"s3://{BUCKET}/{trial_prefix}checkpoint_"), uri

            # each best checkpoint rebuilds its model from the bucket, and the model runs
            model, config = load_trial_model(uri)
            assert config.strategy["name"] == t["strategy"]
            with torch.no_grad():
                logits = model(**model_inputs(batch, meta, torch.device("cpu")))
            assert logits.shape == (8, len(meta["classes"])) and torch.isfinite(logits).all()
            if t["trial_id"] in best_of:  # what the run scored on the test split is this checkpoint's score
                assert evaluate_trial(uri, data)["accuracy"] == pytest.approx(best_of[t["trial_id"]]["test_accuracy"])

            # in the bucket, only what is kept once the trial ended: its best epoch's weights (Ray kept the
            # best and the latest while it ran; sweep/retention.py drops the latest and the optimizer state)
            keys = s3.keys(trial_prefix)
            # checkpoint folders only (Ray also keeps its checkpoint_manager_snapshot.json beside them)
            folders = sorted({k[len(trial_prefix):].split("/")[0] for k in keys
                              if k[len(trial_prefix):].startswith("checkpoint_") and "/" in k[len(trial_prefix):]})
            print(t["trial_id"], "in the bucket:", *sorted(k[len(trial_prefix):] for k in keys), sep="\n  ")
            kept = {json.loads(s3.read(f"{trial_prefix}{f}/trial.json"))["epoch"]: f for f in folders}
            assert set(kept) == {t["best_epoch"]} and len(folders) == 1, folders
            assert uri.rstrip("/").rsplit("/", 1)[1] == kept[t["best_epoch"]]
            assert not [k for k in keys if k.endswith("/resume.pt")], keys
            assert t["checkpoint_bytes"] == sum(s3.size(k) for k in keys if "/checkpoint_" in k)

        # Ray wrote the checkpoints to the bucket itself: none in the head's local copy of the run folder
        local = Path(cluster.LOCAL_RUNS_ON_HEAD) / run_id
        assert local.is_dir() and not list(local.rglob("model.safetensors")), sorted(local.rglob("*"))[:20]
    finally:
        shutil.rmtree(Path(cluster.LOCAL_RUNS_ON_HEAD) / run_id, ignore_errors=True)

    # nothing of the test left 127.0.0.1: no connection to, and no socket listening on, another address
    # One exception, torch's and not ours: the rendezvous store of a trial's worker group (torch.distributed's
    # TCPStore, which Ray Train starts in the rank-0 worker) listens on every interface, and torch has no
    # setting for its bind address. It only listens: no connection to anything but 127.0.0.1 was seen.
    # The worker's name is its Ray process title: the actor's, or the task it runs at that moment
    # (`execute._setup_torch_process_group`, which starts the store); matched on its first 15 characters,
    # as psutil falls back to the kernel's truncated comm ("ray::RayTrainWo") when the process's command
    # line cannot be read, as while it exits.
    watch = s3_cluster.watch
    worker_names = tuple(n[:15] for n in ("ray::RayTrainWorker", "ray::execute._setup_torch_process_group"))
    torch_store = {(name, ip, port) for name, ip, port in watch.outside
                   if name.startswith(worker_names) and ip in ("::", "0.0.0.0")}
    assert watch.seen > 0 and not watch.outside - torch_store, sorted(watch.outside)
