"""`training.patience` ends a trial by itself: its own status, stopped_patience, apart from the scheduler's
stopped_early, from the worker's last report to the tables, the leaderboard and the report (no Ray)."""
from __future__ import annotations

import re

import pytest

from raytune_ft.data import prepare_data
from raytune_ft.results.tables import read_table, strategy_rows, write_table
from raytune_ft.spec import parse_job
from raytune_ft.train.loop import train_trial
from raytune_ft.train.config import trial_config
from tests.conftest import vision_spec
from tests.test_metrics_results import epochs, row

HP = {"weight_decay": 0.0, "batch_size": 32, "warmup_ratio": 0.0, "label_smoothing": 0.0}


@pytest.fixture
def vision_job(resnet_weights, tmp_path):
    job = parse_job(vision_spec(resnet_weights))
    prepare_data(job, tmp_path / "data")
    return job


def test_the_worker_marks_the_report_of_a_patience_stop(vision_job, tmp_path):
    """lr 1e-12 (the spec allows no 0) on a frozen backbone: the score never improves after epoch 1, so
    patience 1 ends it at epoch 2 of 4."""
    config = trial_config(vision_job, tmp_path / "data", tmp_path / "a", {"name": "feature_extraction"},
                          {**HP, "lr": 1e-12})
    config = config.with_training(epochs=4, patience=1)
    reports = []
    history = train_trial(config, report=reports.append)
    assert [m["epoch"] for m in reports] == [1, 2] and len(history) == 2
    assert reports[-1]["stop_reason"] == "patience" and "stop_reason" not in reports[0]
    # patience running out at the last epoch is no stop: the trial ran every epoch
    config = trial_config(vision_job, tmp_path / "data", tmp_path / "b", {"name": "feature_extraction"},
                          {**HP, "lr": 1e-12})
    config = config.with_training(epochs=3, patience=2)
    reports = []
    train_trial(config, report=reports.append)
    assert [m["epoch"] for m in reports] == [1, 2, 3] and not any("stop_reason" in m for m in reports)


def trials():
    return [row("a", "full", "completed", epochs(0.6, 0.9)), row("b", "full", "stopped_early", epochs(0.5)),
            row("c", "full", "stopped_patience", epochs(0.7, 0.65)), row("d", "lora", "error", [])]


def test_leaderboard_counts_patience_stops_apart(tmp_path, capsys):
    from raytune_ft.cli import print_leaderboard

    table = strategy_rows(trials(), "max")
    counts = [(r["strategy"], r["completed"], r["stopped_early"], r["stopped_patience"], r["errored"]) for r in table]
    assert counts == [("full", 1, 1, 1, 0), ("lora", 0, 0, 0, 1)]
    write_table(table, tmp_path / "strategies.parquet")
    print_leaderboard(tmp_path, "val_accuracy")
    out = capsys.readouterr().out
    assert "patience" in out and "1 / 1 / 1 / 0" in out and "0 / 0 / 0 / 1" in out
    # a run written before the column existed
    older = [{k: v for k, v in r.items() if k != "stopped_patience"} for r in table]
    write_table(older, tmp_path / "strategies.parquet")
    print_leaderboard(tmp_path, "val_accuracy")
    assert "1 / 1 / 0 / 0" in capsys.readouterr().out


def test_report_tells_patience_stops_from_the_schedulers(tmp_path):
    from raytune_ft.report.page import write_report
    from tests.test_report import TRIALS, make_run

    run = make_run(tmp_path / "run", TRIALS + [("t8", "lora", "stopped_patience", (0.3, 0.5, 0.45), {"r": 4})],
                   with_test=False)
    page = re.sub(r'src="data:[^"]*"', 'src=""', write_report(run).read_text())
    assert "9 trials (3 completed, 4 stopped early by the scheduler, 1 stopped by patience, 1 failed)" in page
    assert "done / stopped / patience / failed" in page
    assert "1 / 1 / 1 / 1" in page  # lora: t5 completed, t6 stopped early, t8 patience, t7 failed
    assert "hatched = ended by itself after training.patience epochs without a better score (1 in all)" in page
    assert "light grey = stopped early by the scheduler at that rung (4 in all)" in page
