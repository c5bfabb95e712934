"""End to end on a real local Ray cluster (2 CPUs): the sweep, ASHA stopping, the tables, no leaks."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from raytune_ft.results.tables import read_table
from raytune_ft.spec import parse_job
from tests.conftest import text_spec, vision_spec

pytestmark = pytest.mark.ray


@pytest.fixture
def ray_session():
    import ray

    yield
    ray.shutdown()


RAY_SINGLETONS = {"_AutoscalingCoordinatorActor"}  # one per cluster, created by Ray Train, holds nothing


def started_actors(state: str | None = None) -> list[str]:
    """Class names of the actors the cluster started (in `state`), other than Ray's per-cluster singletons.
    Ray's GCS actor table: the local cluster runs no dashboard for the State API."""
    from ray._private import state as gcs

    return [a["ActorClassName"] for a in gcs.actors(actor_state_name=state).values()
            if a["ActorClassName"] not in RAY_SINGLETONS]


def trial_actors() -> list[str]:
    """Class names of live actors other than Ray's per-cluster singletons."""
    return started_actors("ALIVE")


@pytest.fixture(params=["fast_path", "public_path"])
def trial_path(request, monkeypatch):
    """Each of the two ways a trial runs (raytune_ft/internals.py): the fast path where this Ray is a tested
    release, and Ray's documented TorchTrainer (RAYTUNE_FT_RAY_FAST_PATH=0, and every other release)."""
    from raytune_ft import internals

    if request.param == "public_path":
        monkeypatch.setenv(internals.FAST_PATH_ENV, "0")
    else:
        monkeypatch.delenv(internals.FAST_PATH_ENV, raising=False)
        if not internals.fast_path():
            pytest.skip(f"the fast path runs only on Ray {', '.join(internals.TESTED_RAY)}")
    return request.param


def epoch_kinds(run_dir: Path) -> set[tuple[int, str]]:
    """(world_size, Accelerate's distributed_type) of every epoch the run's trials reported."""
    import json

    state = json.loads((run_dir / "sweep_state.json").read_text())
    return {(m["world_size"], m["distributed_type"]) for rec in state.values() for m in rec["history"]}


