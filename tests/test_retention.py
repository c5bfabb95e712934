"""What a sweep keeps of its checkpoints (sweep/retention.py), on folders laid out as Ray Train lays them out,
and what a PEFT strategy's checkpoint holds."""
from __future__ import annotations

from pathlib import Path

from raytune_ft.layout import RunLayout
from raytune_ft.sweep import retention
from raytune_ft.sweep.records import TrialRecord, fold

WEIGHTS, RESUME = 1000, 2000  # bytes of a checkpoint's weights and of its optimizer state


def checkpoint(layout: RunLayout, trial: str, index: int) -> str:
    folder = layout.ray / f"train-{trial}" / f"checkpoint_{index:06d}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"w" * WEIGHTS)
    (folder / "resume.pt").write_bytes(b"o" * RESUME)
    return str(folder)


def history(layout, trial, scores) -> list[dict]:
    return [{"epoch": i + 1, "val_accuracy": s, "checkpoint_path": checkpoint(layout, trial, i)}
            for i, s in enumerate(scores)]


def test_an_ended_trial_keeps_its_best_weights_only(tmp_path):
    layout = RunLayout(tmp_path)
    h = history(layout, "a", [0.7, 0.9, 0.8])
    assert retention.folder_bytes(layout, "a") == 3 * (WEIGHTS + RESUME)
    left = retention.trial_ended(layout, "a", h, "val_accuracy", "max")
    folders = sorted(p.name for p in (layout.ray / "train-a").iterdir())
    assert folders == ["checkpoint_000001"]  # the best epoch's; the latest and the first are gone
    assert not (layout.ray / "train-a" / "checkpoint_000001" / "resume.pt").exists()  # it will never resume
    assert left == WEIGHTS == retention.folder_bytes(layout, "a")
    # a loss: the lowest is the best
    h = history(layout, "b", [0.9, 0.5, 0.7])
    retention.trial_ended(layout, "b", [{**m, "val_loss": m["val_accuracy"]} for m in h], "val_loss", "min")
    assert sorted(p.name for p in (layout.ray / "train-b").iterdir()) == ["checkpoint_000001"]


def test_a_failed_trial_or_one_without_checkpoints_keeps_nothing(tmp_path):
    layout = RunLayout(tmp_path)
    checkpoint(layout, "a", 0)
    assert retention.trial_ended(layout, "a", [{"epoch": 1}], "val_accuracy", "max") == 0
    assert retention.trial_ended(layout, "never", [], "val_accuracy", "max") == 0  # no folder at all


def test_after_a_stage_only_the_best_trials_of_each_strategy_and_size_keep_checkpoints(tmp_path):
    layout = RunLayout(tmp_path)
    records = {}
    for tid, name, size, score, status in [("f1", "full", 50, 0.9, "completed"), ("f2", "full", 50, 0.8, "completed"),
                                           ("f3", "full", 50, 0.95, "error"), ("f4", "full", 100, 0.5, "stopped_early"),
                                           ("l1", "lora", 50, 0.7, "completed"), ("l2", "lora", 50, 0.75, "completed")]:
        h = history(layout, tid, [score])
        records[tid] = TrialRecord(strategy={"name": name}, history=h, status=status, train_size=size)
    records["c1"] = TrialRecord(strategy={"name": "full"}, history=history(layout, "c1", [0.99]), stage="confirm",
                                status="completed", train_size=50)
    left = retention.stage_ended(layout, records, "search", 1, "val_accuracy", "max")
    kept = {tid for tid, n in left.items() if n}
    assert kept == {"f1", "f4", "l2"}  # f3 failed; one per strategy and size
    assert "c1" not in left and (layout.ray / "train-c1").exists()  # another stage's trials are left alone
    assert retention.stage_ended(layout, records, "search", 0, "val_accuracy", "max") == {t: 0 for t in left}


def test_what_is_kept_is_in_the_event_log():
    events = [{"event": "trial", "trial": "a", "record": {"history": [], "status": "running", "error": "",
                                                         "wall_seconds": 0.0}},
              {"event": "end", "trial": "a", "status": "completed", "error": "", "wall_seconds": 5.0,
               "checkpoint_bytes": 3000},
              {"event": "kept", "trial": "a", "checkpoint_bytes": 0}]
    assert fold(events)["a"]["checkpoint_bytes"] == 0 and fold(events[:2])["a"]["checkpoint_bytes"] == 3000


def test_a_peft_checkpoint_holds_its_adapters_and_head(tiny_bert, text_csvs, tmp_path):
    """LoRA's checkpoint: the adapters, the head and the buffers, not the frozen backbone's weights."""
    from safetensors import safe_open

    from raytune_ft.data import prepare_data
    from raytune_ft.spec import parse_job
    from raytune_ft.train.config import trial_config
    from raytune_ft.train.loop import train_trial
    from tests.conftest import text_spec

    job = parse_job(text_spec(tiny_bert, text_csvs, training={"epochs": 1}))
    prepare_data(job, tmp_path / "data")
    sizes = {}
    for name, strategy in (("full", {"name": "full"}), ("lora", {"name": "lora", "r": 2, "alpha": 4.0,
                                                                    "dropout": 0.0, "target_modules": None})):
        train_trial(trial_config(job, tmp_path / "data", tmp_path / name, strategy, {"lr": 1e-3, "batch_size": 16}),
                    report=lambda m: None)
        path = Path(tmp_path / name / "best" / "model.safetensors")
        with safe_open(str(path), "pt") as f:
            keys = list(f.keys())
        sizes[name] = path.stat().st_size
        if name == "lora":
            assert keys and all("lora_" in k or k.startswith("head.") for k in keys), keys
    assert sizes["lora"] < sizes["full"] / 5
