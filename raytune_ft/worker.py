"""One trial's training loop, run inside every Ray Train worker, or directly (tests, debugging).

    metrics = train_trial(trial_config(job, data_dir, trial_dir, strategy, hparams))  # no Ray

Accelerate handles the device, mixed precision, gradient accumulation and the distributed data
split; the strategy decides what trains. Each epoch ends with a validation pass, a resumable
checkpoint (`<trial_dir>/last`) and one report: to Ray Train (and so to Tune) under Ray, to the
`report` callable otherwise. A trial started again on the same trial folder (a Train worker group
restarted after a failure, or a sweep resumed after its driver died) goes on from `last`.
"""
from __future__ import annotations

import builtins
import json
import math
import os
import re
import resource
import time
from pathlib import Path
from typing import Callable, Optional

from raytune_ft import storage
from raytune_ft.data import load_meta, load_split
from raytune_ft.data.images import ImageRecipe
from raytune_ft.metrics import classification_metrics
from raytune_ft.models import SOURCES, build_model
from raytune_ft.optim import build_optimizer, lr_schedule, set_lr, set_scales, trainable_now
from raytune_ft.strategies import get_strategy

CHECKPOINT_FILE = "model.safetensors"
RESUME_FILE = "resume.pt"


def trial_config(job, data_dir, trial_dir, strategy: dict, hparams: dict, seed: Optional[int] = None) -> dict:
    """The plain dict a worker gets: everything a trial needs, nothing that needs the driver."""
    resolved = job.resolved() if hasattr(job, "resolved") else job
    return {
        "model": resolved["model"],
        "training": resolved["training"],
        "resources": resolved["resources"],
        "metric": resolved["search"]["metric"],
        "mode": resolved["search"]["mode"],
        "data_dir": str(data_dir),
        "trial_dir": str(trial_dir),
        "strategy": strategy,
        "hparams": hparams,
        "seed": resolved["search"]["seed"] if seed is None else seed,
    }


class _TensorDict:
    """A map-style dataset over a dict of equally long tensors; `augment` maps one uint8 image."""

    def __init__(self, tensors: dict, augment=None):
        self.tensors = tensors
        self.augment = augment

    def __len__(self):
        return len(self.tensors["labels"])

    def __getitem__(self, i):
        item = {k: v[i] for k, v in self.tensors.items()}
        if self.augment is not None:
            item["pixel_values"] = self.augment(item["pixel_values"])
        return item


def class_weights(counts: list[int]):
    """Inverse class frequency, normalised so a balanced set gets weight 1 everywhere."""
    import torch

    counts_t = torch.tensor(counts, dtype=torch.float)
    present = counts_t > 0
    w = torch.zeros_like(counts_t)
    w[present] = counts_t.sum() / (present.sum() * counts_t[present])
    return w


def trainable_state(model) -> dict:
    """The parameters that trained (all a strategy changed) plus buffers such as BatchNorm statistics."""
    keep = {n for n, p in model.named_parameters() if p.requires_grad}
    keep |= {n for n, _ in model.named_buffers()}
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k in keep}


def strategy_knobs(config: dict, **extra) -> dict:
    return {**{k: v for k, v in config["strategy"].items() if k != "name"}, **extra}


def build_trial_model(config: dict, num_classes: int, **extra_knobs):
    """The pretrained model with the strategy applied: the same for training and for reloading."""
    model_cfg = SOURCES.get(config["model"]["source"]).Config.model_validate(config["model"])
    strategy = get_strategy(config["strategy"]["name"])
    model = build_model(model_cfg, num_classes)
    model.block_paths = model_cfg.block_paths
    model.head_dropout.p = float(config["hparams"].get("head_dropout", 0.0))
    return strategy.apply(model, strategy_knobs(config, **extra_knobs)), strategy


def load_trial_model(trial_dir):
    """Rebuild a trial's best model from its checkpoint folder (`<trial_dir>/best`)."""
    from safetensors.torch import load_file

    from accelerate.utils import set_seed

    best = Path(trial_dir) / "best"
    config = json.loads((best / "trial.json").read_text())["config"]
    set_seed(config["seed"])  # as in training: a randomly initialised frozen part comes out the same
    model, _ = build_trial_model(config, len(config["classes"]))
    state = load_file(str(best / CHECKPOINT_FILE))
    extra = set(state) - set(model.state_dict())
    lacking = {n for n, p in model.named_parameters() if p.requires_grad} - set(state)
    if extra or lacking:
        raise ValueError(f"checkpoint {best} does not fit the rebuilt model: extra {sorted(extra)[:3]}, "
                         f"missing {sorted(lacking)[:3]}")
    model.load_state_dict(state, strict=False)
    return model.eval(), config


