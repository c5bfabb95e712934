"""results / compare on tables written like a sweep writes them (no Ray): filters, formats, and refusals."""
from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from raytune_ft.cli import app
from raytune_ft.results.tables import strategy_rows, write_table
from tests.test_metrics_results import epochs, row

runner = CliRunner()


def make_run(path, best, metric="val_accuracy", names=("full", "lora")):
    path.mkdir()
    trials = [row("a", names[0], "completed", epochs(0.5, best)), row("b", names[1], "stopped_early", epochs(0.6), r=4)]
    write_table(trials, path / "trials.parquet")
    write_table([{**r, "metric": metric} for r in strategy_rows(trials, "max")], path / "strategies.parquet")
    (path / "job.yaml").write_text(yaml.safe_dump({"name": "j", "search": {"metric": metric}}))
    return path


def test_results_filter_sort_and_formats(tmp_path):
    run = make_run(tmp_path / "r1", 0.9)
    out = runner.invoke(app, ["results", str(run)])
    assert out.exit_code == 0 and "full" in out.output and "lora" in out.output
    out = runner.invoke(app, ["results", str(run), "--table", "trials", "--strategy", "lora", "--format", "json"])
    assert [r["trial_id"] for r in json.loads(out.output)] == ["b"]
    out = runner.invoke(app, ["results", str(run), "--table", "trials", "--sort", "score", "--format", "csv"])
    assert out.output.splitlines()[1].startswith("j,r,a,full")
    out = runner.invoke(app, ["results", str(run), "--table", "trials", "--columns", "trial_id,score", "--format", "csv"])
    assert out.output.splitlines() == ["trial_id,score", "a,0.9", "b,0.6"]
    out = runner.invoke(app, ["results", str(run), "--table", "trials", "--columns", "score,trial_id", "--sort", "score"])
    lines = [ln.split() for ln in out.output.splitlines()]
    assert lines.index(["0.9000", "a"]) < lines.index(["0.6000", "b"])  # the columns as given, largest score first
    assert runner.invoke(app, ["results", str(run), "--sort", "nope"]).exit_code == 2
    target = tmp_path / "x.parquet"
    assert runner.invoke(app, ["results", str(run), "--format", "parquet", "--output", str(target)]).exit_code == 0
    assert target.exists()
    assert runner.invoke(app, ["results", str(run), "--format", "parquet"]).exit_code == 2  # needs --output
    assert runner.invoke(app, ["results", str(tmp_path / "missing")]).exit_code == 2


def test_the_table_view_shows_nulls_and_json_readably(tmp_path):
    run = make_run(tmp_path / "r1", 0.9)
    out = runner.invoke(app, ["results", str(run), "--table", "strategies", "--columns",
                              "strategy,best_config,test_accuracy"])
    assert out.exit_code == 0, out.output
    assert "lr=0.01" in out.output and '"lr"' not in out.output  # best_config as key=value, not inline JSON
    assert "None" not in out.output and "nan" not in out.output.lower()
    assert all(ln.split()[-1] == "-" for ln in out.output.splitlines() if ln.startswith(("full", "lora")))


def test_unknown_names_are_refused_with_the_known_ones(tmp_path):
    run = make_run(tmp_path / "r1", 0.9)
    out = runner.invoke(app, ["results", str(run), "--strategy", "nosuch"])
    assert out.exit_code == 2 and "nosuch" in out.output and "full, lora" in out.output
    assert "Traceback" not in out.output and "Empty DataFrame" not in out.output
    out = runner.invoke(app, ["results", str(run), "--table", "trials", "--columns", "trial_id,scroe"])
    assert out.exit_code == 2 and "--columns scroe" in out.output and "did you mean score" in out.output
    assert "trial_id, strategy" in out.output  # the known columns, listed
    out = runner.invoke(app, ["results", str(run), "--table", "comparisons"])
    assert out.exit_code == 2 and "no comparisons.parquet" in out.output and "strategies, trials" in out.output
    out = runner.invoke(app, ["results", str(run), "--table", "nosuch"])
    assert out.exit_code == 2 and "strategies" in out.output


def test_compare_two_runs(tmp_path):
    a, b = make_run(tmp_path / "a", 0.8), make_run(tmp_path / "b", 0.95)
    out = runner.invoke(app, ["compare", str(a), str(b)])
    assert out.exit_code == 0, out.output
    assert "best val_accuracy" in out.output and "higher is better" in out.output  # names the metric
    line = next(ln for ln in out.output.splitlines() if ln.strip().startswith("full"))
    assert line.split()[1:4] == ["0.8000", "0.9500", "+0.1500"]
    assert "not a test" in " ".join(out.output.split())


def test_compare_refuses_the_same_run_and_different_metrics(tmp_path):
    a = make_run(tmp_path / "a", 0.8)
    out = runner.invoke(app, ["compare", str(a), str(tmp_path / "." / "a")])
    assert out.exit_code == 2 and "same run folder" in out.output
    other = make_run(tmp_path / "f1", 0.8, metric="val_f1")
    out = runner.invoke(app, ["compare", str(a), str(other)])
    assert out.exit_code == 2 and "val_accuracy" in out.output and "val_f1" in out.output


def test_compare_runs_with_different_strategies(tmp_path):
    a = make_run(tmp_path / "a", 0.8)
    b = make_run(tmp_path / "b", 0.9, names=("full", "ia3"))
    out = runner.invoke(app, ["compare", str(a), str(b)])
    assert out.exit_code == 0, out.output
    rows = {ln.split()[0]: ln.split() for ln in out.output.splitlines() if ln.split()[:1] in (["lora"], ["ia3"])}
    assert rows["lora"][2] == "-" and rows["ia3"][1] == "-"
    assert "Only in A: lora" in out.output and "Only in B: ia3" in out.output


def test_default_columns_say_once_what_every_row_shares(tmp_path):
    run = make_run(tmp_path / "r1", 0.9)
    out = runner.invoke(app, ["results", str(run), "--table", "trials"])
    assert out.exit_code == 0, out.output
    said = " ".join(out.output.split())
    assert "in every row: stage search" in said and "choose them with --columns" in said
    header = out.output.splitlines()[1:4]
    assert not any("stage" in ln for ln in header) and any("status" in ln for ln in header)
