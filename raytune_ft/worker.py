"""One trial's training loop, run inside every Ray Train worker, or directly (tests, debugging).

    metrics = train_trial(trial_config(job, data_dir, trial_dir, strategy, hparams))  # no Ray

Accelerate handles the device, mixed precision, gradient accumulation and the distributed data
split; the strategy decides what trains. Each epoch ends with a validation pass and one report:
to Ray Train (and so to Tune) under Ray, to the `report` callable otherwise.
"""
from __future__ import annotations

import json
import math
import os
import resource
import time
from pathlib import Path
from typing import Callable, Optional

from raytune_ft.data import load_meta, load_split
from raytune_ft.metrics import classification_metrics
from raytune_ft.models import SOURCES, build_model
from raytune_ft.strategies import get_strategy

CHECKPOINT_FILE = "model.safetensors"


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
    """A map-style dataset over a dict of equally long tensors."""

    def __init__(self, tensors: dict):
        self.tensors = tensors

    def __len__(self):
        return len(self.tensors["labels"])

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.tensors.items()}


def warmup_cosine(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """LR multiplier: linear warmup from ~0 to 1, then cosine decay to 0 at total_steps."""
    warmup = int(round(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def count_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def trainable_state(model) -> dict:
    """The parameters that trained (all a strategy changed) plus buffers such as BatchNorm statistics."""
    keep = {n for n, p in model.named_parameters() if p.requires_grad}
    keep |= {n for n, _ in model.named_buffers()}
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k in keep}


def build_trial_model(config: dict, num_classes: int):
    """The pretrained model with the strategy applied: the same for training and for reloading."""
    model_cfg = SOURCES.get(config["model"]["source"]).Config.model_validate(config["model"])
    knobs = {k: v for k, v in config["strategy"].items() if k != "name"}
    strategy = get_strategy(config["strategy"]["name"])
    return strategy.apply(build_model(model_cfg, num_classes), knobs), strategy


def load_trial_model(trial_dir):
    """Rebuild a trial's best model from its checkpoint folder (`<trial_dir>/best`)."""
    from safetensors.torch import load_file

    best = Path(trial_dir) / "best"
    config = json.loads((best / "trial.json").read_text())["config"]
    model, _ = build_trial_model(config, len(config["classes"]))
    state = load_file(str(best / CHECKPOINT_FILE))
    missing = set(state) - set(model.state_dict())
    if missing:
        raise ValueError(f"checkpoint {best} has tensors the model lacks: {sorted(missing)[:3]}")
    model.load_state_dict(state, strict=False)
    return model.eval(), config


def _to_inputs(batch: dict, meta: dict, device):
    """Model inputs from a prepared batch: uint8 images are normalised here, on the device."""
    import torch

    inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
    if "pixel_values" in inputs:
        mean = torch.tensor(meta["mean"], device=device).view(1, 3, 1, 1)
        std = torch.tensor(meta["std"], device=device).view(1, 3, 1, 1)
        inputs["pixel_values"] = (inputs["pixel_values"].float() / 255.0 - mean) / std
    return inputs


def evaluate(model, loader, meta, accelerator, num_classes: int) -> dict:
    import torch
    import torch.nn.functional as F

    model.eval()
    all_preds, all_labels, loss_sum = [], [], 0.0
    with torch.no_grad():
        for batch in loader:
            logits = model(**_to_inputs(batch, meta, accelerator.device))
            labels = batch["labels"].to(accelerator.device)
            loss = F.cross_entropy(logits.float(), labels, reduction="sum")
            preds, labels, loss = accelerator.gather_for_metrics((logits.argmax(-1), labels, loss[None]))
            all_preds.append(preds.cpu())
            all_labels.append(labels.cpu())
            loss_sum += float(loss.sum())
    labels, preds = torch.cat(all_labels), torch.cat(all_preds)
    out = classification_metrics(labels, preds, num_classes)
    out["loss"] = loss_sum / max(1, len(labels))
    return out


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


def train_trial(config: dict, report: Optional[Callable[[dict], None]] = None) -> list[dict]:
    """Train one trial; return (and report) one metrics dict per epoch."""
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    started = time.perf_counter()
    in_ray = report is None and _in_ray_train()
    report = report or (_ray_report if in_ray else (lambda m: None))
    training, hp, resources = config["training"], config["hparams"], config["resources"]
    torch.set_num_threads(max(1, int(resources["cpus_per_worker"])))
    accelerator = Accelerator(
        mixed_precision=training["mixed_precision"],
        gradient_accumulation_steps=training["grad_accum_steps"],
        cpu=resources["gpus_per_worker"] == 0,
    )
    set_seed(config["seed"])
    meta = load_meta(config["data_dir"])
    num_classes = len(meta["classes"])
    train_set, val_set = load_split(config["data_dir"], "train"), load_split(config["data_dir"], "validation")

    model, strategy = build_trial_model(config, num_classes)
    trainable, total = count_parameters(model)
    optimizer = torch.optim.AdamW(strategy.param_groups(model, hp["lr"], hp["weight_decay"]))
    generator = torch.Generator().manual_seed(config["seed"])
    train_loader = torch.utils.data.DataLoader(
        _TensorDict(train_set), batch_size=int(hp["batch_size"]), shuffle=True, drop_last=False, generator=generator)
    val_loader = torch.utils.data.DataLoader(_TensorDict(val_set), batch_size=training["eval_batch_size"])
    model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
    steps_per_epoch = math.ceil(len(train_loader) / training["grad_accum_steps"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(steps_per_epoch * training["epochs"], hp["warmup_ratio"]))

    extra = {}
    if in_ray:
        import ray.util

        pg = ray.util.get_current_placement_group()
        extra["pg_id"] = pg.id.hex() if pg else ""  # lets the driver free it when Tune stops the trial
    sign = 1.0 if config["mode"] == "max" else -1.0
    best_score, best_epoch, history, first_step_s = -math.inf, 0, [], None
    trial_dir = Path(config["trial_dir"])
    for epoch in range(1, training["epochs"] + 1):
        model.train()
        if strategy.backbone_eval:
            accelerator.unwrap_model(model).backbone.eval()
        epoch_start, seen, loss_sum = time.perf_counter(), 0, 0.0
        for batch in train_loader:
            with accelerator.accumulate(model):
                logits = model(**_to_inputs(batch, meta, accelerator.device))
                loss = F.cross_entropy(logits.float(), batch["labels"].to(accelerator.device),
                                       label_smoothing=hp["label_smoothing"])
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"training loss became {loss.item()} at epoch {epoch}: "
                                             "lower the learning rate or turn off fp16")
                accelerator.backward(loss)
                optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
                optimizer.zero_grad()
            if first_step_s is None:
                first_step_s = time.perf_counter() - started
            seen += len(batch["labels"])
            loss_sum += float(loss.detach()) * len(batch["labels"])
        train_seconds = time.perf_counter() - epoch_start
        val = evaluate(model, val_loader, meta, accelerator, num_classes)
        score = val["accuracy"] if config["metric"] == "val_accuracy" else val["f1"] if config["metric"] == "val_f1" else val["loss"]
        improved = sign * score > best_score
        if improved:
            best_score, best_epoch = sign * score, epoch
            if training.get("keep_checkpoint", True) and accelerator.is_main_process:
                _save_best(accelerator.unwrap_model(model), trial_dir, config, meta, epoch, val)
        metrics = {
            "epoch": epoch,
            "train_loss": loss_sum / max(1, seen) * accelerator.num_processes,
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            "val_f1": val["f1"],
            "best_epoch": best_epoch,
            "trainable_params": trainable,
            "total_params": total,
            "samples_per_sec": seen * accelerator.num_processes / max(train_seconds, 1e-9),
            "train_seconds": train_seconds,
            "first_step_s": first_step_s,
            "peak_memory_mb": _peak_memory_mb(accelerator.device),
            "lr": scheduler.get_last_lr()[0],
            "checkpoint_path": str(trial_dir / "best") if best_epoch and training.get("keep_checkpoint", True) else "",
            **extra,
        }
        history.append(metrics)
        report(metrics)
    return history


def _save_best(model, trial_dir: Path, config: dict, meta: dict, epoch: int, val: dict) -> None:
    """Write the best weights atomically: a new folder, then one rename over the old one."""
    import shutil

    from safetensors.torch import save_file

    tmp = trial_dir / f".best.{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), str(tmp / CHECKPOINT_FILE))
    (tmp / "trial.json").write_text(json.dumps({
        "epoch": epoch,
        "validation": val,
        "config": {**config, "classes": meta["classes"]},
    }, indent=1))
    best = trial_dir / "best"
    if best.exists():
        shutil.rmtree(best)
    tmp.rename(best)