def _to_inputs(batch: dict, meta: dict, device):
    """Model inputs from a prepared batch: uint8 images are center-cropped (a stored, uncropped image:
    validation, test) and normalised here, on the device."""
    inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
    if "pixel_values" in inputs:
        pixels = inputs["pixel_values"]
        inputs["pixel_values"] = ImageRecipe.from_meta(meta, pixels.shape[-1]).model_inputs(pixels)
    return inputs


def autocast(mixed_precision: str, device):
    """The autocast Accelerate puts around a prepared model's forward for this mixed precision: every
    evaluation (validation in the loop, test split and reload afterwards) runs under it, so a
    reloaded model scores what it scored in training."""
    import contextlib

    import torch

    if mixed_precision == "no":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if mixed_precision == "bf16" else torch.float16)


def evaluate(model, loader, meta, device, num_classes: int, *, mixed_precision: str = "no", gather=None) -> dict:
    """Accuracy, macro-F1, confusion matrix and mean loss of `model` on `loader`.

    `gather` collects every worker's share (Accelerate's `gather_for_metrics`, which drops the
    samples that pad the last batch across workers); None in a single process."""
    import torch
    import torch.nn.functional as F

    model.eval()
    all_preds, all_labels, loss_sum = [], [], 0.0
    with torch.no_grad(), autocast(mixed_precision, device):
        for batch in loader:
            logits = model(**_to_inputs(batch, meta, device))
            labels = batch["labels"].to(device)
            losses = F.cross_entropy(logits.float(), labels, reduction="none")  # per sample (see `gather`)
            preds = logits.argmax(-1)
            if gather is not None:
                preds, labels, losses = gather((preds, labels, losses))
            all_preds.append(preds.cpu())
            all_labels.append(labels.cpu())
            loss_sum += float(losses.sum())
    labels, preds = torch.cat(all_labels), torch.cat(all_preds)
    out = classification_metrics(labels, preds, num_classes)
    out["loss"] = loss_sum / max(1, len(labels))
    return out


def head_lr(optimizer) -> float:
    """The new head's learning rate at the last step: it trains under every strategy from epoch 1
    (group 0 is the stem for block-wise strategies, 0 while gradual unfreezing holds it)."""
    return next(g["lr"] for g in optimizer.param_groups if g["group"] == "head")


def _peak_memory_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB -> MiB


def _ray_report(metrics: dict) -> None:
    import ray.train

    ray.train.report(metrics)


def _in_ray_train() -> bool:
    try:
        from ray.train import get_context

        get_context()
        return True
    except Exception:
        return False


# Errors that come back the same on a retry (a bad value, a diverging loss, a batch too big for the
# device): a trial that raised one is not trained again when Ray Train restarts its worker group.
# A worker that died (killed, lost node) leaves no such mark and goes on from its last epoch.
DETERMINISTIC_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, FloatingPointError,
                        MemoryError)
# A RuntimeError is one of those when it says that shapes or sizes do not fit (a text longer than the
# model's positions, an image smaller than a kernel): the same tensors meet the same model again.
SHAPE_ERROR = re.compile(r"size of tensor|sizes of tensors must match|must match the (existing )?size|"
                         r"shapes cannot be multiplied|is invalid for input of size|size mismatch|"
                         r"expected input\[.*\] to have|kernel size can't be greater", re.IGNORECASE)


def would_repeat(error: BaseException) -> bool:
    """Whether a trial's error would come back on a retry (see DETERMINISTIC_ERRORS)."""
    import torch

    return (isinstance(error, (*DETERMINISTIC_ERRORS, torch.OutOfMemoryError))
            or (isinstance(error, RuntimeError) and SHAPE_ERROR.search(str(error)) is not None))
FAILED_FILE = "failed.json"


def _alone_is_not_distributed() -> None:
    """Ray Train sets LOCAL_RANK / RANK / WORLD_SIZE even for a trial of one worker, and Accelerate then
    wraps the model in DistributedDataParallel for a world of 1: gradient buckets and an all-reduce
    with nobody (benchmarks/trial_overhead.py measures its cost). With one worker, hide those variables from Accelerate so that it trains as one plain process."""
    if os.environ.get("WORLD_SIZE") == "1":
        for key in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK"):
            os.environ.pop(key, None)