def test_asha_sweep_finishes_and_frees_everything(resnet_weights, tmp_path, ray_session, trial_path):
    """9 trials, ASHA stops most of them; on 2 CPUs every trial still gets its worker and nothing leaks,
    on either path a trial can take."""
    from raytune_ft.sweep.ray_setup import live_placement_groups
    from raytune_ft.sweep.run import run_sweep
    from raytune_ft.train.model import load_trial_model

    spec = vision_spec(resnet_weights, training={"epochs": 3})
    spec["strategies"][2]["r"] = {"choice": [2, 4]}
    spec["search"] = {"num_samples": 3, "seed": 1, "scheduler": {"name": "asha", "grace_period": 1},
                      "hparams": {"lr": {"loguniform": [1e-5, 1e-2]}, "batch_size": 32}}
    job = parse_job(spec)
    lines = []
    rows = run_sweep(job, tmp_path / "run", printer=lines.append, num_cpus=2)

    trials = read_table(tmp_path / "run" / "trials.parquet")
    assert len(trials) == len(rows) == 9
    assert sorted({t["strategy"] for t in trials}) == ["feature_extraction", "full", "lora"]
    stopped = [t for t in trials if t["status"] == "stopped_early"]
    assert stopped, "ASHA stopped no trial"
    assert all(t["status"] in ("completed", "stopped_early") for t in trials), [t["error"] for t in trials]
    for t in trials:
        assert t["epochs_run"] == 3 if t["status"] == "completed" else 1 <= t["epochs_run"] < 3
        assert t["trainable_params"] <= t["total_params"] and t["wall_seconds"] > 0 and t["samples_per_sec"] > 0
        assert 0 <= t["score"] <= 1 and t["score"] == t["best_val_accuracy"] and t["lr"] > 0
        assert (t["lora.r"] in (2, 4)) == (t["strategy"] == "lora")
    fe = [t for t in trials if t["strategy"] == "feature_extraction"]
    assert all(t["trainable_params"] == 512 * 10 + 10 for t in fe)
    curves = read_table(tmp_path / "run" / "epochs.parquet")  # one row per epoch each trial reported
    assert sorted((c["trial_id"], c["epoch"]) for c in curves) == sorted(
        (t["trial_id"], e) for t in trials for e in range(1, t["epochs_run"] + 1))
    status = {t["trial_id"]: t["status"] for t in trials}
    assert all(c["status"] == status[c["trial_id"]] and c["val_accuracy"] is not None for c in curves)

    table = read_table(tmp_path / "run" / "strategies.parquet")
    assert {r["strategy"]: r["trials"] for r in table} == {"full": 3, "feature_extraction": 3, "lora": 3}
    assert sum(r["stopped_early"] for r in table) == len(stopped)
    scores = [r["best_score"] for r in table]
    assert scores == sorted(scores, reverse=True)
    winner = table[0]
    best_trial = next(t for t in trials if t["trial_id"] == winner["best_trial_id"])
    assert best_trial["score"] == winner["best_score"]
    best = next(t for t in trials if t["trial_id"] == winner["best_trial_id"])
    assert not Path(best["checkpoint_path"]).is_absolute()  # relative to the run folder: the folder can move
    # what is kept once the search ended: each strategy's best trial's best weights, no optimizer state
    kept = {t["trial_id"] for t in trials if t["checkpoint_bytes"]}
    assert kept == {r["best_trial_id"] for r in table}
    folders = sorted(p for p in (tmp_path / "run" / "ray").glob("train-*/checkpoint_*") if p.is_dir())
    assert len(folders) == len(kept) and not list((tmp_path / "run" / "ray").glob("train-*/checkpoint_*/resume.pt"))
    model, config = load_trial_model(best["checkpoint_path"], run_dir=tmp_path / "run")  # where Ray keeps it
    assert config.strategy["name"] == winner["strategy"]
    assert any("stopped early" in line for line in lines)
    # a trial of one worker trains as one plain process on either path: Accelerate wraps nothing in DDP
    assert epoch_kinds(tmp_path / "run") == {(1, "DistributedType.NO")}

    # Nothing of ours is left: no placement group, every CPU free again, and (give Ray's cleaners a
    # moment to exit) no live actor of a trial. Ray's own per-cluster singletons may stay.
    import ray

    assert live_placement_groups() == []
    deadline = time.monotonic() + 90  # on the public path Ray's PlacementGroupCleaners once took over 30 s to go
    while trial_actors() and time.monotonic() < deadline:
        time.sleep(1)
    assert trial_actors() == []
    assert ray.available_resources().get("CPU") == ray.cluster_resources()["CPU"] == 2

    from collections import Counter

    started = Counter(started_actors())
    if trial_path == "fast_path":
        # A trial costs one process besides its Train worker, plus Train's SynchronizationActor: no
        # controller, queue, placement-group cleaner or dataset manager actor of its own (internals.py).
        assert started == {"ImplicitFunc": 9, "RayTrainWorker": 9, "SynchronizationActor": 9}, started
    else:
        # Ray's own TorchTrainer: each trial's TrainController actor (and Ray's helpers), every one gone now
        assert started["ImplicitFunc"] == started["TrainController"] == started["RayTrainWorker"] == 9, started

    # Everything the local cluster started listens on loopback only (GCS, raylet, dashboard, agents, workers).
    # On the public path a trial's workers form a torch process group, whose TCPStore listens on every
    # interface while the trial runs (torch binds it so): a worker still exiting may hold it a moment.
    import psutil

    def command(pid: int) -> str:
        try:
            return " ".join(psutil.Process(pid).cmdline())[:200]
        except psutil.Error:
            return "(exited)"

    def beyond_loopback():
        ours = {p.pid for p in psutil.Process().children(recursive=True)}
        listening = [(c.laddr.ip, c.laddr.port, c.pid) for c in psutil.net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN and c.pid in ours]
        assert len(listening) >= 3, listening
        return [(ip, port, command(pid)) for ip, port, pid in listening if ip not in ("127.0.0.1", "::ffff:127.0.0.1")]

    deadline = time.monotonic() + 30
    while (beyond := beyond_loopback()) and time.monotonic() < deadline:
        time.sleep(1)
    assert not beyond, beyond
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}


