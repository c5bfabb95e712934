"""What a running sweep shows: counts, best per strategy, time left; live on a terminal, plain lines otherwise."""
from __future__ import annotations

import io

from raytune_ft.sweep.records import TrialRecord
from raytune_ft.results.progress import render, snapshot, summary_line


def rec(name, status, scores, wall, started=0.0):
    r = TrialRecord(strategy={"name": name}, history=[{"epoch": i + 1, "val_accuracy": s} for i, s in enumerate(scores)],
                    status=status, started=started)
    r.ended = None if status == "running" else started + wall
    return r


RECORDS = {
    "a": rec("full", "completed", [0.5, 0.9], 100),
    "b": rec("lora", "stopped_early", [0.4], 40),
    "c": rec("lora", "error", [], 10),
    "d": rec("full", "running", [0.6], None, started=70.0),
    "e": rec("lora", "stopped_patience", [0.45, 0.42], 60),
}


def test_snapshot_counts_best_and_time_left():
    snap = snapshot(RECORDS, t0=0.0, total=8, concurrency=2, metric="val_accuracy", mode="max", epochs=2, now=100.0)
    assert snap.counts == {"running": 1, "completed": 1, "stopped_early": 1, "stopped_patience": 1, "error": 1}
    assert snap.best == {"full": (0.9, 2), "lora": (0.45, 3)}
    assert snap.running == [("d", "full", 1, 30.0)]
    # mean ended trial 52.5 s: the running one has ~22.5 s left, 3 not started: (22.5 + 3 * 52.5) / 2 at a time
    assert snap.eta == (22.5 + 3 * 52.5) / 2
    line = summary_line(snap)
    assert line.startswith("4/8 ended, ~1m30s left | running 1 done 1 stopped 1 patience 1 failed 1 | best: "
                           "full 0.900, lora 0.450")


def test_lower_is_better_and_no_estimate_before_a_trial_ends():
    records = {"d": rec("full", "running", [0.7, 0.3], None)}
    records["d"].history = [{"epoch": 1, "val_loss": 0.7}, {"epoch": 2, "val_loss": 0.3}]
    snap = snapshot(records, t0=0.0, total=None, concurrency=1, metric="val_loss", mode="min", epochs=2, now=5.0)
    assert snap.best == {"full": (0.3, 1)} and snap.eta is None
    assert summary_line(snap).startswith("0/? ended | running 1")


def test_live_view_renders_every_strategy_and_running_trial():
    from rich.console import Console

    snap = snapshot(RECORDS, t0=0.0, total=8, concurrency=2, metric="val_accuracy", mode="max", epochs=2, now=100.0)
    out = io.StringIO()
    Console(file=out, width=120, force_terminal=False).print(render(snap))
    text = out.getvalue()
    assert "4/8 trials ended" in text and "stopped early 1" in text and "left ~1m30s" in text
    assert "stopped by patience 1" in text
    assert text.index("full") < text.index("lora")  # best first
    assert "0.9000" in text and "running: d full epoch 1/2" in text
