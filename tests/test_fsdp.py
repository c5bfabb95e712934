"""FSDP on CPU: a trial of two workers (two local processes, gloo; train/processes.py) on a tiny decoder gives
DDP's loss curve while each worker holds about half of the weights and of the optimizer's state; its checkpoint
holds whole tensors (load_trial_model scores what validation scored), and a resumed trial goes on as a resumed
DDP trial does (the optimizer's state comes back into the shards)."""
from __future__ import annotations

import pytest

from raytune_ft.data import prepare_data
from raytune_ft.spec import parse_job
from raytune_ft.train.config import trial_config
from raytune_ft.train.processes import train_in_processes
from tests.conftest import text_spec

HP = {"lr": 3e-3, "batch_size": 8, "warmup_ratio": 0.0}


@pytest.fixture
def decoder_job(tiny_decoders, text_csvs, tmp_path):
    def make(distributed: str, epochs: int = 2, schedule: str = "cosine"):
        job = parse_job(text_spec(tiny_decoders["llama"], text_csvs, training={"epochs": epochs, "schedule": schedule},
                                  resources={"workers_per_trial": 2, "distributed": distributed}))
        if not (tmp_path / "data" / "meta.json").exists():
            prepare_data(job, tmp_path / "data")
        return job
    return make


def two_workers(job, tmp_path, name: str, strategy: dict, **hp) -> list[dict]:
    config = trial_config(job, tmp_path / "data", tmp_path / name, strategy, {**HP, **hp})
    ranks = train_in_processes(config, workers=2)
    losses = [[(m["train_loss"], m["val_loss"]) for m in history] for history in ranks]
    assert losses[0] == losses[1]  # reduced over the workers: the same on each
    return ranks[0]


def test_fsdp_gives_ddps_curve_with_half_the_memory_and_whole_checkpoints(decoder_job, tmp_path):
    from raytune_ft.results.evaluation import evaluate_trial
    from raytune_ft.train.model import load_trial_model

    ddp = two_workers(decoder_job("ddp"), tmp_path, "ddp", {"name": "full"})
    fsdp = two_workers(decoder_job("fsdp"), tmp_path, "fsdp", {"name": "full"})
    for a, b in zip(ddp, fsdp):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
    assert [m["distributed_type"] for m in (ddp[0], fsdp[0])] == ["DistributedType.MULTI_CPU", "DistributedType.FSDP"]
    assert ddp[0]["trainable_params"] == fsdp[0]["trainable_params"] == fsdp[0]["total_params"]  # every weight trains
    for held in ("param_bytes", "optimizer_bytes"):  # each worker: its half, and a little (shards are padded)
        assert 0.45 < fsdp[-1][held] / ddp[-1][held] < 0.56, (held, fsdp[-1][held], ddp[-1][held])
    assert ddp[-1]["param_bytes"] == 4 * ddp[-1]["total_params"]  # fp32, whole on each worker
    model, _ = load_trial_model(tmp_path / "fsdp")  # whole tensors: a plain (unsharded) model
    assert {type(p).__name__ for p in model.parameters()} == {"Parameter"}
    best = fsdp[fsdp[-1]["best_epoch"] - 1]
    again = evaluate_trial(tmp_path / "fsdp", tmp_path / "data", split="validation")
    assert again["accuracy"] == best["val_accuracy"] and again["loss"] == pytest.approx(best["val_loss"], rel=1e-5)


def test_lora_with_gradient_checkpointing_under_fsdp(decoder_job, tmp_path):
    """Adapters on frozen, sharded weights, each block recomputed in the backward pass: DDP's numbers; the
    checkpoint holds the adapters and the head only (frozen weights are never gathered)."""
    from safetensors.torch import load_file

    lora = {"name": "lora", "r": 2, "alpha": 4.0}
    ddp = two_workers(decoder_job("ddp"), tmp_path, "ddp", lora, gradient_checkpointing=True)
    fsdp = two_workers(decoder_job("fsdp"), tmp_path, "fsdp", lora, gradient_checkpointing=True)
    assert [m["train_loss"] for m in fsdp] == pytest.approx([m["train_loss"] for m in ddp], rel=1e-4)
    assert [m["val_loss"] for m in fsdp] == pytest.approx([m["val_loss"] for m in ddp], rel=1e-4)
    saved = load_file(str(tmp_path / "fsdp" / "best" / "model.safetensors"))
    assert saved and all(".lora_" in k or k.startswith("head.") for k in saved)
    assert saved.keys() == load_file(str(tmp_path / "ddp" / "best" / "model.safetensors")).keys()


def test_a_resumed_fsdp_trial_goes_on_as_a_resumed_ddp_trial_does(decoder_job, tmp_path):
    """One epoch, then the same trial asked for two: under FSDP it restores the gathered weights and AdamW's
    moments into the shards, and trains epoch 2 to the losses a DDP trial resumed the same way reaches (which
    loads them whole). A constant schedule: epoch 1 is the same whichever number of epochs is asked for."""
    resumed = {}
    for distributed in ("ddp", "fsdp"):
        two_workers(decoder_job(distributed, epochs=1, schedule="constant"), tmp_path, distributed, {"name": "full"})
        resumed[distributed] = two_workers(decoder_job(distributed, epochs=2, schedule="constant"), tmp_path,
                                           distributed, {"name": "full"})
    assert [m["epoch"] for m in resumed["fsdp"]] == [1, 2] and resumed["fsdp"][-1]["resumes"] == 1
    assert resumed["fsdp"][-1]["train_loss"] == pytest.approx(resumed["ddp"][-1]["train_loss"], rel=1e-5)
    assert resumed["fsdp"][-1]["val_loss"] == pytest.approx(resumed["ddp"][-1]["val_loss"], rel=1e-5)
