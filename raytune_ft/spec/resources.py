"""The job spec's `resources` section: what each trial asks Ray for, and how its workers share the model.

    resources: {workers_per_trial: 2, gpus_per_worker: 1}                       # data parallel (DDP)
    resources: {workers_per_trial: 4, gpus_per_worker: 1, distributed: fsdp}    # each worker holds 1/4 of it
    resources: {workers_per_trial: 2, distributed: fsdp, fsdp: {sharding: shard_grad_op}}

DDP keeps a whole copy of the model, its gradients and the optimizer's state on every worker; FSDP
(train/sharding.py) splits each of them across the trial's workers and gathers one block's weights at a
time to compute with. Rules across sections (FSDP and the model, the strategies) are in spec/scale_rules.py.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_WORKERS = 512


class FsdpSpec(BaseModel):
    """FSDP's settings (resources.distributed: fsdp)."""

    model_config = ConfigDict(extra="forbid")

    sharding: Literal["full_shard", "shard_grad_op"] = Field(
        "full_shard", description="full_shard: a block's gathered weights are freed after its forward and gathered "
        "again for its backward (the least memory: ZeRO-3); shard_grad_op: they stay gathered from the forward to the "
        "backward (less communication; weights, gradients and optimizer state are still sharded between steps: "
        "ZeRO-2-like)")
    cpu_offload: bool = Field(
        False, description="keep each worker's shards of the weights, gradients and optimizer state in CPU memory, "
        "gathering a block onto the GPU to compute with it (slower; for a model whose shards do not fit the GPUs). "
        "GPUs only")


class ResourcesSpec(BaseModel):
    """What each trial asks Ray for, and how its workers share the model."""

    model_config = ConfigDict(extra="forbid")

    workers_per_trial: int = Field(
        1, ge=1, le=MAX_WORKERS, description="Ray Train workers (processes, data parallel) per trial. At most "
        f"{MAX_WORKERS}: each is a process with its own copy of the model (its share of it under distributed: fsdp), "
        "started and synchronised every step")
    cpus_per_worker: float = Field(1, gt=0, description="CPUs of each worker; beyond 1, the rest load and augment "
                                   "batches in DataLoader workers (loader_workers)")
    gpus_per_worker: float = Field(0, ge=0, description="a fraction of one GPU (e.g. 0.5: two trials share a GPU, "
                                   "each held to that share of its memory) or whole GPUs")
    loader_workers: Optional[int] = Field(
        None, ge=0, description="DataLoader worker processes per Train worker (reading, augmenting); default: "
        "cpus_per_worker - 1, at most 4")
    max_concurrent_trials: Optional[int] = Field(
        None, ge=1, description="default: as many as the cluster's CPUs / GPUs can hold")
    max_worker_restarts: int = Field(
        2, ge=0, description="times a trial's Train workers are started again after one dies (they go on "
                             "from the trial's last epoch); errors that would repeat are not retried")

    distributed: Literal["ddp", "fsdp"] = Field(
        "ddp", description="how a trial of several workers splits its work: ddp, every worker holds the whole model, "
        "its gradients and optimizer state (data parallel); fsdp, each holds 1/workers_per_trial of each of them "
        "(fully sharded data parallel, FSDP2): for a model that does not fit one device with its optimizer state")
    fsdp: FsdpSpec = Field(default_factory=FsdpSpec, description="FSDP's settings (distributed: fsdp)")

    @field_validator("gpus_per_worker")
    @classmethod
    def _a_fraction_or_whole_gpus(cls, gpus):
        if gpus > 1 and not float(gpus).is_integer():
            raise ValueError(f"{gpus}: Ray gives a worker a fraction of one GPU (below 1) or whole GPUs; use "
                             f"{int(gpus)} or {int(gpus) + 1}")
        return gpus

    @model_validator(mode="after")
    def _whole_gpus_for_several_workers(self):
        # Ray packs two workers asking for 0.5 GPU each onto one GPU, and NCCL then refuses the trial
        # ("Duplicate GPU detected"): every worker of a multi-worker trial needs a GPU of its own.
        if self.workers_per_trial > 1 and 0 < self.gpus_per_worker < 1:
            raise ValueError(
                f"workers_per_trial {self.workers_per_trial} with gpus_per_worker {self.gpus_per_worker}: the "
                "workers of one trial would share a GPU, which NCCL refuses (\"Duplicate GPU detected\"). Use "
                "gpus_per_worker: 1 (or more) with several workers, or workers_per_trial: 1 with a fraction "
                "(then several trials share a GPU)")
        return self
