"""How trials are made (no Ray cluster): Optuna per strategy, one seed per trial, the state Tune saves for
`resume`, and the warning when a strategy's space has fewer points than its trials."""
from __future__ import annotations

import math
import pickle
from collections import Counter
from types import SimpleNamespace

import pytest
import yaml
from typer.testing import CliRunner

from raytune_ft.results.tables import read_table
from raytune_ft.spec import parse_job
from tests.conftest import vision_spec

STRATEGIES = [{"name": "full"}, {"name": "feature_extraction"}, {"name": "lora", "r": {"choice": [2, 4]}}]


def job_of(resnet_weights, algorithm="random", num_samples=3, strategies=STRATEGIES, epochs=2, **hparams):
    spec = vision_spec(resnet_weights, strategies=strategies, training={"epochs": epochs})
    spec["search"] = {"algorithm": algorithm, "num_samples": num_samples, "seed": 7,
                      "hparams": {"lr": 1e-3, "batch_size": 32, **hparams}}
    return parse_job(spec)


def experiment(job, tmp_path, num_samples):
    from ray.tune.experiment import Experiment

    from raytune_ft.sweep.space import tune_param_space

    space = tune_param_space(job) if job.search.algorithm != "optuna" else {}
    return Experiment("t", lambda config: None, config=space, num_samples=num_samples, storage_path=str(tmp_path))


def search_alg(job, tmp_path, n_concurrent=100):
    """The search algorithm the driver gives Tune for this job, with its experiment added as Tune does."""
    from raytune_ft.sweep.search import make_search

    alg, num_samples = make_search(job, n_concurrent)
    alg.add_configurations([experiment(job, tmp_path, num_samples)])
    return alg


def drain(alg, limit=1000) -> list:
    trials = []
    while not alg.is_finished() and len(trials) < limit:
        trial = alg.next_trial()
        if trial is None:
            break
        trials.append(trial)
    return trials


def finish(alg, trial, score):
    alg.on_trial_result(trial.trial_id, {"val_accuracy": score, "training_iteration": 1, "epoch": 1})
    alg.on_trial_complete(trial.trial_id, {"val_accuracy": score, "training_iteration": 1, "epoch": 1})


# --------------------------------------------------------------------------- optuna: picklable, per strategy


def test_optuna_gives_every_strategy_exactly_num_samples_in_turn(resnet_weights, tmp_path):
    job = job_of(resnet_weights, "optuna", num_samples=4, lr={"loguniform": [1e-4, 1e-2]})
    alg = search_alg(job, tmp_path)
    trials = []
    for i in range(30):  # finish each trial before the next: TPE may favour a strategy, the budget may not
        batch = drain(alg, limit=1)
        if not batch:
            break
        trials += batch
        finish(alg, batch[0], score=0.9 if batch[0].config["strategy"]["name"] == "full" else 0.1)
    names = [t.config["strategy"]["name"] for t in trials]
    assert Counter(names) == {"full": 4, "feature_extraction": 4, "lora": 4} and alg.is_finished()
    assert names[:3] == ["full", "feature_extraction", "lora"]  # the strategies take turns
    lora = [t.config["strategy"] for t in trials if t.config["strategy"]["name"] == "lora"]
    assert all(s["r"] in (2, 4) and 1e-4 <= s["hparams"]["lr"] <= 1e-2 for s in lora)
    assert all(s["hparams"]["batch_size"] == 32 for s in (t.config["strategy"] for t in trials))


def test_optuna_search_state_is_saved_and_restored_as_tune_does_for_resume(resnet_weights, tmp_path):
    """Tune saves the searcher with plain pickle (a closure in it killed the sweep); a restored one goes on."""
    job = job_of(resnet_weights, "optuna", num_samples=3, lr={"loguniform": [1e-4, 1e-2]})
    alg = search_alg(job, tmp_path / "a", n_concurrent=2)
    first = drain(alg)
    assert len(first) == 2  # the concurrency limit
    finish(alg, first[0], 0.5)
    first += drain(alg)
    assert len(first) == 3
    (tmp_path / "state").mkdir()
    alg.save_to_dir(str(tmp_path / "state"), session_str="s")  # raised "Can't pickle local object" before
    pickle.dumps(alg.searcher.searcher)  # plain pickle of the whole searcher works too

    restored = search_alg(job, tmp_path / "b", n_concurrent=2)
    restored.restore_from_dir(str(tmp_path / "state"))
    for t in first[1:]:  # the trials that were running when the state was saved end after the resume
        finish(restored, t, 0.6)
    rest = []
    while not restored.is_finished():
        batch = drain(restored)
        assert batch, "the restored searcher stopped handing out trials"
        for t in batch:
            finish(restored, t, 0.7)
        rest += batch
    names = Counter(t.config["strategy"]["name"] for t in first + rest)
    assert names == {"full": 3, "feature_extraction": 3, "lora": 3}
    seeds = [t.config["seed"] for t in first + rest]
    assert len(set(seeds)) == 9  # the restored generator went on counting trials, no seed again