def train_trial(config: dict, report: Optional[Callable[[dict], None]] = None) -> list[dict]:
    """Train one trial; return (and report) one metrics dict per epoch."""
    failed = Path(config["trial_dir"]) / FAILED_FILE
    if failed.exists() and (before := json.loads(failed.read_text()))["key"] == _resume_key(config):
        # the same error again, without training: a restart of the worker group costs seconds, not an epoch
        kind = getattr(builtins, before["type"], RuntimeError)
        raise kind(f"{before['message']} (raised again at once: this error is not retried)")
    try:
        return _train(config, report)
    except Exception as e:
        if not would_repeat(e):
            raise
        failed.parent.mkdir(parents=True, exist_ok=True)
        failed.write_text(json.dumps({"key": _resume_key(config), "type": type(e).__name__, "message": str(e)}))
        raise


def _train(config: dict, report: Optional[Callable[[dict], None]]) -> list[dict]:
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import set_seed

    started = time.perf_counter()
    in_ray = report is None and _in_ray_train()
    report = report or (_ray_report if in_ray else (lambda m: None))
    training, hp, resources = config["training"], config["hparams"], config["resources"]
    torch.set_num_threads(max(1, int(resources["cpus_per_worker"])))
    if in_ray:
        _alone_is_not_distributed()
    # A trial owns its process's Accelerate state (a singleton): one called directly after another with
    # another mixed precision would otherwise be refused ("AcceleratorState has already been initialized")
    AcceleratorState._reset_state()
    accelerator = Accelerator(
        mixed_precision=training["mixed_precision"],
        gradient_accumulation_steps=training["grad_accum_steps"],
        cpu=resources["gpus_per_worker"] == 0,
    )
    set_seed(config["seed"])
    load_start = time.perf_counter()
    # a run mirrored to a URI (cluster storage s3:// / gs://): fetch the prepared data and this trial's
    # folder (a worker group started again on another node) when this node lacks them; no-ops otherwise
    storage.ensure_local(config["data_dir"])
    storage.ensure_local(config["trial_dir"])
    meta = load_meta(config["data_dir"])
    num_classes = len(meta["classes"])
    train_set, val_set = load_split(config["data_dir"], "train"), load_split(config["data_dir"], "validation")
    data_load_s = time.perf_counter() - load_start  # the data were prepared once per job, before any trial
    batch_size, accum = int(hp["batch_size"]), training["grad_accum_steps"]
    per_process = math.ceil(len(train_set["labels"]) / accelerator.num_processes)
    batches = per_process // batch_size if per_process > batch_size else 1
    steps_per_epoch = math.ceil(batches / accum)
    total_steps = steps_per_epoch * training["epochs"]

    model, strategy = build_trial_model(config, num_classes, total_steps=total_steps)
    knobs = strategy_knobs(config, total_steps=total_steps)
    total = sum(p.numel() for p in model.parameters())
    optimizer = build_optimizer(model, strategy, knobs, hp, training)
    augment = ImageRecipe.from_meta(meta, train_set["pixel_values"].shape[-1]).train_transform(
        training.get("augment") or {}) if "pixel_values" in train_set else None
    generator = torch.Generator().manual_seed(config["seed"])
    train_loader = torch.utils.data.DataLoader(
        _TensorDict(train_set, augment), batch_size=batch_size, shuffle=True, generator=generator,
        # a last batch of 1 sample breaks BatchNorm in train mode (1x1 feature maps): drop the remainder
        drop_last=per_process > batch_size)
    val_loader = torch.utils.data.DataLoader(_TensorDict(val_set), batch_size=training["eval_batch_size"])
    model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
    schedule = lr_schedule(training.get("schedule", "cosine"), total_steps, hp["warmup_ratio"], steps_per_epoch,
                           training.get("step_every_epochs", 1.0), training.get("step_gamma", 0.5))
    weights = class_weights(meta["splits"]["train"]["class_counts"]).to(accelerator.device) \
        if training.get("class_weighted_loss") else None
    plain = accelerator.unwrap_model(model)
    anchors = {}  # L2-SP: the pretrained values of the backbone weights that train
    if hp.get("l2sp", 0.0) > 0:
        anchors = {n: p.detach().clone() for n, p in plain.named_parameters()
                   if p.requires_grad and not n.startswith("head.")}
    params = dict(plain.named_parameters())

    # Fault injection for tests of failure handling: RAYTUNE_FT_INJECT_FAULT=<strategy>:<fault>, where
    # fault is raise (at start), nan (loss), or exit_once (the process dies after epoch 1, first time only)
    target, _, fault = os.environ.get("RAYTUNE_FT_INJECT_FAULT", "").partition(":")
    if target != config["strategy"]["name"]:
        fault = ""
    elif fault == "raise":
        raise ValueError(f"fault injected by RAYTUNE_FT_INJECT_FAULT for strategy {target}")
    extra = {}
    if in_ray:
        import ray.util

        pg = ray.util.get_current_placement_group()
        extra["pg_id"] = pg.id.hex() if pg else ""  # lets the driver free it when Tune stops the trial
        extra["node_id"] = ray.get_runtime_context().get_node_id()
    sign = 1.0 if config["mode"] == "max" else -1.0
    best_score, best_epoch, history, first_step_s, step, trainable = -math.inf, 0, [], None, 0, 0
    trial_dir = Path(config["trial_dir"])
    resumes, start_epoch = 0, 1
    saved = load_resume_state(trial_dir, config)
    if saved is not None:  # go on from the last finished epoch
        plain.load_state_dict(saved["model"], strict=False)
        optimizer.load_state_dict(saved["optimizer"])
        strategy.load_state_dict(plain, saved["strategy"])
        best_score, best_epoch, step, trainable = saved["best_score"], saved["best_epoch"], saved["step"], saved["trainable"]
        history, resumes = saved["history"], saved["resumes"] + 1
        start_epoch = history[-1]["epoch"] + 1
        # The last saved epoch's report may not have reached Ray before the process died: send it
        # again (the sweep keeps one row per epoch; the schedulers record a rung once per trial).
        report({**history[-1], **extra, "resumes": resumes})
    for epoch in range(start_epoch, training["epochs"] + 1):
        if fault == "exit_once" and epoch == 2 and not (trial_dir / ".fault_injected").exists():
            (trial_dir / ".fault_injected").touch()
            os._exit(3)  # as a worker killed by the OS would: no exception, no cleanup
        scales = set_scales(optimizer, strategy, knobs, epoch, hp.get("head_lr_mult", 1.0))
        trainable = max(trainable, trainable_now(optimizer))
        model.train()
        for module in strategy.eval_modules(plain, knobs, epoch):
            module.eval()
        epoch_start, seen, loss_sum = time.perf_counter(), 0, 0.0
        for batch in train_loader:
            with accelerator.accumulate(model):
                set_lr(optimizer, schedule(step))
                logits = model(**_to_inputs(batch, meta, accelerator.device))
                loss = F.cross_entropy(logits.float(), batch["labels"].to(accelerator.device), weight=weights,
                                       label_smoothing=hp["label_smoothing"])
                if fault == "nan":
                    loss = loss * float("nan")
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"training loss became {loss.item()} at epoch {epoch}: "
                                             "lower the learning rate or turn off fp16")
                total_loss = loss
                extra_term = strategy.penalty(plain)  # e.g. AdaLoRA's orthogonal regulariser
                if extra_term is not None:
                    total_loss = total_loss + extra_term
                if anchors:
                    total_loss = total_loss + hp["l2sp"] / 2 * sum(((params[n] - a) ** 2).sum() for n, a in anchors.items())
                accelerator.backward(total_loss)
                optimizer.step()
                if accelerator.sync_gradients:
                    step += 1
                    strategy.after_step(plain, step)
                optimizer.zero_grad()
            if first_step_s is None:
                first_step_s = time.perf_counter() - started
            seen += len(batch["labels"])
            loss_sum += float(loss.detach()) * len(batch["labels"])
        train_seconds = time.perf_counter() - epoch_start
        totals = accelerator.reduce(torch.tensor([loss_sum, float(seen)], device=accelerator.device), "sum")
        loss_sum, seen = float(totals[0]), int(totals[1])  # over every worker
        eval_start = time.perf_counter()
        val = evaluate(model, val_loader, meta, accelerator.device, num_classes,
                       mixed_precision=training["mixed_precision"], gather=accelerator.gather_for_metrics)
        eval_seconds, save_start = time.perf_counter() - eval_start, time.perf_counter()
        score = val["accuracy"] if config["metric"] == "val_accuracy" else val["f1"] if config["metric"] == "val_f1" else val["loss"]
        if sign * score > best_score:
            best_score, best_epoch = sign * score, epoch
            if training.get("keep_checkpoint", True) and accelerator.is_main_process:
                _save_best(plain, trial_dir, config, meta, epoch, val)
        metrics = {
            "epoch": epoch,
            "train_loss": loss_sum / max(1, seen),
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            "val_f1": val["f1"],
            "best_epoch": best_epoch,
            "trainable_params": trainable,
            "total_params": total,
            "samples_per_sec": seen / max(train_seconds, 1e-9),
            "train_seconds": train_seconds,
            "eval_seconds": eval_seconds,
            "first_step_s": first_step_s,
            "data_load_s": data_load_s,
            "world_size": accelerator.num_processes,
            "distributed_type": str(accelerator.distributed_type),
            "peak_memory_mb": _peak_memory_mb(accelerator.device),
            "lr": head_lr(optimizer),
            "lr_scales": scales,
            "checkpoint_path": str(trial_dir / "best") if best_epoch and training.get("keep_checkpoint", True) else "",
            "resumes": resumes,
            **extra,
        }
        history.append(metrics)
        if accelerator.is_main_process and training.get("keep_checkpoint", True):
            _save_resume_state(trial_dir, config, plain, optimizer, strategy.state_dict(plain), history=history, step=step,
                               best_score=best_score, best_epoch=best_epoch, trainable=trainable, resumes=resumes)
            storage.sync_up(trial_dir)  # to the run's URI, when it mirrors to one
        metrics["checkpoint_seconds"] = time.perf_counter() - save_start  # best + resumable state
        accelerator.wait_for_everyone()  # no worker reports an epoch before its checkpoint is complete
        patience = training.get("patience")
        if patience and epoch - best_epoch >= patience and epoch < training["epochs"]:
            metrics["stop_reason"] = "patience"  # no better validation score for `patience` epochs: the last
        report(metrics)  # report says why, so the sweep tells this stop from the scheduler's
        if metrics.get("stop_reason"):
            break
    return history


