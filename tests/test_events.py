"""The sweep's event log: appended per event, read back (a torn last line left out), folded into the
records, compacted into sweep_state.json and the tables; a resume starts from it."""
from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest

from raytune_ft.layout import RunLayout
from raytune_ft.results.progress import snapshot
from raytune_ft.results.tables import read_table
from raytune_ft.sweep.records import EventLog, fold, load_sweep_state, read_events

JOB = SimpleNamespace(name="events", search=SimpleNamespace(metric="val_accuracy", mode="max", num_samples=3),
                      training=SimpleNamespace(epochs=3), strategies=[SimpleNamespace(name="full")] * 2)


def trial(tid, name="full", seed=1):
    return SimpleNamespace(trial_id=tid, config={"strategy": {"name": name, "hparams": {"lr": 1e-3}}, "seed": seed},
                           error_file=None)


def result(epoch, acc, **more):
    return {"epoch": epoch, "val_accuracy": acc, "train_loss": 1.0, "val_loss": 1.0 - acc, "val_f1": acc,
            "train_seconds": 1.0, "samples_per_sec": 10.0, "peak_memory_mb": 1.0, **more}


def callback(run_dir, **kw):
    from raytune_ft.sweep.callback import SweepCallback

    run_dir.mkdir(parents=True, exist_ok=True)
    return SweepCallback(JOB, RunLayout(run_dir), lambda line: None, **kw)


def drive(cb):
    """A sweep's events: a completed trial, a worker restart that reports epoch 2 again, a stop by the
    scheduler, an error, and a trial still running."""
    a, b, c, d, e = trial("a", seed=1), trial("b", "lora", 2), trial("c", seed=3), trial("d", "lora", 4), trial("e")
    for t in (a, b, c):
        cb.on_trial_start(0, [], t)
    for i, acc in enumerate([0.5, 0.6, 0.7]):
        cb.on_trial_result(0, [], a, result(i + 1, acc, checkpoint_path=f"/ckpt/a/{i + 1}"))
    cb.on_trial_complete(0, [], a)
    cb.on_trial_result(0, [], b, result(1, 0.4, checkpoint_path="/ckpt/b/1"))
    cb.on_trial_result(0, [], b, result(2, 0.9, checkpoint_path="/ckpt/b/2"))
    cb.on_trial_result(0, [], b, result(2, 0.45, resumes=1))  # after the restart: no checkpoint in the report
    cb.on_trial_result(0, [], c, result(1, 0.3))
    cb.on_trial_complete(0, [], c)
    cb.on_trial_error(0, [], d)  # its actor never started
    cb.on_trial_start(0, [], e)
    cb.on_trial_result(0, [], e, result(1, 0.55))
    return a, b, c, d, e


# --------------------------------------------------------------------------- the log