# --------------------------------------------------------------------------- one seed per trial


def test_every_trial_gets_its_own_seed_the_same_in_every_run(resnet_weights, tmp_path):
    """Constants x num_samples 8 used to give 8 identical trials per strategy (all with search.seed)."""
    job = job_of(resnet_weights, "random", num_samples=8)
    trials = drain(search_alg(job, tmp_path / "a"))
    assert len(trials) == 24
    seeds = [t.config["seed"] for t in trials]
    assert len(set(seeds)) == 24 and all(isinstance(s, int) and 0 <= s < 2**31 for s in seeds)
    again = [t.config["seed"] for t in drain(search_alg(job, tmp_path / "b"))]
    assert again == seeds  # deterministic: from search.seed and the trial's index
    other = job.model_copy(update={"search": job.search.model_copy(update={"seed": 8})})
    assert set(t.config["seed"] for t in drain(search_alg(other, tmp_path / "c"))).isdisjoint(seeds)


def test_seeds_go_on_after_a_restore_as_without_it(resnet_weights, tmp_path):
    job = job_of(resnet_weights, "grid", num_samples=2, batch_size={"grid": [16, 32]})
    whole = [t.config["seed"] for t in drain(search_alg(job, tmp_path / "a"))]
    assert len(whole) == 16 and len(set(whole)) == 16  # (2 + 2 + 2 x 2 points) x 2: repeats differ in seed
    alg = search_alg(job, tmp_path / "b")
    head = [t.config["seed"] for t in drain(alg, limit=5)]
    (tmp_path / "state").mkdir()
    alg.save_to_dir(str(tmp_path / "state"), session_str="s")
    restored = search_alg(job, tmp_path / "c")
    restored.restore_from_dir(str(tmp_path / "state"))
    assert head + [t.config["seed"] for t in drain(restored)] == whole


# --------------------------------------------------------------------------- the sweep's records and tables


def fake_trial(tid, name, seed):
    return SimpleNamespace(trial_id=tid, config={"strategy": {"name": name, "hparams": {"lr": 1e-3}}, "seed": seed},
                           error_file=None)


def test_tables_record_each_trials_seed_and_patience_stops(resnet_weights, tmp_path):
    from raytune_ft.layout import RunLayout
    from raytune_ft.sweep.callback import SweepCallback
    from raytune_ft.sweep.records import load_sweep_state

    job = job_of(resnet_weights, epochs=4)
    lines = []
    cb = SweepCallback(job, RunLayout(tmp_path), lines.append)
    ends = {"a": (11, [0.5, 0.6, 0.7, 0.8], None), "b": (22, [0.5], None), "c": (33, [0.5, 0.5], "patience")}
    for tid, (seed, accs, reason) in ends.items():
        trial = fake_trial(tid, "full", seed)
        cb.on_trial_start(0, [], trial)
        for i, acc in enumerate(accs):
            result = {"epoch": i + 1, "val_accuracy": acc, "train_loss": 1.0, "val_loss": 1.0, "val_f1": acc,
                      "train_seconds": 1.0, "samples_per_sec": 10.0, "peak_memory_mb": 1.0}
            if reason and i == len(accs) - 1:
                result["stop_reason"] = reason  # the worker's mark on its last report
            cb.on_trial_result(0, [], trial, result)
        cb.on_trial_complete(0, [], trial)
    cb.compact()  # as run_sweep does when the stage ends
    rows = {r["trial_id"]: r for r in read_table(tmp_path / "trials.parquet")}
    assert {t: (r["status"], r["seed"]) for t, r in rows.items()} == {
        "a": ("completed", 11), "b": ("stopped_early", 22), "c": ("stopped_patience", 33)}
    (full,) = read_table(tmp_path / "strategies.parquet")
    assert (full["completed"], full["stopped_early"], full["stopped_patience"], full["errored"]) == (1, 1, 1, 0)
    assert any("c full" in ln and "stopped by patience after 2 epoch(s)" in ln for ln in lines), lines
    assert "patience 1" in lines[-1]
    assert {t: r.seed for t, r in load_sweep_state(tmp_path).items()} == {"a": 11, "b": 22, "c": 33}
    epochs = read_table(tmp_path / "epochs.parquet")
    assert {e["status"] for e in epochs if e["trial_id"] == "c"} == {"stopped_patience"}


# --------------------------------------------------------------------------- fewer points than trials


