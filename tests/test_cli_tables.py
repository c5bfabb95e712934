"""results / compare / init on tables written like a sweep writes them (no Ray)."""
from __future__ import annotations

import json

import yaml
from PIL import Image
from typer.testing import CliRunner

from raytune_ft.cli import app
from raytune_ft.results.tables import strategy_rows, write_table
from tests.test_metrics_results import epochs, row

runner = CliRunner()


def make_run(path, best):
    path.mkdir()
    trials = [row("a", "full", "completed", epochs(0.5, best)), row("b", "lora", "stopped_early", epochs(0.6), r=4)]
    write_table(trials, path / "trials.parquet")
    write_table(strategy_rows(trials, "max"), path / "strategies.parquet")
    return path


def test_results_filter_sort_and_formats(tmp_path):
    run = make_run(tmp_path / "r1", 0.9)
    out = runner.invoke(app, ["results", str(run)])
    assert out.exit_code == 0 and "full" in out.output and "lora" in out.output
    out = runner.invoke(app, ["results", str(run), "--table", "trials", "--strategy", "lora", "--format", "json"])
    assert [r["trial_id"] for r in json.loads(out.output)] == ["b"]
    out = runner.invoke(app, ["results", str(run), "--table", "trials", "--sort", "score", "--format", "csv"])
    assert out.output.splitlines()[1].startswith("j,r,a,full")
    assert runner.invoke(app, ["results", str(run), "--sort", "nope"]).exit_code == 2
    target = tmp_path / "x.parquet"
    assert runner.invoke(app, ["results", str(run), "--format", "parquet", "--output", str(target)]).exit_code == 0
    assert target.exists()
    assert runner.invoke(app, ["results", str(tmp_path / "missing")]).exit_code == 2


def test_compare_two_runs(tmp_path):
    a, b = make_run(tmp_path / "a", 0.8), make_run(tmp_path / "b", 0.95)
    out = runner.invoke(app, ["compare", str(a), str(b)])
    assert out.exit_code == 0
    line = next(l for l in out.output.splitlines() if l.strip().startswith("full"))
    assert line.split()[-1] == "0.1500"


def test_init_writes_specs_that_validate_once_data_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["init", "--kind", "text", "--output", "t.yaml"]).exit_code == 0
    spec = yaml.safe_load((tmp_path / "t.yaml").read_text())
    assert spec["model"]["name"] == "packaged:all-minilm-l6-v2"
    assert runner.invoke(app, ["init", "--output", "t.yaml"]).exit_code == 2  # no overwrite
    assert runner.invoke(app, ["init", "--output", "v.yaml"]).exit_code == 0
    for split in ("train", "val"):
        for label in ("a", "b"):  # validate reads train's class folders: 2 classes with images
            (tmp_path / "data" / split / label).mkdir(parents=True)
            Image.new("RGB", (8, 8), (10, 200, 30)).save(tmp_path / "data" / split / label / "0.png")
    out = runner.invoke(app, ["validate", "v.yaml"])
    assert out.exit_code == 0, out.output