def test_a_torn_last_line_is_left_out_and_a_bad_line_elsewhere_is_an_error(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    log.append({"event": "trial", "trial": "a", "record": {"history": []}})
    log.append({"event": "drop", "trial": "a"})
    log.close()
    with open(tmp_path / "events.jsonl", "ab") as f:
        f.write(b'{"event": "epoch", "trial": "a", "metr')  # the driver was killed mid-line
    assert [e["event"] for e in read_events(tmp_path / "events.jsonl")] == ["trial", "drop"]

    (tmp_path / "bad.jsonl").write_bytes(b'{"event": "drop", "trial": "a"}\n{"event": \n'
                                         b'{"event": "drop", "trial": "b"}\n')
    with pytest.raises(ValueError, match="line 2 is not an event"):
        read_events(tmp_path / "bad.jsonl")
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert read_events(tmp_path / "empty.jsonl") == []


def test_rewrite_replaces_the_log_and_appends_go_on_after_it(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    for tid in "abc":
        log.append({"event": "drop", "trial": tid})
    log.rewrite([{"event": "drop", "trial": "z"}])
    log.append({"event": "drop", "trial": "y"})
    assert [e["trial"] for e in read_events(tmp_path / "events.jsonl")] == ["z", "y"]
    assert [p.name for p in tmp_path.iterdir()] == ["events.jsonl"]  # no temporary file left


def test_fold_applies_epochs_ends_and_drops():
    events = [{"event": "trial", "trial": "a", "record": {"history": [], "status": "running", "error": "",
                                                         "wall_seconds": 0.0}},
              {"event": "trial", "trial": "b", "record": {"history": [], "status": "running", "error": "",
                                                         "wall_seconds": 0.0}}]
    events += [{"event": "epoch", "trial": "a", "metrics": {"epoch": e, "v": v}, "wall_seconds": w}
               for e, v, w in ((1, 0.1, 1.0), (2, 0.2, 2.0), (3, 0.3, 3.0), (2, 0.25, 4.0))]
    events += [{"event": "end", "trial": "a", "status": "stopped_early", "error": "", "wall_seconds": 5.0,
                "ended_at": 1.7e9}, {"event": "drop", "trial": "b"}]
    assert fold(events) == {"a": {"history": [{"epoch": 1, "v": 0.1}, {"epoch": 2, "v": 0.25}],
                                  "status": "stopped_early", "error": "", "wall_seconds": 5.0, "ended_at": 1.7e9}}


# --------------------------------------------------------------------------- compaction


def test_the_log_folds_into_the_records_and_its_compaction_equals_the_full_rewrite(tmp_path):
    """What the log says equals the records the driver holds (what the callback used to rewrite whole at
    every event); sweep_state.json and the tables compacted from a copy of the log, as after a crash,
    equal those written from the driver's records."""
    cb = callback(tmp_path / "a" / "run")
    drive(cb)
    for tid in "be":  # every trial ended: a running one's wall seconds go on growing
        cb.on_trial_complete(0, [], trial(tid))
    folded = fold(read_events(cb.layout.sweep_events))
    assert folded == json.loads(json.dumps(cb.get_state()["records"]))
    assert folded["b"]["history"][1] == {**result(2, 0.45, resumes=1), "checkpoint_path": "/ckpt/b/2"}
    assert folded["d"]["status"] == "error" and folded["e"]["status"] == "stopped_early"

    (tmp_path / "b" / "run").mkdir(parents=True)
    shutil.copy(cb.layout.sweep_events, tmp_path / "b" / "run")  # the log alone, as a killed driver leaves it
    rows = cb.compact()
    again = callback(tmp_path / "b" / "run", records=load_sweep_state(tmp_path / "b" / "run"))
    assert again.compact() == rows and len(rows) == 5
    for name in ("sweep_state.json", "trials.parquet", "strategies.parquet", "epochs.parquet"):
        ours, theirs = tmp_path / "a" / "run" / name, tmp_path / "b" / "run" / name
        if name.endswith(".json"):
            assert json.loads(ours.read_text()) == json.loads(theirs.read_text())
        else:
            assert read_table(ours) == read_table(theirs), name
    # the log compacted: one line per trial, which folds into the same records
    assert [e["event"] for e in read_events(cb.layout.sweep_events)] == ["trial"] * 5
    assert fold(read_events(cb.layout.sweep_events)) == folded


def test_files_are_written_at_a_bounded_rate_and_soon_after_a_trial_ends(tmp_path, monkeypatch):
    from raytune_ft.sweep import callback as module

    monkeypatch.setattr(module, "WRITE_SPACING", 0)
    cb = callback(tmp_path / "run")
    a = trial("a")
    cb.on_trial_start(0, [], a)
    cb.on_trial_result(0, [], a, result(1, 0.5))
    cb.on_step_end(0, [])  # nothing written yet: written now
    state = lambda: json.loads(cb.layout.sweep_state.read_text())  # noqa: E731
    assert len(state()["a"]["history"]) == 1 and cb.layout.epochs.exists()
    cb.on_trial_result(0, [], a, result(2, 0.6))
    cb.on_step_end(0, [])  # an epoch within WRITE_EVERY_S of the last write: later
    assert len(state()["a"]["history"]) == 1
    assert len(load_sweep_state(cb.layout.root)["a"].history) == 2  # the log has it
    cb.on_trial_complete(0, [], a)
    cb.on_step_end(0, [])  # a trial ended: now
    assert state()["a"]["status"] == "stopped_early" and len(read_table(cb.layout.trials)) == 1

    monkeypatch.setattr(module, "WRITE_SPACING", 19)
    b = trial("b")
    cb.on_trial_start(0, [], b)
    cb.on_trial_complete(0, [], b)
    cb.write_seconds = 1.0  # a write that took 1 s: the next one 19 s after it
    cb.on_step_end(0, [])
    assert "b" not in state()
    cb.written_at -= 19
    cb.on_step_end(0, [])
    assert state()["b"]["status"] == "stopped_early"


# --------------------------------------------------------------------------- resume


def test_a_resume_starts_from_the_log(tmp_path):
    cb = callback(tmp_path / "run")
    a, b, c, d, e = drive(cb)
    with open(cb.layout.sweep_events, "ab") as f:
        f.write(b'{"event": "epoch", "trial": "e", "metrics": {"epo')  # killed mid-line
    records = load_sweep_state(tmp_path / "run")
    assert {t: (r.status, len(r.history), r.done_before) for t, r in records.items()} == {
        "a": ("completed", 3, True), "b": ("running", 2, False), "c": ("stopped_early", 1, True),
        "d": ("error", 0, True), "e": ("running", 1, False)}
    assert records["a"].wall_seconds() == cb.records["a"].wall_seconds()

    resumed = callback(tmp_path / "run", records=records)
    resumed.compact()
    assert len(read_events(resumed.layout.sweep_events)) == 5  # one line per trial, the torn line gone
    assert json.loads(resumed.layout.sweep_state.read_text())["a"]["status"] == "completed"  # what trial drivers read
    resumed.on_trial_result(0, [], a, result(3, 0.99))  # an ended trial's driver reports its last result again
    resumed.on_trial_complete(0, [], a)
    resumed.on_trial_result(0, [], b, result(3, 0.8))
    resumed.on_trial_complete(0, [], b)
    resumed.on_experiment_end([a, b, c, d])  # e started after Tune last saved: Tune does not know it
    assert resumed.tally.counts == {"running": 0, "completed": 2, "stopped_early": 1, "stopped_patience": 0,
                                    "error": 1}
    after = load_sweep_state(tmp_path / "run")
    assert sorted(after) == ["a", "b", "c", "d"]
    assert after["a"].history == records["a"].history and after["b"].status == "completed"
    assert [m["val_accuracy"] for m in after["b"].history] == [0.4, 0.45, 0.8]


def test_a_run_made_before_the_log_resumes_from_its_sweep_state(tmp_path):
    cb = callback(tmp_path / "run")
    drive(cb)
    cb.save_state()
    cb.layout.sweep_events.unlink()
    records = load_sweep_state(tmp_path / "run")
    assert sorted(records) == list("abcde") and records["b"].history == cb.records["b"].history


def test_tunes_copy_fills_in_what_the_log_lacks_and_is_written_at_once(tmp_path):
    cb = callback(tmp_path / "run")
    drive(cb)
    state = cb.get_state()
    resumed = callback(tmp_path / "other", records={k: v for k, v in cb.records.items() if k != "a"})
    resumed.set_state(state)
    assert sorted(resumed.records) == list("abcde") and resumed.records["b"] is cb.records["b"]
    assert json.loads(resumed.layout.sweep_state.read_text())["a"]["status"] == "completed"
    assert "a" in load_sweep_state(tmp_path / "other")


# --------------------------------------------------------------------------- progress, event by event


def test_the_progress_tally_equals_a_snapshot_of_all_the_records(tmp_path):
    cb = callback(tmp_path / "run", total=6, concurrency=2)
    drive(cb)
    counted = cb.tally.snapshot(t0=0.0, total=6, concurrency=2, epochs=3, now=1e9)
    whole = snapshot(cb.records, t0=0.0, total=6, concurrency=2, metric="val_accuracy", mode="max", epochs=3,
                     now=1e9)
    assert counted == whole
    assert whole.best == {"full": (0.7, 3), "lora": (0.45, 2)}  # b's 0.9 was reported again as 0.45
    cb.begin_stage("confirm", 4)
    assert cb.tally.counts["running"] == 0 and cb.tally.best == {}