def test_distinct_points_of_a_strategys_space(resnet_weights):
    from raytune_ft.sweep.checks import distinct_points

    job = job_of(resnet_weights, strategies=[
        {"name": "full"},
        {"name": "lora", "r": {"choice": [2, 4, 4]}, "alpha": {"choice": [8.0, 8, 16.0]}},
        {"name": "partial", "trainable_blocks": {"randint": [1, 3]}},
        {"name": "feature_extraction", "hparams": {"lr": {"loguniform": [1e-4, 1e-2]}}}])
    assert [distinct_points(job, i) for i in range(4)] == [1, 4, 3, math.inf]


def test_validate_and_run_warn_when_a_space_has_fewer_points_than_num_samples(resnet_weights, tmp_path, monkeypatch):
    from raytune_ft import cli

    spec = vision_spec(resnet_weights, strategies=[{"name": "full"}, {"name": "lora", "r": {"choice": [2, 4]}},
                                                   {"name": "feature_extraction",
                                                    "hparams": {"lr": {"uniform": [1e-3, 1e-2]}}}],
                       output_dir=str(tmp_path / "runs"))
    spec["search"] = {"num_samples": 8, "hparams": {"lr": 1e-3, "batch_size": 32}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    runner = CliRunner()
    out = runner.invoke(cli.app, ["validate", str(path)])
    assert out.exit_code == 0, out.output
    assert "ok" in out.stdout and "warning" not in out.stdout
    warnings = [ln for ln in out.stderr.splitlines() if ln.startswith("warning")]
    assert len(warnings) == 2, out.stderr
    assert "strategies[0] (full)" in warnings[0] and " 1 distinct" in warnings[0] and "num_samples 8" in warnings[0]
    assert "strategies[1] (lora)" in warnings[1] and " 2 distinct" in warnings[1]

    swept = []
    monkeypatch.setattr("raytune_ft.cli.local._sweep", lambda job, run_dir, **kw: swept.append(run_dir))
    out = runner.invoke(cli.app, ["run", str(path), "--run-dir", str(tmp_path / "r")])
    assert out.exit_code == 0 and swept and out.stderr.count("warning") == 2

    spec["search"]["num_samples"] = 2
    path.write_text(yaml.safe_dump(spec))
    out = runner.invoke(cli.app, ["validate", str(path)])
    assert out.exit_code == 0 and out.stderr.count("warning") == 1  # full still; lora's 2 points for 2 trials are fine
    assert "(full)" in out.stderr and "(lora)" not in out.stderr


def test_grid_repeats_are_named_as_such(resnet_weights):
    from raytune_ft.sweep.checks import repeat_warnings

    job = job_of(resnet_weights, "grid", num_samples=3, batch_size={"grid": [16, 32]},
                 strategies=[{"name": "full"}, {"name": "lora", "r": {"choice": [2, 4]}}])
    (line,) = repeat_warnings(job)  # lora: 2 x 2 = 4 points >= 3
    assert line.startswith("warning: strategies[0] (full): its grid has 2 point(s) and search.num_samples 3 runs "
                           "each 3 times")


def test_the_callback_hands_its_records_to_tune_and_takes_them_back(resnet_weights, tmp_path):
    """Tune saves a callback's get_state() with its experiment and calls set_state() on restore: the
    records come back, and the newer ones (read from sweep_state.json) are not overwritten."""
    from raytune_ft.layout import RunLayout
    from raytune_ft.sweep.callback import SweepCallback
    from raytune_ft.sweep.records import TrialRecord

    job = job_of(resnet_weights, epochs=2)
    cb = SweepCallback(job, RunLayout(tmp_path), lambda line: None)
    trial = fake_trial("a", "full", 7)
    cb.on_trial_start(0, [], trial)
    cb.on_trial_result(0, [], trial, {"epoch": 1, "val_accuracy": 0.5, "train_loss": 1.0, "val_loss": 1.0,
                                      "val_f1": 0.5, "train_seconds": 1.0, "samples_per_sec": 1.0,
                                      "peak_memory_mb": 1.0, "checkpoint_uri": "s3://b/r/ray/train-a/checkpoint_0"})
    state = cb.get_state()

    newer = TrialRecord(strategy={"name": "full"}, seed=7, history=[{"epoch": 1}, {"epoch": 2}])
    restored = SweepCallback(job, RunLayout(tmp_path), lambda line: None, records={"a": newer})
    restored.set_state(state)
    assert restored.records["a"] is newer  # what the event log had wins
    (tmp_path / "other").mkdir()
    fresh = SweepCallback(job, RunLayout(tmp_path / "other"), lambda line: None)
    fresh.set_state(state)
    assert fresh.records["a"].seed == 7
    # a bucket checkpoint is recorded by its URI, which load_trial_model reads back
    assert fresh.records["a"].history[0]["checkpoint_path"] == "s3://b/r/ray/train-a/checkpoint_0"
