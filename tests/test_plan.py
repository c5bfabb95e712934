"""`raytune-ft plan` end to end on a tiny model (no Ray: the calibration runs in fresh processes here), the memory
refusal (plan, the pre-flight, `run` before any trial), a finished run as the calibration, the forecast beside
the actual, and search.budget in the plan."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from typer.testing import CliRunner

from raytune_ft.cli import app
from raytune_ft.errors import InputError
from raytune_ft.plan import memory
from tests.conftest import vision_spec


def write(tmp_path: Path, spec: dict) -> Path:
    spec = {**spec, "output_dir": str(tmp_path / "runs")}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def tiny(resnet_weights, **over) -> dict:
    spec = vision_spec(resnet_weights, **over)
    spec["strategies"] = [{"name": "full"}, {"name": "lora", "r": {"choice": [2, 4]}}]
    spec["search"] = {"num_samples": 3, "scheduler": {"name": "asha"},
                      "hparams": {"lr": 1e-3, "batch_size": {"choice": [16, 32]}}}
    return spec


@pytest.fixture(scope="module")
def planned(resnet_weights, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plan")
    out = tmp / "plan.json"
    result = CliRunner().invoke(app, ["plan", str(write(tmp, tiny(resnet_weights))), "--output", str(out)])
    return result, out, tmp


def test_plan_forecasts_a_job_before_any_trial(planned):
    result, out, tmp = planned
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert any(line.startswith("full ") for line in lines) and any(line.startswith("lora ") for line in lines)
    assert any(line.startswith("wall ") for line in lines) and any(line.startswith("memory ") for line in lines)
    fc = json.loads(out.read_text())
    assert fc["concurrency"] >= 1 and fc["num_samples"] == 3 and fc["wall_seconds"] > fc["compute_seconds"] / 64
    for s in fc["strategies"]:
        assert s["trials"] == 3 and 3 <= s["trial_epochs"] <= 3 * 2  # ASHA: at least the first rung each
        assert s["epoch_seconds"] > 0 and s["compute_seconds"] > s["trial_epochs"] * s["epoch_seconds"]
        assert s["peak_memory_mb"] > s["memory"]["parameters_mb"] > 0
    lora = next(s for s in fc["strategies"] if s["strategy"] == "lora")
    assert lora["largest"] == "hparams.batch_size 32, r 4"
    assert not (tmp / "runs").exists() or not list((tmp / "runs").glob("*/data"))  # its data were removed


def test_a_strategy_that_cannot_fit_is_refused_by_plan_with_what_to_change(resnet_weights, tmp_path, monkeypatch):
    import raytune_ft.sweep.preflight as preflight

    monkeypatch.setattr(memory, "capacity", lambda job, at_once: (200.0, "a test device of 200 MB"))
    monkeypatch.setattr(preflight, "capacity", lambda job, at_once: None)  # the plan's refusal, not the pre-flight's
    result = CliRunner().invoke(app, ["plan", str(write(tmp_path, tiny(resnet_weights))), "--output",
                                      str(tmp_path / "plan.json")])
    assert result.exit_code == 2, result.output
    assert "forecast for tiny-vision" in result.output  # the forecast is shown before the refusal
    assert "strategies[0] (full): a worker needs about" in result.output
    assert "at its largest setting (hparams.batch_size 32; measured: parameters" in result.output
    assert "but it has 200 MB (a test device of 200 MB)" in result.output
    for remedy in ("hparams.batch_size 16", "hparams.gradient_checkpointing: true", "resources.distributed: fsdp",
                   "strategy qlora"):
        assert remedy in result.output


def test_the_preflight_refuses_before_any_trial_when_run_skips_the_plan(resnet_weights, tmp_path, monkeypatch):
    import raytune_ft.sweep.preflight as preflight

    monkeypatch.setattr(preflight, "capacity", lambda job, at_once: (50.0, "a test device of 50 MB"))
    spec = write(tmp_path, tiny(resnet_weights))
    result = CliRunner().invoke(app, ["run", str(spec), "--no-plan", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "strategies[0] (full): a worker needs about" in result.output
    assert "(hparams.batch_size 32; estimated: parameters" in result.output
    assert "but it has 50 MB (a test device of 50 MB)" in result.output
    assert not (tmp_path / "run").exists()  # refused before any trial: nothing left behind


def test_the_preflight_gives_no_estimate_where_gradient_checkpointing_can_be_on(resnet_weights, tmp_path,
                                                                                 monkeypatch):
    """A forward pass saves every activation, which a checkpointed step does not keep: the pre-flight would
    refuse what fits, so it leaves the memory to the plan's calibration (which runs the trial's own step)."""
    import raytune_ft.sweep.preflight as preflight
    from raytune_ft.prepare import prepare_job
    from raytune_ft.spec import parse_job

    monkeypatch.setattr(preflight, "capacity", lambda job, at_once: (50.0, "a test device of 50 MB"))
    spec = tiny(resnet_weights)
    spec["search"]["hparams"]["gradient_checkpointing"] = {"choice": [False, True]}
    job = parse_job(spec)
    prepare_job(job, tmp_path / "data")
    preflight.preflight(job, tmp_path / "data", workers_at_once=1)  # no refusal
    spec["search"]["hparams"]["gradient_checkpointing"] = False
    with pytest.raises(InputError, match="a worker needs about"):
        preflight.preflight(parse_job(spec), tmp_path / "data", workers_at_once=1)


def test_the_memory_model_adds_up_and_scales():
    est = memory.MemoryEstimate(base_mb=400, parameters_mb=100, gradients_mb=100, optimizer_mb=200,
                                activations_mb=800, batch_size=64)
    assert est.total_mb() == 1600 and est.at_batch(32) == 1200
    assert est.model_copy(update={"shards": 4}).total_mb() == 400 + 100 + 800
    assert memory.gpu_capacity(16384, 0.5)[0] == 8192 - memory.GPU_RESERVE_MB
    assert memory.ram_capacity(8192, 4) == (2048, "8.0 GB of RAM shared by 4 workers at once")
    for distributed, shards in (("fsdp", 4), ("ddp", 1)):  # FSDP splits the weights' parts over the workers
        job = SimpleNamespace(resources=SimpleNamespace(distributed=distributed, workers_per_trial=4))
        assert memory.shards(job) == shards


def test_a_budget_sets_num_samples_in_the_plan(resnet_weights, tmp_path, planned):
    fc = json.loads(planned[1].read_text())
    one = fc["cpu_hours"] / 3  # about what a sample per strategy costs (there were 3)
    spec = tiny(resnet_weights)
    spec["search"].pop("num_samples")
    spec["search"]["budget"] = {"cpu_hours": round(fc["cpu_hours"] * 3, 4)}
    result = CliRunner().invoke(app, ["plan", str(write(tmp_path, spec)), "--output", str(tmp_path / "p.json")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "budget search.budget" in said and "per strategy, every strategy the same" in said
    got = json.loads((tmp_path / "p.json").read_text())
    assert got["budget"]["num_samples"] == got["num_samples"] > 3 and got["cpu_hours"] <= spec["search"]["budget"][
        "cpu_hours"] and one > 0


def test_a_finished_run_is_the_calibration_and_the_forecast_meets_the_actual(resnet_weights, tmp_path, planned):
    from raytune_ft.layout import RunLayout
    from raytune_ft.plan.actual import add_forecast, versus
    from raytune_ft.plan.make import read_plan
    from raytune_ft.prepare import prepare_job
    from raytune_ft.results.tables import write_table
    from raytune_ft.spec import parse_job

    spec = tiny(resnet_weights)
    job = parse_job(spec)
    run = RunLayout(tmp_path / "runs" / "done")
    prepare_job(job, run.data)
    trials = [{"trial_id": f"t{i}", "strategy": name, "stage": "search", "status": "completed", "epochs_run": 2,
               "train_size": 120, "batch_size": 16 * (1 + i // 2 % 2),
               "lora.r": 2 + 2 * (i // 2 % 2) if name == "lora" else None,
               "train_seconds": 4.0 + i, "eval_seconds": 1.0, "checkpoint_seconds": 0.2, "first_step_seconds": 3.0,
               "wall_seconds": 20.0 + i, "peak_memory_mb": 700.0 + i, "val_samples": 60, "trainable_params": 1000,
               "total_params": 10_000, "started_at": 1000.0 + i, "ended_at": 1020.0 + 2 * i}
              for i, name in enumerate(["full", "lora"] * 3)]
    write_table(trials, run.trials)
    out = tmp_path / "from-run.json"
    result = CliRunner().invoke(app, ["plan", str(write(tmp_path, spec)), "--from-run", str(run.root),
                                      "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "calibrated on the trials of run done" in result.output
    fc = read_plan(out)
    full = next(s for s in fc.strategies if s.strategy == "full")
    assert full.peak_memory_mb == pytest.approx(702.0)  # the full trial at the largest setting (batch 32)
    # Ray's seconds per trial: its wall seconds beyond what the worker measured, the mean
    assert full.trial_seconds > 2 * full.epoch_seconds
    rows = versus(fc, trials)
    assert {r["strategy"] for r in rows} == {"full", "lora"}
    assert all(r["compute_seconds"] == pytest.approx(sum(t["wall_seconds"] for t in trials
                                                         if t["strategy"] == r["strategy"])) for r in rows)
    strategies = [{"strategy": "full", "train_size": 120}, {"strategy": "lora", "train_size": 120}]
    add_forecast(strategies, trials, out)
    assert strategies[0]["forecast_compute_seconds"] == full.compute_seconds
    assert strategies[0]["compute_forecast_error"] == pytest.approx(strategies[0]["compute_seconds"]
                                                                   / full.compute_seconds - 1) \
        if "compute_seconds" in strategies[0] else strategies[0]["epochs_run"] == 6


def test_run_resolves_a_budget_into_num_samples_before_any_trial(resnet_weights, tmp_path, monkeypatch):
    """run's plan (sweep/run.py, before Ray starts): the budget's num_samples is said and kept in job.yaml, so that
    resume goes on with it; the calibration here is made up (its measuring is tested above)."""
    import raytune_ft.plan.make as make
    from raytune_ft.data import load_meta
    from raytune_ft.layout import RunLayout
    from raytune_ft.plan.calibrate import Point
    from raytune_ft.prepare import prepare_job
    from raytune_ft.spec import parse_job

    def made_up(job, data_dir, parallel, on_ray):  # every calibration point, as if measured
        from raytune_ft.plan.calibrate import requests

        return [Point(strategy=strategy["name"], knobs=knobs, batch_size=hparams["batch_size"],
                      batch_s=0.001 * hparams["batch_size"], eval_sample_s=0.001, checkpoint_s=0.1, startup_s=2.0,
                      peak_memory_mb=600.0, base_mb=400.0, parameters_mb=40.0, gradients_mb=40.0, optimizer_mb=80.0)
                for request in requests(job, data_dir) for strategy, hparams, knobs in request["points"]]

    monkeypatch.setattr(make, "calibrate", made_up)
    spec = tiny(resnet_weights)
    spec["search"].pop("num_samples")
    spec["search"]["budget"] = {"cpu_hours": 0.05}
    job = parse_job(spec)
    layout = RunLayout(tmp_path / "run")
    meta = prepare_job(job, layout.data)
    layout.job.write_text(yaml.safe_dump(job.portable()))
    lines = []
    planned = make.plan_run(job, layout, load_meta(layout.data), [], address=None, num_cpus=2, overheads={},
                            printer=lines.append)
    n = planned.search.num_samples
    said = " ".join(" ".join(lines).split())
    assert n > 1 and f"num_samples {n} per strategy, every strategy the same" in said
    saved = yaml.safe_load(layout.job.read_text())["search"]
    assert saved["num_samples"] == n and "budget" not in saved
    fc = make.read_plan(layout.plan)
    assert fc.cpu_hours <= 0.05 and fc.budget["num_samples"] == n and meta

