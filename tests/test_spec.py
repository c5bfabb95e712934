"""The job spec: shipped jobs load, bad specs list every problem with its field path."""
from __future__ import annotations

import shutil

import pytest
import yaml
from typer.testing import CliRunner

from raytune_ft.cli import app
from raytune_ft.searchable import Sampler
from raytune_ft.spec import SpecError, load_job, parse_job
from tests.conftest import ROOT, text_spec, vision_spec


def problems(data) -> dict[str, str]:
    with pytest.raises(SpecError) as e:
        parse_job(data)
    return dict(e.value.problems)


@pytest.mark.parametrize("name", ["quickstart.yaml", "catalogue.yaml"])
def test_shipped_vision_jobs_load(name):
    job = load_job(ROOT / "jobs" / name)
    assert job.model.weights == "packaged:efficientnet-lite0" and job.data.source == "digits"


def test_quickstart_loads():
    job = load_job(ROOT / "jobs" / "quickstart.yaml")
    assert [s.name for s in job.strategies] == ["full", "feature_extraction", "lora"]
    assert job.search.scheduler.name == "asha" and job.search.mode == "max"
    assert job.strategies[2].r == Sampler("choice", (4, 8, 16))
    assert job.model.weights == "packaged:efficientnet-lite0"


def test_text_job_loads_with_the_users_csv(tmp_path, text_csvs):
    """jobs/text_minilm.yaml names CSVs beside it: put some there and it validates."""
    shutil.copy(ROOT / "jobs" / "text_minilm.yaml", tmp_path / "job.yaml")
    (tmp_path / "data").mkdir()
    for split, path in text_csvs.items():
        shutil.copy(path, tmp_path / "data" / f"{split}.csv")
    job = load_job(tmp_path / "job.yaml")
    assert job.model.source == "transformers" and job.data.train == (tmp_path / "data" / "train.csv").resolve()


def test_every_problem_is_listed_with_its_path():
    bad = {
        "name": "has space",
        "model": {"source": "torchvision", "name": "resnet999"},
        "data": {"source": "digits"},
        "strategies": [{"name": "lora", "r": {"uniform": [8, 4]}}, {"name": "nope"}, {"r": 2}],
        "search": {"hparams": {"lr": -1, "batch_size": {"loguniform": [0, 64]}}, "typo": 1},
    }
    found = problems(bad)
    assert "characters other than letters" in found["name"] and "has-space" in found["name"]
    assert "resnet999" in found["model.name"]
    assert "low < high" in found["strategies[0].r"]
    assert "'nope' is not known" in found["strategies[1]"] and "'lora'" in found["strategies[1]"]
    assert "'name'" in found["strategies[2]"]
    assert found["search.hparams.lr"] == "must be > 0; got -1.0"
    assert "loguniform needs low > 0" in found["search.hparams.batch_size"]
    assert found["search.typo"].startswith("unknown field")


@pytest.mark.parametrize("value, message", [
    ({"uniform": [1, 2], "choice": [1]}, "one key"),
    ({"normal": [0, 1]}, "unknown sampler 'normal'"),
    ({"choice": []}, "non-empty list"),
    ({"uniform": [0.1]}, "takes [low, high]"),
    ("fast", "expected a number"),
    ({"uniform": [0.5, 2.0]}, "must be <= 1"),
])
def test_bad_learning_rates(value, message, resnet_weights):
    spec = vision_spec(resnet_weights)
    spec["search"]["hparams"]["lr"] = value
    assert message in problems(spec)["search.hparams.lr"]


def test_cross_field_rules(resnet_weights, tiny_bert, text_csvs):
    mismatch = vision_spec(resnet_weights, data=text_spec(tiny_bert, text_csvs)["data"])
    assert "is text data but model.source 'torchvision' is a vision model" in problems(mismatch)["data.source"]
    # every broken rule at once, each under its own path
    bad = vision_spec(resnet_weights, training={"mixed_precision": "fp16"},
                      strategies=[{"name": "full"}, {"name": "prompt_tuning"}, {"name": "full"},
                                  {"name": "lora", "hparams": {"l2sp": 0.1}}])
    bad["search"].update(algorithm="grid", hparams={"lr": {"loguniform": [1e-4, 1e-2]}})
    found = problems(bad)
    assert "listed more than once" in found["strategies[2]"]
    assert "text models only" in found["strategies[1]"]
    assert "L2-SP has nothing to hold back" in found["strategies[3].hparams.l2sp"]
    assert "cannot be enumerated by grid search" in found["search.hparams.lr"]
    assert "needs a GPU" in found["training.mixed_precision"]
    loss = vision_spec(resnet_weights)
    loss["search"].update(metric="val_loss", mode="max")
    assert "use 'min'" in problems(loss)["search"]
    whole = vision_spec(resnet_weights)
    whole["search"]["hparams"]["batch_size"] = {"uniform": [8, 64]}
    assert "randint: [8, 64]" in problems(whole)["search.hparams.batch_size"]


def test_missing_files_are_named(tmp_path, tiny_bert):
    spec = text_spec(tiny_bert, {"train": tmp_path / "no.csv", "validation": tmp_path / "v.csv", "test": None})
    found = problems(spec)
    assert "no.csv does not exist" in found["data.train"] and "v.csv does not exist" in found["data.validation"]
    weights = vision_spec(tmp_path / "missing.pt")
    assert "missing.pt does not exist" in problems(weights)["model.weights"]
    spec = text_spec(tmp_path, {"train": tmp_path, "validation": tmp_path})
    assert "no config.json" in problems(spec)["model.name"]


def test_resolved_spec_round_trips(resnet_weights):
    spec = vision_spec(resnet_weights)
    spec["strategies"][2]["r"] = {"choice": [2, 4]}
    job = parse_job(spec)
    again = parse_job(yaml.safe_load(yaml.safe_dump(job.resolved())))
    assert again.resolved() == job.resolved()
    assert job.resolved()["strategies"][2]["r"] == {"choice": [2, 4]}


def test_cli_validate_exit_codes(tmp_path, resnet_weights):
    runner = CliRunner()
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(vision_spec(resnet_weights)))
    result = runner.invoke(app, ["validate", str(good)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(vision_spec(resnet_weights, training={"epochs": 0, "typo": True})))
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "training.epochs" in result.output and "training.typo: unknown field" in result.output
    assert runner.invoke(app, ["validate", str(tmp_path / "none.yaml")]).exit_code == 2
    (tmp_path / "broken.yaml").write_text("name: [unclosed")
    assert "not valid YAML" in runner.invoke(app, ["validate", str(tmp_path / "broken.yaml")]).output


def test_several_workers_of_one_trial_on_fractions_of_a_gpu_are_refused(resnet_weights):
    # NCCL refuses two ranks on one GPU ("Duplicate GPU detected"): say so at validate time
    found = problems(vision_spec(resnet_weights, resources={"workers_per_trial": 2, "gpus_per_worker": 0.5}))
    assert list(found) == ["resources"], found
    assert "Duplicate GPU" in found["resources"] and "gpus_per_worker: 1" in found["resources"]
    # what works: one GPU per worker, or one worker per trial on a fraction
    parse_job(vision_spec(resnet_weights, resources={"workers_per_trial": 2, "gpus_per_worker": 1}))
    parse_job(vision_spec(resnet_weights, resources={"workers_per_trial": 1, "gpus_per_worker": 0.5}))
