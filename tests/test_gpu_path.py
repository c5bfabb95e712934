"""What the GPU path of a trial does that can be checked on a CPU: the loop reads nothing back each step,
skipped fp16 steps are not counted, the loss scale is resumed, running out of device memory is an error
that would repeat, loader workers give the same training as none, device settings are checked by the spec."""
from __future__ import annotations

import pytest
import torch

from raytune_ft.data import prepare_data
from raytune_ft.spec import SpecError, parse_job
from raytune_ft.train.config import trial_config
from raytune_ft.train.device import peak_memory
from raytune_ft.train.evaluate import collate
from raytune_ft.train.failures import would_repeat
from raytune_ft.train.loop import train_trial
from raytune_ft.train.recipe import TrialRecipe
from tests.conftest import text_spec, vision_spec

HP = {"lr": 3e-3, "batch_size": 16}


@pytest.fixture(scope="module")
def vision(resnet_weights, tmp_path_factory):
    job = parse_job(vision_spec(resnet_weights, training={"epochs": 2}))
    data = tmp_path_factory.mktemp("data")
    prepare_data(job, data)
    return job, data


def test_a_skipped_fp16_step_is_not_counted(vision, tmp_path, monkeypatch):
    """The gradient scaler skips a step whose gradients overflowed: the step counter, the schedule and the
    strategy's per-step work must not advance (AdaLoRA's averages turned NaN on counted skipped steps)."""
    from accelerate.optimizer import AcceleratedOptimizer

    job, data = vision
    config = trial_config(job, data, tmp_path / "t", {"name": "full"}, HP).with_training(epochs=1)
    counted = TrialRecipe(config, report=lambda m: None)
    counted.run()
    assert counted.step > 0
    monkeypatch.setattr(AcceleratedOptimizer, "step_was_skipped", property(lambda self: True))
    skipped = TrialRecipe(config.model_copy(update={"trial_dir": str(tmp_path / "s")}), report=lambda m: None)
    skipped.run()
    assert skipped.step == 0


def test_the_loss_is_read_back_only_every_so_many_steps(vision, tmp_path, monkeypatch):
    """Reading a tensor's value waits for the device: the loop does it every FINITE_CHECK_EVERY steps and at
    the end of the epoch, not at every step (it did 2-3 times a step before)."""
    from raytune_ft.train import recipe

    job, data = vision
    reads = []
    original = recipe._check_finite
    monkeypatch.setattr(recipe, "_check_finite", lambda loss, epoch: (reads.append(epoch), original(loss, epoch)))
    monkeypatch.setattr(recipe, "FINITE_CHECK_EVERY", 2)
    config = trial_config(job, data, tmp_path / "t", {"name": "full"}, HP).with_training(epochs=1)
    history = train_trial(config, report=lambda m: None)
    steps = history[0]["train_samples"] // HP["batch_size"]
    assert len(reads) == steps // 2 + 1


def test_a_diverging_loss_still_ends_the_trial_with_its_reason(vision, tmp_path, monkeypatch):
    from raytune_ft.train.faults import Faults

    job, data = vision
    monkeypatch.setattr(Faults, "on_loss", lambda self, loss: loss * float("nan"))
    config = trial_config(job, data, tmp_path / "t", {"name": "full"}, HP)
    with pytest.raises(FloatingPointError, match="training loss became nan at epoch 1: lower the learning rate"):
        train_trial(config, report=lambda m: None)


def test_loader_workers_train_exactly_as_the_loop_alone(vision, tmp_path):
    job, data = vision
    config = trial_config(job, data, tmp_path / "a", {"name": "full"}, HP).with_training(epochs=1)
    alone = train_trial(config, report=lambda m: None)
    workers = config.model_copy(update={"trial_dir": str(tmp_path / "b"),
                                        "resources": config.resources.model_copy(update={"loader_workers": 2})})
    together = train_trial(workers, report=lambda m: None)
    assert together[0]["train_loss"] == pytest.approx(alone[0]["train_loss"], rel=1e-5)
    assert together[0]["val_accuracy"] == alone[0]["val_accuracy"]


def test_text_batches_are_trimmed_in_the_loader_not_on_the_device():
    samples = [{"input_ids": torch.tensor([5, 6, 0, 0]), "attention_mask": torch.tensor([1, 1, 0, 0]),
                "labels": torch.tensor(1)},
               {"input_ids": torch.tensor([5, 6, 7, 0]), "attention_mask": torch.tensor([1, 1, 1, 0]),
                "labels": torch.tensor(0)}]
    batch = collate(samples)
    assert batch["input_ids"].shape == (2, 3) and batch["labels"].tolist() == [1, 0]


def test_running_out_of_device_memory_would_repeat():
    for message in ("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
                    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
                    "NCCL error in: ProcessGroupNCCL.cpp, unhandled cuda error, NCCL version 2.21.5\n"
                    "ncclUnhandledCudaError: Call to CUDA function failed. Last error: Cuda failure 2 'out of memory'",
                    "CUDA out of memory. Tried to allocate 2.00 GiB"):
        assert would_repeat(RuntimeError(message)), message
    assert would_repeat(torch.OutOfMemoryError("CUDA out of memory"))
    assert not would_repeat(RuntimeError("NCCL communicator was aborted on rank 1"))  # a lost peer: retried


def test_peak_memory_is_this_trials():
    got = peak_memory(torch.device("cpu"))
    assert got["peak_memory_mb"] > 10 and got["peak_memory_reserved_mb"] is None


@pytest.mark.parametrize("gpus, ok", [(0.5, True), (1, True), (2, True), (1.5, False)])
def test_gpus_per_worker_is_a_fraction_or_whole(resnet_weights, gpus, ok):
    spec = vision_spec(resnet_weights, resources={"gpus_per_worker": gpus})
    if ok:
        assert parse_job(spec).resources.gpus_per_worker == gpus
    else:
        with pytest.raises(SpecError, match=r"resources.gpus_per_worker.*1.5: Ray gives a worker a fraction of one "
                                            r"GPU \(below 1\) or whole GPUs; use 1 or 2"):
            parse_job(spec)


def test_a_deterministic_trial_gives_the_same_numbers_twice(tiny_bert, text_csvs, tmp_path):
    job = parse_job(text_spec(tiny_bert, text_csvs, training={"epochs": 1, "deterministic": True}))
    prepare_data(job, tmp_path / "data")
    runs = [train_trial(trial_config(job, tmp_path / "data", tmp_path / str(i), {"name": "full"}, HP),
                        report=lambda m: None)[0] for i in range(2)]
    assert runs[0]["train_loss"] == runs[1]["train_loss"] and runs[0]["val_loss"] == runs[1]["val_loss"]
    torch.use_deterministic_algorithms(False)  # the process's setting: later tests run as usual
