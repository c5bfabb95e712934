"""A node dies mid-epoch (issue 13): on a two-node loopback cluster with bucket storage (moto's S3 server),
two trials run, one a node; the node that is not the head is SIGKILLed (raylet, agents, workers: as a
machine that loses power) while its trial is between epochs 1 and 4. Ray Train starts that trial's worker
again on the head once the head's trial has finished, from the trial's last checkpoint in the bucket;
both trials complete, and the sweep's tables have each trial once and each epoch once.

The same idea as Ray's own chaos release test (nodes killed at random every few seconds), at test size.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.cluster_fixture import BUCKET, cli, running_cluster, s3, write_spec  # noqa: F401 (s3: a fixture)

pytestmark = pytest.mark.ray

EPOCHS = 4


def test_a_trial_whose_node_dies_goes_on_from_its_checkpoint_on_the_other_node(s3, resnet_weights, tmp_path,
                                                                                 monkeypatch):
    from raytune_ft.cluster import client as cluster
    from raytune_ft.results.tables import read_table
    from raytune_ft.sweep.records import fold, read_events

    monkeypatch.setenv("RAYTUNE_FT_HOME", str(tmp_path / "home"))
    for k in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        monkeypatch.delenv(k, raising=False)
    (tmp_path / "cluster").mkdir()
    with running_cluster(tmp_path / "cluster", env=s3.env) as ray_cluster:
        head = next(n["node_id"] for n in ray_cluster.nodes() if n["is_head_node"])
        spec = write_spec(tmp_path, resnet_weights, "node-dies", epochs=EPOCHS, samples=2,
                          strategies=[{"name": "full"}])
        out = cli("submit", spec, "--address", ray_cluster.address, "--storage", f"s3://{BUCKET}/runs")
        assert out.returncode == 0, out.stdout + out.stderr
        run_id = out.stdout.split()[0]
        events = Path(cluster.LOCAL_RUNS_ON_HEAD) / run_id / "sweep_events.jsonl"
        try:
            # the trial on the other node has checkpointed an epoch and is part-way through the next ones
            deadline, victim = time.monotonic() + 900, None
            while victim is None:
                assert time.monotonic() < deadline, "no trial reported an epoch from the second node in 15 minutes"
                assert cluster.status(run_id)["status"] in ("PENDING", "RUNNING"), cluster.status(run_id)
                records = fold(read_events(events)) if events.exists() else {}
                victim = next((tid for tid, r in records.items() if r["status"] == "running"
                               and 1 <= len(r["history"]) < EPOCHS and r["history"][-1]["node_id"] != head), None)
                time.sleep(0.5)
            dead_node = records[victim]["history"][-1]["node_id"]
            epochs_before = len(records[victim]["history"])
            ray_cluster.kill_node(1)

            final = cluster.wait(run_id, timeout_s=1500, poll_s=3)
            log = []
            cluster.logs(run_id, out=log.append)
            (tmp_path / "job.log").write_text("".join(log))
            assert final["status"] == "SUCCEEDED", "".join(log)[-4000:]

            home = tmp_path / "fetched"
            out = cli("fetch", run_id, "--storage", f"s3://{BUCKET}/runs", "--output", home)
            assert out.returncode == 0, out.stdout + out.stderr
            trials = read_table(home / "trials.parquet")
            ids = [t["trial_id"] for t in trials]
            assert len(ids) == len(set(ids)) == 2 and victim in ids  # every trial once
            for t in trials:
                assert (t["status"], t["epochs_run"]) == ("completed", EPOCHS), t["error"]
            by_id = {t["trial_id"]: t for t in trials}
            assert by_id[victim]["resumes"] >= 1  # went on from a checkpoint, not from scratch

            curves = read_table(home / "epochs.parquet")
            pairs = [(c["trial_id"], c["epoch"]) for c in curves]
            assert len(pairs) == len(set(pairs)) == 2 * EPOCHS  # every epoch once
            nodes = [c["node_id"] for c in sorted(curves, key=lambda c: c["epoch"]) if c["trial_id"] == victim]
            # the epochs it had reported came from the node that died; the last from the one that lived
            assert set(nodes[:epochs_before]) == {dead_node} and nodes[-1] == head, nodes
        finally:
            shutil.rmtree(Path(cluster.LOCAL_RUNS_ON_HEAD) / run_id, ignore_errors=True)