def _resume_key(config: dict) -> str:
    """What must match for a saved state to be this trial's: its strategy, hyperparameters and seed."""
    return json.dumps([config["strategy"], config["hparams"], config["seed"], config["model"]], sort_keys=True,
                      default=str)


def _save_resume_state(trial_dir: Path, config: dict, model, optimizer, strategy_state: dict, **state) -> None:
    """Trainable weights, optimizer and strategy state, and the loop's counters after an epoch, swapped
    in atomically."""
    import torch

    trial_dir.mkdir(parents=True, exist_ok=True)
    epoch = state["history"][-1]["epoch"]
    folder = trial_dir / f"last-epoch{epoch}"
    folder.mkdir(exist_ok=True)
    history = [{k: v for k, v in m.items() if k != "lr_scales"} for m in state["history"]]
    torch.save({"model": trainable_state(model), "optimizer": optimizer.state_dict(), "strategy": strategy_state},
               folder / RESUME_FILE)
    (folder / "state.json").write_text(json.dumps({**state, "history": history, "key": _resume_key(config)}))
    _swap_link(trial_dir, "last", folder)


def load_resume_state(trial_dir: Path, config: dict) -> Optional[dict]:
    """The state `_save_resume_state` left for this trial, or None (none there, or another trial's)."""
    import torch

    folder = Path(trial_dir) / "last"
    if not (folder / "state.json").exists():
        return None
    state = json.loads((folder / "state.json").read_text())
    if state.pop("key") != _resume_key(config):
        return None
    tensors = torch.load(folder / RESUME_FILE, map_location="cpu", weights_only=True)
    return {**state, **tensors}


def _swap_link(trial_dir: Path, name: str, folder: Path) -> None:
    """Point `trial_dir/name` at `folder` in one rename, then remove the folders it pointed at before."""
    import shutil

    link = trial_dir / f".{name}.{os.getpid()}"
    link.unlink(missing_ok=True)
    link.symlink_to(folder.name)
    os.replace(link, trial_dir / name)  # atomic: `name` always points at a complete folder
    for old in trial_dir.glob(f"{name}-epoch*"):
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)


def _save_best(model, trial_dir: Path, config: dict, meta: dict, epoch: int, val: dict) -> None:
    """Write the best weights into a new folder, then swap the `best` link to it in one rename."""
    from safetensors.torch import save_file

    folder = trial_dir / f"best-epoch{epoch}"
    folder.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), str(folder / CHECKPOINT_FILE))
    (folder / "trial.json").write_text(json.dumps({
        "epoch": epoch,
        "validation": val,
        "config": {**config, "classes": meta["classes"]},
    }, indent=1))
    _swap_link(trial_dir, "best", folder)