def test_cli_run_on_text_survives_failing_trials(tiny_bert, text_csvs, tmp_path, monkeypatch):
    """The CLI end to end on a tiny BERT; one strategy's trials fail, the sweep and its tables don't."""
    import os

    spec = text_spec(tiny_bert, text_csvs, training={"epochs": 2}, output_dir=str(tmp_path / "runs"))
    spec["strategies"] = [{"name": "full"}, {"name": "lora", "r": 2}, {"name": "feature_extraction"}]
    spec["search"] = {"num_samples": 2, "metric": "val_f1", "scheduler": {"name": "none"},
                      "hparams": {"lr": {"choice": [3e-3, 1e-3]}, "batch_size": 16}}
    spec["tracking"] = {"mlflow": True, "tensorboard": True}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    run_dir = tmp_path / "runs" / "r1"
    env = {**os.environ, "RAYTUNE_FT_INJECT_FAULT": "lora:nan"}  # every lora trial's loss turns NaN
    out = subprocess.run([sys.executable, "-m", "raytune_ft.cli", "run", str(path), "--run-dir", str(run_dir)],
                         capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "strategies by best val_f1" in out.stdout and "FAILED" in out.stdout
    # quiet without --verbose: our lines, not transformers' progress bars nor Ray's token-auth notice
    assert "Loading weights" not in out.stdout + out.stderr and "Token authentication" not in out.stdout + out.stderr
    assert "worker processes have been started" not in out.stdout + out.stderr
    assert "Failed to fetch metrics" not in out.stderr  # Tune reads its result.json back (tracking_callbacks)

    trials = read_table(run_dir / "trials.parquet")
    assert len(trials) == 6
    by = {s: [t for t in trials if t["strategy"] == s] for s in ("full", "lora", "feature_extraction")}
    assert all(t["status"] == "error" and "training loss became nan" in t["error"] for t in by["lora"])
    assert all(t["status"] == "completed" and t["epochs_run"] == 2 for t in by["full"] + by["feature_extraction"])
    table = {r["strategy"]: r for r in read_table(run_dir / "strategies.parquet")}
    assert table["lora"]["errored"] == 2 and table["lora"]["best_score"] is None
    assert table["full"]["completed"] == 2 and table["full"]["best_score"] >= table["full"]["mean_score"]
    assert yaml.safe_load((run_dir / "job.yaml").read_text())["search"]["metric"] == "val_f1"
    assert all(t["error_reason"].startswith("FloatingPointError: training loss became nan") for t in by["lora"])
    progress = [ln for ln in out.stdout.splitlines() if " epoch 2/2 " in ln]
    assert len(progress) == 4 and all("ended" in ln and "| best:" in ln for ln in progress)
    assert "\x1b[" not in "".join(progress)  # not a terminal: plain lines, no live view

    # tracking: one MLflow run per trial (a file store in the run folder), TensorBoard event files
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.tracking.MlflowClient((run_dir / "mlruns").as_uri())
    runs = client.search_runs([client.get_experiment_by_name(spec["name"]).experiment_id])
    assert len(runs) == 6 and sum("val_f1" in r.data.metrics for r in runs) == 4
    assert len(list((run_dir / "ray" / "tune").glob("*/events.out.tfevents.*"))) == 6
    again = subprocess.run([sys.executable, "-m", "raytune_ft.cli", "run", str(path), "--run-dir", str(run_dir)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "already holds a run" in again.stderr


def test_a_strategy_that_does_not_fit_fails_before_ray_starts(tiny_bert, text_csvs, tmp_path):
    spec = text_spec(tiny_bert, text_csvs, output_dir=str(tmp_path / "runs"))
    spec["strategies"] = [{"name": "full"}, {"name": "lora", "target_modules": ["no_such_module"]}]
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = subprocess.run([sys.executable, "-m", "raytune_ft.cli", "run", str(path), "--run-dir", str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    # refused while the spec is validated (the model's skeleton on the meta device), before the pre-flight
    assert "strategies[1].target_modules" in out.stderr and "no_such_module" in out.stderr
    assert not (tmp_path / "r" / "ray").exists()


def test_bad_data_fails_before_ray_starts(tiny_bert, text_csvs, tmp_path):
    text_csvs["train"].write_text("text,label\ngood,pos\nbad,neg\n,pos\n")
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(text_spec(tiny_bert, text_csvs, output_dir=str(tmp_path / "runs"))))
    out = subprocess.run([sys.executable, "-m", "raytune_ft.cli", "run", str(path), "--run-dir", str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "train.csv row 2: column 'text' is empty" in out.stderr
    assert not (tmp_path / "r" / "ray").exists()  # no trial, no Ray


def test_every_strategy_on_local_ray(tiny_bert, text_csvs, tmp_path, ray_session):
    """The whole catalogue on a tiny BERT, one trial each, then the test-split reports."""
    from raytune_ft.sweep.run import run_sweep
    from raytune_ft.strategies import STRATEGIES

    names = [n for n in STRATEGIES.names() if not STRATEGIES.get(n).needs_cuda]  # qlora: a CUDA GPU only
    spec = text_spec(tiny_bert, text_csvs, training={"epochs": 2})
    spec["strategies"] = [{"name": n} if n != "peft" else {"name": "peft", "method": "lokr", "config": {"r": 2}}
                          for n in names]
    spec["search"] = {"num_samples": 1, "scheduler": {"name": "asha"},
                      "hparams": {"lr": 3e-3, "batch_size": 16, "head_lr_mult": 2.0}}
    rows = run_sweep(parse_job(spec), tmp_path / "run", printer=lambda line: None, num_cpus=2)
    assert sorted(r["strategy"] for r in rows) == sorted(names)
    assert [r["error"] for r in rows if r["status"] == "error"] == []
    table = read_table(tmp_path / "run" / "strategies.parquet")
    assert len(table) == len(names)
    assert all(0 <= r["test_accuracy"] <= 1 and r["test_f1"] is not None for r in table)
    assert all((tmp_path / "run" / "reports" / r["strategy"] / "test_report.json").exists() for r in table)
    fractions = {r["strategy"]: r["trainable_fraction"] for r in table}
    assert fractions["full"] == 1.0 and fractions["feature_extraction"] < fractions["lora"] < 1.0


def test_two_workers_per_trial(tiny_bert, text_csvs, tmp_path, ray_session, monkeypatch):
    """Data-parallel trial (2 Train workers, DDP over gloo) with gradual unfreezing; the model given by a
    path relative to the folder the job runs in, which every worker finds (Ray moves none of them)."""
    import shutil

    from raytune_ft.sweep.run import run_sweep

    shutil.copytree(tiny_bert, tmp_path / "model")
    monkeypatch.chdir(tmp_path)
    spec = text_spec(Path("model"), text_csvs, training={"epochs": 2},
                     resources={"workers_per_trial": 2, "cpus_per_worker": 1})
    spec["strategies"] = [{"name": "gradual_unfreeze"}]
    spec["search"] = {"num_samples": 1, "scheduler": {"name": "none"}, "metric": "val_loss",
                      "hparams": {"lr": 3e-3, "batch_size": 8}}
    rows = run_sweep(parse_job(spec), tmp_path / "run", printer=lambda line: None, num_cpus=2)
    assert [(r["status"], r["epochs_run"]) for r in rows] == [("completed", 2)], rows[0]["error"]
    # val_loss is a mean per sample over the whole validation split, not a sum over workers
    assert 0.3 < rows[0]["best_val_loss"] < 1.5
    assert epoch_kinds(tmp_path / "run") == {(2, "DistributedType.MULTI_CPU")}  # DDP over Ray's process group


def test_fsdp_trial_of_two_workers(tiny_decoders, text_csvs, tmp_path, ray_session):
    """resources.distributed: fsdp under Ray Train (2 workers, gloo): every weight of the decoder trains, each
    worker holds half of the weights and of AdamW's state (epochs.parquet says so), each block is recomputed in
    the backward pass, and the whole-tensor checkpoint Ray stored reloads and scores the test split."""
    from raytune_ft.sweep.run import run_sweep
    from raytune_ft.train.model import load_trial_model

    spec = text_spec(tiny_decoders["llama"], text_csvs, training={"epochs": 2},
                     resources={"workers_per_trial": 2, "cpus_per_worker": 1, "distributed": "fsdp"})
    spec["strategies"] = [{"name": "full"}]
    spec["search"] = {"num_samples": 1, "scheduler": {"name": "none"}, "metric": "val_loss",
                      "hparams": {"lr": 3e-3, "batch_size": 8, "gradient_checkpointing": True}}
    rows = run_sweep(parse_job(spec), tmp_path / "run", printer=lambda line: None, num_cpus=2)
    assert [(r["status"], r["epochs_run"]) for r in rows] == [("completed", 2)], rows[0]["error"]
    assert rows[0]["trainable_params"] == rows[0]["total_params"]
    assert epoch_kinds(tmp_path / "run") == {(2, "DistributedType.FSDP")}
    curves = read_table(tmp_path / "run" / "epochs.parquet")
    total = rows[0]["total_params"]
    assert all(c["distributed_type"] == "DistributedType.FSDP" for c in curves)
    assert all(0.45 < c["param_bytes"] / (4 * total) < 0.56 and 0.45 < c["optimizer_bytes"] / (8 * total) < 0.56
               for c in curves), curves
    model, _ = load_trial_model(rows[0]["checkpoint_path"], run_dir=tmp_path / "run")
    assert sum(p.numel() for p in model.parameters()) == total
    (table,) = read_table(tmp_path / "run" / "strategies.parquet")
    assert table["test_accuracy"] is not None  # the test split, scored on the reloaded best checkpoint


def test_a_worker_that_dies_goes_on_from_its_last_epoch(resnet_weights, tmp_path, ray_session, monkeypatch):
    """Ray Train starts the dead worker group again; the trial goes on from its latest checkpoint Ray had
    taken (epoch 1 or 2), not from scratch."""
    from raytune_ft.sweep.run import run_sweep

    monkeypatch.setenv("RAYTUNE_FT_INJECT_FAULT", "full:exit_once")  # os._exit at epoch 3, first time only
    spec = vision_spec(resnet_weights, training={"epochs": 3})
    spec["strategies"] = [{"name": "full"}]
    spec["search"] = {"num_samples": 1, "scheduler": {"name": "none"}, "hparams": {"lr": 1e-3, "batch_size": 32}}
    rows = run_sweep(parse_job(spec), tmp_path / "run", printer=lambda line: None, num_cpus=2)
    assert [(r["status"], r["epochs_run"], r["resumes"]) for r in rows] == [("completed", 3, 1)], rows[0]["error"]
    curves = read_table(tmp_path / "run" / "epochs.parquet")
    assert [c["epoch"] for c in curves] == [1, 2, 3]
    assert (tmp_path / "run" / "trials" / rows[0]["trial_id"] / ".fault_injected").exists()


def test_sigkilled_sweep_resumes_without_rerunning_finished_trials(resnet_weights, tmp_path):
    """The driver and its local Ray are SIGKILLed mid-sweep (as in a reboot); `resume` finishes the sweep."""
    import os
    import signal

    from raytune_ft.sweep.records import fold, read_events

    # 6 epochs: a trial's start-up is short now (sweep/trial.py), so a trial must be long enough to be
    # part-way through when another ends
    spec = vision_spec(resnet_weights, training={"epochs": 6}, output_dir=str(tmp_path / "runs"))
    spec["strategies"] = [{"name": "feature_extraction"}, {"name": "full"}]
    # 3 trials a strategy: 5 trial ends to kill at; with 2, two ends could each come while the other
    # trial had no epoch yet or had run its last (seen once in a full-suite run: the sweep ended unkilled)
    spec["search"] = {"num_samples": 3, "seed": 3, "scheduler": {"name": "asha", "grace_period": 1},
                      "hparams": {"lr": {"choice": [1e-3, 3e-3]}, "batch_size": 32}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    run_dir = tmp_path / "run"
    cli = [sys.executable, "-m", "raytune_ft.cli"]
    driver = subprocess.Popen([*cli, "run", str(path), "--run-dir", str(run_dir)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    events, deadline, seen = run_dir / "sweep_events.jsonl", time.monotonic() + 600, set()
    try:
        # Kill within half a second of a trial's end while another is part-way through: Tune saves
        # its own state every few seconds, so it may not know yet that the trial ended. What the sweep
        # knows is its event log (sweep_state.json is a compaction of it, written at a bounded rate).
        while time.monotonic() < deadline:
            state = fold(read_events(events)) if events.exists() else {}
            ended = [t for t, r in state.items() if r["status"] != "running"]
            midway = [t for t, r in state.items() if r["status"] == "running" and 1 <= len(r["history"]) < 6]
            if set(ended) - seen and midway:
                break
            seen |= set(ended)
            assert driver.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail("no trial ended within 10 minutes")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and every Ray process it started, at once
        driver.wait()
    # the tables may lag the records by the moment between their two atomic writes
    tables = run_dir / "trials.parquet"
    before = {t["trial_id"]: t for t in read_table(tables)} if tables.exists() else {}
    assert set(before) <= set(ended)

    again = subprocess.run([*cli, "run", str(path), "--run-dir", str(run_dir)], capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 2 and f"raytune-ft resume {run_dir}" in again.stderr

    out = subprocess.run([*cli, "resume", str(run_dir)], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "resuming:" in out.stdout
    trials = read_table(run_dir / "trials.parquet")
    ids = [t["trial_id"] for t in trials]
    assert len(ids) == len(set(ids)) == 6  # exactly one row per trial
    assert all(t["status"] in ("completed", "stopped_early") for t in trials), [t["error"] for t in trials]
    by_id = {t["trial_id"]: t for t in trials}
    for tid in ended:  # trials that had ended are not run again
        assert (by_id[tid]["status"], by_id[tid]["epochs_run"]) == (state[tid]["status"], len(state[tid]["history"]))
    for tid, row in before.items():
        assert {k: by_id[tid][k] for k in ("status", "score", "epochs_run", "wall_seconds")} == \
               {k: row[k] for k in ("status", "score", "epochs_run", "wall_seconds")}
    resumed = [by_id[t] for t in midway if t in by_id]
    assert resumed and all(t["resumes"] >= 1 for t in resumed)  # went on from its last epoch
    curves = read_table(run_dir / "epochs.parquet")
    pairs = [(c["trial_id"], c["epoch"]) for c in curves]
    assert len(pairs) == len(set(pairs)) == sum(t["epochs_run"] for t in trials)


def test_a_job_whose_every_trial_fails_exits_1_with_the_reasons(resnet_weights, tmp_path):
    import os

    spec = vision_spec(resnet_weights, training={"epochs": 1}, output_dir=str(tmp_path / "runs"))
    spec["strategies"] = [{"name": "full"}]
    spec["search"] = {"num_samples": 1, "scheduler": {"name": "none"}, "hparams": {"lr": 1e-3, "batch_size": 32}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "RAYTUNE_FT_INJECT_FAULT": "full:raise"}
    out = subprocess.run([sys.executable, "-m", "raytune_ft.cli", "run", str(path), "--run-dir", str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    assert "every trial failed: ValueError: fault injected by RAYTUNE_FT_INJECT_FAULT for strategy full" in out.stderr
    (trial,) = read_table(tmp_path / "r" / "trials.parquet")
    assert trial["status"] == "error" and trial["error_reason"].startswith("ValueError: fault injected")
