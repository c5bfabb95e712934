"""A trial's checkpoints. Each is one self-contained folder, written after an epoch:

    model.safetensors   the weights that trained, and buffers (BatchNorm statistics)
    resume.pt           optimizer and strategy state (AdaLoRA's rank budget)
    state.json          the loop's counters and history: what a restarted trial goes on from
    trial.json          the epoch, its validation scores and the TrialConfig: what rebuilds the model

Under Ray, Ray Train owns them: the loop reports each with `ray.train.report(metrics, checkpoint=...)`,
Ray stores it under the trial's `RunConfig(storage_path=...)` (the run folder, or the run's bucket
URI), keeps the best by the metric and the latest (`CheckpointConfig`), and hands the latest back
through `ray.train.get_checkpoint()` to a restarted worker group or a resumed sweep. Without Ray (a
direct call), `LocalCheckpoints` keeps the same two in the trial folder, as `best` and `last` links.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, ContextManager, Optional

WEIGHTS, RESUME, STATE, TRIAL = "model.safetensors", "resume.pt", "state.json", "trial.json"


def trainable_state(model) -> dict:
    """The parameters that trained (all a strategy changed) plus buffers such as BatchNorm statistics."""
    keep = trainable_names(model)
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k in keep}


def trainable_names(model) -> set[str]:
    """The names `trainable_state` keeps: parameters that train, and buffers (a buffer shared by several
    modules, as VeRA's projections are, under one name)."""
    return {n for n, p in model.named_parameters() if p.requires_grad} | {n for n, _ in model.named_buffers()}


def write_checkpoint(folder: Path, *, config, weights: dict, optimizer_state: dict, strategy_state: dict,
                     epoch: int, validation: dict, state: dict) -> None:
    """Everything of one epoch into `folder` (see the module's docstring). weights: `trainable_state(model)`
    (or, under FSDP, the same gathered from the shards); optimizer_state: the optimizer's state_dict()."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(folder / WEIGHTS))
    torch.save({"optimizer": optimizer_state, "strategy": strategy_state}, folder / RESUME)
    (folder / STATE).write_text(json.dumps({**state, "key": config.key()}))
    (folder / TRIAL).write_text(json.dumps({"epoch": epoch, "validation": validation,
                                            "config": config.model_dump(mode="json")}, indent=1))


def read_resume_state(folder: Path, config) -> Optional[dict]:
    """What a restarted trial goes on from, or None when the checkpoint is another trial's."""
    import torch
    from safetensors.torch import load_file

    state = json.loads((folder / STATE).read_text())
    if state.pop("key") != config.key():
        return None
    saved = torch.load(folder / RESUME, map_location="cpu", weights_only=True)
    return {**state, **saved, "model": load_file(str(folder / WEIGHTS))}


class LocalCheckpoints:
    """Without Ray: `<trial_dir>/epoch-N` folders, `last` and `best` links swapped in atomically, the
    others removed. `location`: where the checkpoint `latest()` found is."""

    def __init__(self, trial_dir: Path):
        self.trial_dir = Path(trial_dir)

    def latest(self) -> Optional[ContextManager[Path]]:
        last = self.trial_dir / "last"
        self.location = str(last.resolve()) if (last / STATE).exists() else None
        return contextlib.nullcontext(last) if self.location else None

    def commit(self, metrics: dict, write: Optional[Callable[[Path], None]], is_best: bool,
               report: Callable[[dict], None]) -> None:
        if write is not None:
            folder = self.trial_dir / f"epoch-{metrics['epoch']}"
            write(folder)
            if is_best:
                self._swap_link("best", folder)
            self._swap_link("last", folder)
            keep = {os.path.realpath(self.trial_dir / n) for n in ("best", "last")}
            for old in self.trial_dir.glob("epoch-*"):
                if os.path.realpath(old) not in keep:
                    shutil.rmtree(old, ignore_errors=True)
            metrics["checkpoint_path"] = str(folder)  # the history the loop returns says it too
        report(metrics)

    def _swap_link(self, name: str, folder: Path) -> None:
        link = self.trial_dir / f".{name}.{os.getpid()}"
        link.unlink(missing_ok=True)
        link.symlink_to(folder.name)
        os.replace(link, self.trial_dir / name)  # atomic: `name` always points at a complete folder


class RayCheckpoints:
    """Under Ray Train: the latest checkpoint comes from `ray.train.get_checkpoint()`; each epoch's is
    reported with its metrics (rank 0 writes it, every rank reports), and Ray stores and prunes them.
    A report counts once Ray Train's controller has taken it (it polls the workers every 2 s): a worker
    that dies sooner after reporting starts again from the checkpoint before."""

    def latest(self) -> Optional[ContextManager[Path]]:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        self.location = None if checkpoint is None else checkpoint_uri(checkpoint)
        return None if checkpoint is None else _as_path(checkpoint)

    def commit(self, metrics: dict, write: Optional[Callable[[Path], None]], is_best: bool,
               report: Callable[[dict], None]) -> None:
        import tempfile

        import ray.train

        if write is None:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="raytune-ft-ckpt-") as tmp:
            write(Path(tmp))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


@contextlib.contextmanager
def _as_path(checkpoint):
    with checkpoint.as_directory() as d:
        yield Path(d)


def checkpoint_uri(checkpoint) -> str:
    """Where Ray stored a checkpoint, as a path or a URI that `open_checkpoint` reads back."""
    scheme = {"s3": "s3", "gcs": "gs"}.get(checkpoint.filesystem.type_name)
    return f"{scheme}://{checkpoint.path}" if scheme else checkpoint.path


@contextlib.contextmanager
def open_checkpoint(location):
    """A checkpoint folder on this machine: `location` is a checkpoint folder, a trial folder (its
    `best`), or a URI (s3://, gs://) that Ray stored one at, downloaded for the duration."""
    location = str(location)
    if "://" not in location:
        folder = Path(location)
        yield folder / "best" if (folder / "best" / TRIAL).exists() else folder
        return
    import ray.train

    with _as_path(ray.train.Checkpoint(location)) as d:
        yield d
