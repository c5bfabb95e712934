"""EWC in the worker: the Fisher entries of the weights a trial trains, and the penalty they weigh."""
from __future__ import annotations

from pathlib import Path

from raytune_ft.ewc.config import FISHER_FILE


def load_fisher(data_dir, anchors: dict) -> dict:
    """The Fisher entries of the parameters in `anchors` ({name: pretrained value}: the backbone weights
    that train), on their device. A missing file or entry is an error that says what to do."""
    from safetensors.torch import load_file

    path = Path(data_dir) / FISHER_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no Fisher information for ewc > 0: the data were prepared by a job whose "
                                "trials could not have ewc > 0; prepare the data again with this job")
    fisher = load_file(str(path))
    missing = [n for n in anchors if n not in fisher]
    if missing:
        raise ValueError(f"{path} has no entry for {len(missing)} trained parameter(s), e.g. {missing[0]!r}: it was "
                         "estimated for another model; prepare the data again with this job's model section")
    wrong = [n for n, a in anchors.items() if fisher[n].shape != a.shape]
    if wrong:
        raise ValueError(f"{path}: {wrong[0]!r} has shape {tuple(fisher[wrong[0]].shape)}, the model's is "
                         f"{tuple(anchors[wrong[0]].shape)}; prepare the data again with this job's model section")
    return {n: fisher[n].to(device=a.device, dtype=a.dtype) for n, a in anchors.items()}


def ewc_penalty(params: dict, anchors: dict, fisher: dict, strength: float):
    """strength / 2 · Σ F (θ − θ*)² over the parameters in `fisher`."""
    return strength / 2 * sum((fisher[n] * (params[n] - anchors[n]) ** 2).sum() for n in fisher)
