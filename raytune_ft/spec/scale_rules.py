"""The spec's rules for training a model bigger than one device: FSDP (resources.distributed: fsdp),
gradient checkpointing (hparams.gradient_checkpointing) and strategies that need a CUDA GPU (qlora). Each
broken one as (field path, message), with what to do instead; spec/rules.py reports them with the others."""
from __future__ import annotations

from typing import Iterator, Optional

from raytune_ft.searchable import can_be_nonzero
from raytune_ft.strategies import STRATEGIES
from raytune_ft.strategies.base import model_skeleton


def scale_problems(job, model_family: Optional[str]) -> Iterator[tuple[str, str]]:
    """model_family: None when the model's own checks failed (then nothing that builds it is checked)."""
    skeleton = model_skeleton(job) if model_family is not None else None
    yield from fsdp_problems(job, skeleton)
    yield from checkpointing_problems(job, skeleton)
    for i, s in enumerate(job.strategies):
        if STRATEGIES.get(s.name).needs_cuda and job.resources.gpus_per_worker == 0:
            yield f"strategies[{i}]", (f"{s.name} needs a CUDA GPU (its base model is loaded in 4 bits by bitsandbytes), "
                                       "and this job has none (resources.gpus_per_worker: 0): set gpus_per_worker: 1, or "
                                       "use lora, the same adapters on the unquantised model")


def fsdp_problems(job, skeleton) -> Iterator[tuple[str, str]]:
    res = job.resources
    if res.distributed != "fsdp":
        if res.fsdp != type(res.fsdp)():  # options other than the defaults (a resolved spec writes those)
            yield "resources.fsdp", "sets FSDP's options, and resources.distributed is ddp: set distributed: fsdp, or remove it"
        return
    if res.workers_per_trial < 2:
        yield "resources.distributed", ("fsdp shards the model across a trial's workers, and workers_per_trial is 1: "
                                        "set workers_per_trial: 2 or more, or distributed: ddp")
    if res.fsdp.cpu_offload and res.gpus_per_worker == 0:
        yield "resources.fsdp.cpu_offload", ("moves the shards off the GPUs into CPU memory, and this job has no GPU "
                                             "(gpus_per_worker: 0): remove it")
    if skeleton is not None:
        problem = fsdp_model_problem(skeleton, job.model.name)
        if problem:
            yield "resources.distributed", problem
    for i, s in enumerate(job.strategies):
        reason = STRATEGIES.get(s.name).unsupported.get("fsdp")
        if reason:
            yield f"strategies[{i}]", f"{s.name} does not run under resources.distributed: fsdp: {reason}"
    for where, value in job.searchables():
        knob = where.rsplit(".", 1)[-1]
        if knob in ("l2sp", "ewc") and can_be_nonzero(value):
            yield where, (f"{knob.upper().replace('L2SP', 'L2-SP')} holds a whole copy of the backbone's weights "
                          "on every worker, which FSDP shards: set it to 0, or use distributed: ddp")


def fsdp_model_problem(model, name: str) -> Optional[str]:
    """Why this model (its skeleton) is not sharded, or None."""
    from torch import nn

    from raytune_ft.models.blocks import find_blocks

    norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
    if any(isinstance(m, norms) for m in model.modules()):
        return (f"model {name} has BatchNorm layers, whose running statistics would stay each worker's own under "
                "FSDP (DDP gives every worker rank 0's): a CNN of this kind fits one device, use distributed: ddp")
    try:
        find_blocks(model, getattr(model, "block_paths", None))
    except ValueError as e:
        return f"FSDP shards the model block by block, and {e}: set model.block_paths, or use distributed: ddp"
    return None


def checkpointing_problems(job, skeleton) -> Iterator[tuple[str, str]]:
    """hparams.gradient_checkpointing where it can be true: the model must allow it, and each strategy."""
    from raytune_ft.train.grad_checkpoint import checkpointing_problem

    on = [(i, s, where) for i, s, where, value in _gradient_checkpointing(job) if can_be_nonzero(value)]
    problem = checkpointing_problem(skeleton) if on and skeleton is not None else None
    for where in dict.fromkeys(where for _, _, where in on):
        if problem:
            yield where, problem
    for i, s, where in on:
        reason = STRATEGIES.get(s.name).unsupported.get("gradient_checkpointing")
        if reason:
            yield where, f"{s.name} does not run with gradient checkpointing: {reason}; set it to false for it " \
                         f"(strategies[{i}].hparams.gradient_checkpointing: false)"


def _gradient_checkpointing(job):
    """(index, strategy entry, where its value is set, the value) of hparams.gradient_checkpointing."""
    for i, s in enumerate(job.strategies):
        own = s.hparams.gradient_checkpointing
        yield (i, s, f"strategies[{i}].hparams.gradient_checkpointing", own) if own is not None else \
            (i, s, "search.hparams.gradient_checkpointing", job.search.hparams.gradient_checkpointing)
