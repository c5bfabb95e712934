"""The worker loop, called directly (no Ray): metrics, frozen weights, checkpoints that reload."""
from __future__ import annotations

import pytest
import torch

from raytune_ft.data import prepare_data
from raytune_ft.spec import parse_job
from raytune_ft.train.optim import lr_schedule
from raytune_ft.train.model import load_trial_model
from raytune_ft.train.loop import train_trial
from raytune_ft.train.config import trial_config
from tests.conftest import text_spec, vision_spec

HP = {"lr": 3e-3, "weight_decay": 0.01, "batch_size": 16, "warmup_ratio": 0.1, "label_smoothing": 0.1}
LORA = {"name": "lora", "r": 2, "alpha": 4.0, "dropout": 0.0, "target_modules": None}


@pytest.fixture
def vision_job(resnet_weights, tmp_path):
    job = parse_job(vision_spec(resnet_weights))
    prepare_data(job, tmp_path / "data")
    return job


def run(job, tmp_path, strategy, name="t", **hp):
    config = trial_config(job, tmp_path / "data", tmp_path / name, strategy, {**HP, **hp})
    reports = []
    history = train_trial(config, report=reports.append)
    return history, reports, config


def test_vision_trial_reports_each_epoch_and_reloads(vision_job, tmp_path):
    history, reports, _ = run(vision_job, tmp_path, {"name": "full"})
    assert reports == history and [m["epoch"] for m in history] == [1, 2]
    for m in history:
        assert 0 <= m["val_accuracy"] <= 1 and 0 <= m["val_f1"] <= 1 and m["val_loss"] > 0
        assert m["trainable_params"] == m["total_params"] > 11_000_000
        assert m["samples_per_sec"] > 0 and m["peak_memory_mb"] > 0
    assert "pg_id" not in history[0]  # only under Ray
    model, config = load_trial_model(tmp_path / "t")
    assert config.strategy == {"name": "full"} and len(config.classes) == 10
    best = max(history, key=lambda m: m["val_accuracy"])
    from raytune_ft.data import load_meta, load_split
    from raytune_ft.train.evaluate import model_inputs

    val, meta = {k: v[:] for k, v in load_split(tmp_path / "data", "validation").items()}, load_meta(tmp_path / "data")
    with torch.no_grad():
        preds = model(**model_inputs(val, meta, torch.device("cpu"))).argmax(-1)
    assert (preds == val["labels"]).float().mean().item() == pytest.approx(best["val_accuracy"])


def test_feature_extraction_leaves_the_backbone_untouched(vision_job, tmp_path, resnet_weights):
    run(vision_job, tmp_path, {"name": "feature_extraction"}, lr=0.05)
    model, _ = load_trial_model(tmp_path / "t")
    pretrained = torch.load(resnet_weights, weights_only=True)
    backbone = model.backbone.state_dict()
    # weights *and* BatchNorm statistics are the pretrained ones (the backbone ran in eval mode)
    for key in ("conv1.weight", "layer4.1.bn2.weight", "layer1.0.bn1.running_mean", "layer3.0.bn1.running_var"):
        assert torch.equal(backbone[key], pretrained[key]), key
    assert not torch.equal(model.head.weight, torch.zeros_like(model.head.weight))


def test_lora_trial_trains_a_small_fraction(vision_job, tmp_path):
    history, _, _ = run(vision_job, tmp_path, LORA)
    assert history[-1]["trainable_params"] < 0.05 * history[-1]["total_params"]
    model, _ = load_trial_model(tmp_path / "t")
    assert any(".lora_B." in n and p.abs().sum() > 0 for n, p in model.named_parameters())  # B starts at 0


def test_text_trial_learns_an_easy_task(tiny_bert, text_csvs, tmp_path):
    job = parse_job(text_spec(tiny_bert, text_csvs, training={"epochs": 6}))
    prepare_data(job, tmp_path / "data")
    history, _, _ = run(job, tmp_path, {"name": "full"}, lr=3e-3, label_smoothing=0.0)
    assert max(m["val_accuracy"] for m in history) >= 0.9  # one sentiment word decides the label


def test_gradient_accumulation_steps_the_optimizer_less_often(vision_job, tmp_path, monkeypatch):
    updates = []
    real_step = torch.optim.AdamW.step
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, *a, **k: (updates.append(1), real_step(self, *a, **k))[1])
    one, _, _ = run(vision_job, tmp_path, {"name": "feature_extraction"}, name="a", warmup_ratio=0.0)
    n_one = len(updates)
    job = parse_job({**vision_spec(vision_job.model.weights), "training": {"epochs": 2, "grad_accum_steps": 4}})
    four, _, _ = run(job, tmp_path, {"name": "feature_extraction"}, name="b", warmup_ratio=0.0)
    # 120 samples / 16 = 7 full micro-batches per epoch (the remainder is dropped): 14 optimizer updates
    # without accumulation, 2 per epoch (after 4 and at the end of the epoch) with 4 micro-batches each
    assert (n_one, len(updates) - n_one) == (14, 4)
    # the reported lr is the one the epoch's last optimizer step used, on a schedule of that many steps
    assert one[0]["lr"] == pytest.approx(HP["lr"] * lr_schedule("cosine", 14, 0.0)(6))
    assert four[0]["lr"] == pytest.approx(HP["lr"] * lr_schedule("cosine", 4, 0.0)(1))


