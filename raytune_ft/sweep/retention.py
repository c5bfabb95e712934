"""What a sweep keeps of its trials' checkpoints, and how much that is.

A checkpoint holds the weights a trial trained (the whole model for `full`; a PEFT strategy's adapters and
head, and buffers such as BatchNorm statistics) and, in `resume.pt`, the optimizer's state (AdamW: two
moments, twice the trainable weights). At 7B parameters, one full fine-tuning checkpoint with its AdamW state
is ~84 GB, so what stays is decided here:

- while a trial runs, Ray Train keeps its best checkpoint (by validation) and its latest, each with the
  optimizer's state: what a restarted worker group or a resumed sweep goes on from;
- once a trial has ended it never resumes (a resumed sweep leaves ended trials as they are): its latest
  checkpoint goes unless it is the best, and the best keeps its weights but not the optimizer's state
  (`trial_ended`);
- once a stage has ended, only the best checkpoints of the `search.keep_best` best trials of each strategy
  (and train size) stay; the others go (`stage_ended`). The test evaluation after the sweep reads the best
  search trial's of each strategy, and the confirm stage retrains from scratch, so 1 is enough; 0 keeps
  none (no test reports then).

`checkpoint_bytes` of a trial (trials.parquet; summed in strategies.parquet) is what is left of it.
"""
from __future__ import annotations

from typing import Optional

from raytune_ft.cluster import storage
from raytune_ft.layout import RunLayout
from raytune_ft.metric import best, best_first

RESUME_FILE = "resume.pt"  # train/checkpoint.py's: the optimizer's and the strategy's state


def trial_folder(layout: RunLayout, trial_id: str) -> str:
    """Where Ray Train keeps a trial's checkpoints (sweep/trial.py names its run train-<trial id>)."""
    return storage.join(storage.ray_storage(layout.ray), f"train-{trial_id}")


def best_checkpoint(history: list[dict], metric: str, mode: str) -> Optional[str]:
    """The best epoch's checkpoint (its path or URI), as the sweep recorded it; None without one."""
    scored = [m for m in history if m.get(metric) is not None and m.get("checkpoint_path")]
    return best(scored, lambda m: m[metric], mode)["checkpoint_path"] if scored else None


def trial_ended(layout: RunLayout, trial_id: str, history: list[dict], metric: str, mode: str) -> int:
    """An ended trial keeps its best checkpoint's weights only; return the bytes left in its folder."""
    from pyarrow import fs

    keep = best_checkpoint(history, metric, mode)
    filesystem, folder = storage.filesystem(trial_folder(layout, trial_id))
    for entry in _entries(filesystem, folder):
        if entry.type != fs.FileType.Directory or not entry.base_name.startswith("checkpoint_"):
            continue
        try:  # (Ray Train may be removing an old one itself as the trial winds down)
            if keep is None or not _same(entry.path, keep):
                filesystem.delete_dir(entry.path)
            elif filesystem.get_file_info(f"{entry.path}/{RESUME_FILE}").type == fs.FileType.File:
                filesystem.delete_file(f"{entry.path}/{RESUME_FILE}")
        except FileNotFoundError:
            pass
    return folder_bytes(layout, trial_id)


def stage_ended(layout: RunLayout, records: dict, stage: str, keep_best: int, metric: str, mode: str) -> dict:
    """After a stage: every trial of it but the `keep_best` best of each strategy and train size loses its
    checkpoints. Returns {trial id: bytes left} for the stage's trials."""
    groups: dict = {}
    for tid, rec in records.items():
        if rec.stage == stage:
            groups.setdefault((rec.strategy["name"], rec.train_size), []).append((tid, rec))
    left = {}
    for members in groups.values():
        scored = [(tid, best(rec.history, lambda m: m[metric], mode)[metric]) for tid, rec in members
                  if rec.status != "error" and any(m.get(metric) is not None for m in rec.history)]
        kept = {tid for tid, _ in best_first(scored, lambda x: x[1], mode)[:keep_best]}
        for tid, _ in members:
            if tid not in kept:
                _remove(trial_folder(layout, tid))
            left[tid] = folder_bytes(layout, tid)
    return left


def folder_bytes(layout: RunLayout, trial_id: str) -> int:
    """Bytes of everything under a trial's checkpoint folder (0 when there is none)."""
    from pyarrow import fs

    filesystem, folder = storage.filesystem(trial_folder(layout, trial_id))
    if filesystem.get_file_info(folder).type != fs.FileType.Directory:
        return 0
    return sum(e.size or 0 for e in filesystem.get_file_info(fs.FileSelector(folder, recursive=True))
               if e.type == fs.FileType.File)


def _entries(filesystem, folder: str) -> list:
    from pyarrow import fs

    if filesystem.get_file_info(folder).type != fs.FileType.Directory:
        return []
    return filesystem.get_file_info(fs.FileSelector(folder))


def _remove(location: str) -> None:
    from pyarrow import fs

    filesystem, folder = storage.filesystem(location)
    try:
        if filesystem.get_file_info(folder).type == fs.FileType.Directory:
            filesystem.delete_dir(folder)
    except FileNotFoundError:
        pass


def _same(path: str, location: str) -> bool:
    """Whether a listed folder is the recorded checkpoint (a path, or a URI whose path part it is)."""
    return location.rstrip("/").endswith(path.rstrip("/").lstrip("/")) or path.rstrip("/") == location.rstrip("/")
