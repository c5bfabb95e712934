"""One trial as a recipe (torchtune's shape): `setup` builds the data (trial_data.py), model, optimizer,
schedule and the loss's penalties (penalties.py); `run` trains epoch by epoch, each ending with
`validate` and one checkpoint + report (`save`). A trial started again (its worker group restarted,
or the sweep resumed) `restore`s the latest checkpoint first and goes on from the next epoch.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Optional

from raytune_ft.metric import sign
from raytune_ft.train.checkpoint import (LocalCheckpoints, RayCheckpoints, read_resume_state, trainable_state,
                                         write_checkpoint)
from raytune_ft.train.config import TrialConfig
from raytune_ft.train.device import peak_memory, prepare_device, release_device
from raytune_ft.train.evaluate import evaluate, model_inputs
from raytune_ft.train.from_data import init_batches, init_prototypes
from raytune_ft.train.grad_checkpoint import enable_gradient_checkpointing
from raytune_ft.train.faults import Faults
from raytune_ft.train.model import build_trial_model
from raytune_ft.train.optim import (build_optimizer, class_weights, head_lr, lr_schedule, set_lr, set_scales,
                                    trainable_now)
from raytune_ft.train.penalties import Penalties
from raytune_ft.train.sharding import Sharding
from raytune_ft.train.tasks import score_of
from raytune_ft.train.trial_data import load_trial_data

SCORES = {"val_accuracy": "accuracy", "val_f1": "f1", "val_loss": "loss"}  # metric -> evaluate()'s key
# The loop reads nothing back from the device while it trains, but every this many optimizer steps, to see
# that the loss is still finite (and at the end of the epoch): each read waits for the GPU to catch up.
FINITE_CHECK_EVERY = 50


class TrialRecipe:
    def __init__(self, config: TrialConfig, report: Optional[Callable[[dict], None]] = None):
        self.config, self.training, self.hp = config, config.training, config.hparams
        self.in_ray = report is None and _in_ray_train()
        self.report = report or (lambda m: None)
        self.checkpoints = RayCheckpoints() if self.in_ray else LocalCheckpoints(Path(config.trial_dir))
        self.faults = Faults(config.strategy["name"], Path(config.trial_dir))
        self.started = time.perf_counter()
        # what the loop carries from epoch to epoch (and a checkpoint saves)
        self.best_score, self.best_epoch, self.step, self.trainable, self.resumes = -math.inf, 0, 0, 0, 0
        self.history: list[dict] = []
        self.first_step_s: Optional[float] = None

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        import torch
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        from raytune_ft import internals

        config, training = self.config, self.training
        torch.set_num_threads(max(1, int(config.resources.cpus_per_worker)))
        if self.in_ray:
            _alone_is_not_distributed()
        # A trial owns its process's Accelerate state (a singleton): one called directly after another with
        # another mixed precision would otherwise be refused ("AcceleratorState has already been initialized")
        internals.fresh_accelerate_state()
        from accelerate.utils import DataLoaderConfiguration

        self.sharding = Sharding(config)  # FSDP (resources.distributed: fsdp), or a whole model per worker
        self.accelerator = accelerator = Accelerator(
            mixed_precision=training.mixed_precision, gradient_accumulation_steps=training.grad_accum_steps,
            cpu=config.resources.gpus_per_worker == 0, **self.sharding.accelerator_options(),
            # batches from pinned memory go to the GPU while it computes (trial_data.py pins them on a GPU)
            dataloader_config=DataLoaderConfiguration(non_blocking=True))
        prepare_device(accelerator.device, training, config.resources)
        set_seed(config.seed, deterministic=training.deterministic)
        self.faults.on_start()
        data = load_trial_data(config, accelerator.num_processes)
        self.meta, self.tasks, self.text_augment = data.meta, data.tasks, data.text_augment
        self.train_samples, self.val_samples, self.data_load_s = data.train_samples, data.val_samples, data.load_seconds
        self.saved = self._saved()  # read before the model is built: a resumed trial's head is its trained one
        prototypes = config.model.get("head") == "prototype" and self.saved is None
        self.model, self.strategy, self.strategy_cfg = build_trial_model(
            config.model, config.strategy, self.hp.head_dropout, self.tasks.outputs, total_steps=data.total_steps,
            head_init=(lambda model: init_prototypes(model, data.train_set, self.meta, accelerator.device,
                                                     training.eval_batch_size)) if prototypes else None,
            drop_path_rate=self.hp.drop_path_rate,
            batches=(lambda: init_batches(data.train_set, self.meta, int(self.hp.batch_size), config.seed))
            if self.saved is None else None)
        self.total_params = sum(p.numel() for p in self.model.parameters())
        if self.hp.gradient_checkpointing:
            enable_gradient_checkpointing(self.model)
        self.model = self.sharding.shard(self.model, accelerator)  # the optimizer is built on the shards
        self.optimizer = build_optimizer(self.model, self.strategy, self.strategy_cfg, self.hp, training)
        self.model, self.optimizer, self.train_loader, self.val_loader = self.sharding.prepare(
            accelerator, self.model, self.optimizer, data.train_loader, data.val_loader)
        self.test_loader = accelerator.prepare(data.test_loader) if data.test_loader is not None else None
        self.schedule = lr_schedule(training.schedule, data.total_steps, self.hp.warmup_ratio, data.steps_per_epoch,
                                    training.step_every_epochs, training.step_gamma)
        self.plain = accelerator.unwrap_model(self.model)
        self.class_weights = [class_weights(counts).to(accelerator.device) for counts in data.train_counts] \
            if training.class_weighted_loss else None  # one per task
        self.penalties = Penalties(self.strategy, self.plain, self.hp, config.data_dir)  # taken before any step
        self.where = {}  # the node and placement group, under Ray
        if self.in_ray:
            import ray
            import ray.util

            pg = ray.util.get_current_placement_group()
            self.where = {"pg_id": pg.id.hex() if pg else "",  # lets the driver free it when Tune stops the trial
                          "node_id": ray.get_runtime_context().get_node_id()}

    # ------------------------------------------------------------------ state

    def _saved(self) -> Optional[dict]:
        """The latest checkpoint's state, if there is one of this trial (what `restore` goes on from)."""
        latest = self.checkpoints.latest()
        if latest is None:
            return None
        with latest as folder:
            return read_resume_state(folder, self.config)

    def restore(self) -> None:
        """Go on from the latest checkpoint, if there is one of this trial."""
        saved, self.saved = self.saved, None  # not held while training
        if saved is None:
            return
        self.sharding.load(self.plain, self.optimizer, saved)
        if saved.get("scaler") and self.accelerator.scaler is not None:  # fp16: the loss scale it had reached
            self.accelerator.scaler.load_state_dict(saved["scaler"])
        self.strategy.load_state_dict(self.plain, saved["strategy"])
        self.best_score, self.best_epoch, self.step = saved["best_score"], saved["best_epoch"], saved["step"]
        self.trainable, self.history, self.resumes = saved["trainable"], saved["history"], saved["resumes"] + 1
        # The last saved epoch's report may not have reached the sweep before the process died: send it
        # again, without a checkpoint (the sweep keeps one row per epoch; schedulers record a rung once).
        # It ran where it ran (its node_id stays); the placement group to free is now this one.
        again = {**self.history[-1], **{k: v for k, v in self.where.items() if k == "pg_id"}, "resumes": self.resumes}
        if self.checkpoints.location:  # the sweep may not have recorded where that epoch's checkpoint is
            again["checkpoint_uri"] = self.checkpoints.location
        self.checkpoints.commit(again, None, False, self.report)

    def save(self, metrics: dict, val: dict, improved: bool) -> None:
        """One checkpoint of this epoch (rank 0 writes it) and the epoch's report, together."""
        scaler = self.accelerator.scaler
        state = {"best_score": self.best_score, "best_epoch": self.best_epoch, "step": self.step,
                 "trainable": self.trainable, "resumes": self.resumes,
                 "scaler": scaler.state_dict() if scaler is not None else None,
                 "history": [{k: v for k, v in m.items() if k != "lr_scales"} for m in self.history]}
        config = self.config.model_copy(update={"classes": self.meta["classes"], "tasks": self.meta.get("tasks")})
        start = time.perf_counter()  # FSDP: every worker sends its shards (rank 0 writes them)
        gathered = self.sharding.gather(self.plain, self.optimizer) if self.training.keep_checkpoint else None

        def write(folder: Path) -> None:
            weights, optimizer_state = gathered or (trainable_state(self.plain), self.optimizer.state_dict())
            write_checkpoint(folder, config=config, weights=weights, optimizer_state=optimizer_state,
                             strategy_state=self.strategy.state_dict(self.plain), epoch=metrics["epoch"],
                             validation=val, state=state)
            metrics["checkpoint_seconds"] = time.perf_counter() - start  # before the report carries it

        keep = self.training.keep_checkpoint and self.accelerator.is_main_process
        self.accelerator.wait_for_everyone()
        self.checkpoints.commit(metrics, write if keep else None, improved, self.report)

    # ------------------------------------------------------------------ one epoch

    def train_epoch(self, epoch: int, limit: Optional[int] = None) -> tuple[float, int, float]:
        """(mean training loss, samples seen, seconds), over every worker; `limit`: at most this many batches (the
        plan's calibration times a few). The running loss stays on the device;
        it is read (a wait for the device) every FINITE_CHECK_EVERY steps and at the end, to stop a diverging
        trial. An fp16 step the gradient scaler skips (an overflow) is not counted: the schedule, the step
        counter and the strategy's per-step work (AdaLoRA's budget) follow the steps taken."""
        import torch

        acc, model, optimizer = self.accelerator, self.model, self.optimizer
        model.train()
        if self.text_augment is not None:
            self.text_augment.epoch = epoch  # each epoch its own draw, the same again when resumed
        for module in self.strategy.eval_modules(self.plain, self.strategy_cfg, epoch):
            module.eval()
        start, seen = time.perf_counter(), 0
        loss_sum = torch.zeros((), device=acc.device)
        for i, batch in enumerate(self.train_loader, 1):
            with acc.accumulate(model):
                set_lr(optimizer, self.schedule(self.step))
                logits = model(**model_inputs(batch, self.meta, acc.device))
                loss = self.tasks.loss(logits, batch["labels"].to(acc.device), self.class_weights,
                                       self.hp.label_smoothing)
                loss = self.faults.on_loss(loss)
                acc.backward(loss + self.penalties())
                optimizer.step()
                if acc.sync_gradients and not optimizer.step_was_skipped:
                    self.step += 1
                    self.strategy.after_step(self.plain, self.step)
                optimizer.zero_grad()
            if self.first_step_s is None:
                self.first_step_s = time.perf_counter() - self.started
            seen += len(batch["labels"])
            loss_sum += loss.detach() * len(batch["labels"])
            if i % FINITE_CHECK_EVERY == 0:
                _check_finite(loss_sum, epoch)
            if i == limit:
                break
        _check_finite(loss_sum, epoch)
        totals = acc.reduce(torch.stack([loss_sum.float(), torch.tensor(float(seen), device=acc.device)]), "sum")
        seconds = time.perf_counter() - start  # after the reduce: the device has finished the epoch's work
        return float(totals[0]) / max(1, int(totals[1])), int(totals[1]), seconds

    def validate(self, loader=None) -> dict:
        return evaluate(self.model, loader or self.val_loader, self.meta, self.accelerator.device,
                        len(self.meta["classes"]), mixed_precision=self.training.mixed_precision,
                        gather=self.accelerator.gather_for_metrics, tasks=self.tasks)

    # ------------------------------------------------------------------ the whole trial

    def run(self) -> list[dict]:
        try:
            return self._epochs()
        finally:  # what the trial held on its device goes back (a process may run another trial next)
            if hasattr(self, "accelerator"):
                release_device(self.accelerator.device)

    def _epochs(self) -> list[dict]:
        self.setup()
        self.restore()
        direction, training = sign(self.config.mode), self.training
        start_epoch = self.history[-1]["epoch"] + 1 if self.history else 1
        for epoch in range(start_epoch, training.epochs + 1):
            self.faults.on_epoch(epoch)
            scales = set_scales(self.optimizer, self.strategy, self.strategy_cfg, epoch, self.hp.head_lr_mult)
            self.trainable = max(self.trainable, trainable_now(self.optimizer))
            train_loss, seen, train_seconds = self.train_epoch(epoch)
            eval_start = time.perf_counter()
            val = self.validate()
            score = score_of(val, self.config.metric, SCORES)
            improved = direction * score > self.best_score
            if improved:
                self.best_score, self.best_epoch = direction * score, epoch
            tested = self.validate(self.test_loader) if improved and self.test_loader is not None else None
            eval_seconds = time.perf_counter() - eval_start
            metrics = {
                "epoch": epoch, "train_loss": train_loss, "val_loss": val["loss"], "val_accuracy": val["accuracy"],
                "val_f1": val["f1"], **self.tasks.report(val),  # multi-task: each task's val_accuracy.<task>, ...
                "best_epoch": self.best_epoch, "trainable_params": self.trainable,
                "total_params": self.total_params, "samples_per_sec": seen / max(train_seconds, 1e-9),
                "train_seconds": train_seconds, "eval_seconds": eval_seconds, "first_step_s": self.first_step_s,
                "data_load_s": self.data_load_s, "world_size": self.accelerator.num_processes,
                "distributed_type": self.sharding.distributed_type(self.accelerator),
                **peak_memory(self.accelerator.device), **self.sharding.memory(self.plain, self.optimizer,
                                                                                self.accelerator.device),
                "lr": head_lr(self.optimizer),
                "lr_scales": scales, "resumes": self.resumes, **self.where,
                # what Ray Train ranks checkpoints by (CheckpointConfig): only an epoch better than every
                # earlier one counts, so the best Ray keeps is this trial's best_epoch (ties: the first)
                "checkpoint_score": direction * score if improved else float("-inf"),
                "train_samples": self.train_samples, "val_samples": self.val_samples,
                "data_seed": self.config.data_seed,
            }
            if tested:  # this is the trial's best-validation epoch so far: its test scores are the trial's
                metrics.update(test_accuracy=tested["accuracy"], test_f1=tested["f1"], test_loss=tested["loss"],
                               test_samples=self.meta["splits"]["test"]["samples"],
                               **self.tasks.report(tested, "test"))
            if training.patience and epoch - self.best_epoch >= training.patience and epoch < training.epochs:
                metrics["stop_reason"] = "patience"  # no better validation score for `patience` epochs: the
                # last report says why, so the sweep tells this stop from the scheduler's
            self.history.append(metrics)
            metrics["checkpoint_seconds"] = 0.0
            self.save(metrics, val, improved)
            if metrics.get("stop_reason"):
                break
        return self.history


def _check_finite(loss_sum, epoch: int) -> None:
    import torch

    if not torch.isfinite(loss_sum):
        raise FloatingPointError(f"training loss became {float(loss_sum)} at epoch {epoch}: lower the learning rate "
                                 "or turn off fp16")


def _in_ray_train() -> bool:
    try:
        from ray.train import get_context

        get_context()
        return True
    except Exception:
        return False


def _alone_is_not_distributed() -> None:
    """A trial of one Train worker trains as one plain process: Ray's TorchTrainer sets LOCAL_RANK / RANK /
    WORLD_SIZE even then, and Accelerate would wrap the model in DDP for a world of 1 (0.92x the samples/s,
    benchmarks/results/trial_overhead.md). Hidden from Accelerate (the fast path sets none of them)."""
    import os

    from ray.train import get_context

    if get_context().get_world_size() == 1:
        for key in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK"):
            os.environ.pop(key, None)