def test_nan_loss_stops_the_trial_with_a_reason(vision_job, tmp_path, monkeypatch):
    import raytune_ft.train.recipe as recipe

    original = recipe.model_inputs

    def poisoned(batch, meta, device):
        inputs = original(batch, meta, device)
        inputs["pixel_values"] = inputs["pixel_values"] * float("nan")
        return inputs

    monkeypatch.setattr(recipe, "model_inputs", poisoned)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        run(vision_job, tmp_path, {"name": "full"})


def test_schedules_shape():
    f = lr_schedule("cosine", 100, 0.1)
    assert f(0) < f(5) < f(9) <= 1.0
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0.0)
    lin = lr_schedule("linear", 100, 0.0)
    assert lin(0) == 1.0 and lin(50) == pytest.approx(0.5) and lin(100) == 0.0
    step = lr_schedule("step", 100, 0.0, steps_per_epoch=10, step_every_epochs=2, step_gamma=0.5)
    assert [step(s) for s in (0, 19, 20, 45)] == [1.0, 1.0, 0.5, 0.25]
    oc = lr_schedule("one_cycle", 100, 0.3)
    assert oc(0) == pytest.approx(1 / 25) and oc(30) == pytest.approx(1.0) and oc(100) == pytest.approx(1e-4)
    assert max(oc(s) for s in range(101)) == pytest.approx(1.0)
    assert lr_schedule("constant", 100, 0.1)(50) == 1.0


def test_best_trials_are_evaluated_on_the_test_split(vision_job, tmp_path):
    import json

    from raytune_ft.sweep.driver import add_test_metrics
    from raytune_ft.results.tables import read_table, strategy_rows, trial_row, write_table

    history, _, config = run(vision_job, tmp_path, {"name": "full"}, name="trials/t1")
    row = trial_row(job="j", run_id="r", trial_id="t1", strategy={"name": "full", "hparams": config.hparams.model_dump()},
                    status="completed", history=history, metric="val_accuracy", mode="max", wall_seconds=1.0)
    write_table([row], tmp_path / "trials.parquet")  # its checkpoint_path: where the best checkpoint is
    write_table(strategy_rows([row], "max"), tmp_path / "strategies.parquet")
    add_test_metrics(tmp_path, "max", printer=lambda line: None)
    table = read_table(tmp_path / "strategies.parquet")[0]
    report = json.loads((tmp_path / "reports" / "full" / "test_report.json").read_text())
    assert report["samples"] == 270 and table["test_accuracy"] == report["accuracy"]
    assert sum(map(sum, report["confusion_matrix"])) == 270
    assert [r["support"] for r in report["per_class"]] == [sum(r) for r in report["confusion_matrix"]]
    csv = (tmp_path / "reports" / "full" / "confusion_matrix.csv").read_text().splitlines()
    assert csv[0].startswith("true/predicted,0,1") and len(csv) == 11


def test_a_trial_started_again_goes_on_from_its_last_epoch(resnet_weights, tmp_path):
    job = parse_job(vision_spec(resnet_weights, training={"epochs": 3}))
    prepare_data(job, tmp_path / "data")
    config = trial_config(job, tmp_path / "data", tmp_path / "t", {"name": "full"}, HP)

    def crash_at_epoch_2(m):
        if m["epoch"] == 2:
            raise KeyboardInterrupt("the process dies after epoch 2 was saved")

    with pytest.raises(KeyboardInterrupt):
        train_trial(config, report=crash_at_epoch_2)
    saved = torch.load(tmp_path / "t" / "last" / "resume.pt", weights_only=True)
    adam_steps = {float(s["step"]) for s in saved["optimizer"]["state"].values()}

    reports = []
    history = train_trial(config, report=reports.append)
    assert [m["epoch"] for m in reports] == [2, 3]  # the last saved epoch again, then the one not run before
    assert [m["epoch"] for m in history] == [1, 2, 3] and history[-1]["resumes"] == 1
    after = torch.load(tmp_path / "t" / "last" / "resume.pt", weights_only=True)
    steps_per_epoch = max(adam_steps) / 2
    assert {float(s["step"]) for s in after["optimizer"]["state"].values()} == {max(adam_steps) + steps_per_epoch}
    # one folder per kept checkpoint: the best and the last, nothing else
    kept = {(tmp_path / "t" / name).resolve().name for name in ("best", "last")}
    assert sorted(p.name for p in (tmp_path / "t").iterdir() if p.name.startswith("epoch-")) == sorted(kept)
    assert "epoch-3" in kept

    # a finished trial started again only reports its last epoch again; another trial's state is never taken
    assert train_trial(config, report=reports.append)[-1]["epoch"] == 3 and [m["epoch"] for m in reports] == [2, 3, 3]
    other = trial_config(job, tmp_path / "data", tmp_path / "t", {"name": "full"}, {**HP, "lr": 1e-4})
    assert [m["epoch"] for m in train_trial(other)] == [1, 2, 3]
