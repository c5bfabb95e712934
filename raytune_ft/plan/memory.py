"""A worker's peak memory, before any trial: what it is made of, what the worker has, and a refusal that says
what to change.

    estimate = MemoryEstimate(base_mb=..., parameters_mb=..., gradients_mb=..., optimizer_mb=...,
                              activations_mb=...)            # at the strategy's largest searched setting
    have = capacity(job, workers_at_once)                    # (MB, how that was reckoned), or None
    refuse_what_does_not_fit(job, {name: estimate}, have)    # InputError (exit 2) naming each strategy

The model: base (the process: its libraries; on a GPU the CUDA context, outside what is allocated, so 0)
+ (parameters + gradients + optimizer state) / shards (FSDP splits them over a trial's workers; 1 otherwise)
+ activations (and the rest a step holds), which grow with the batch size, the text length and the image
size. Parameters, gradients and optimizer state are counted from the model built with the strategy applied
(gradients: the trainable weights; AdamW keeps two numbers per trainable weight, SGD with momentum one).
Activations are measured: by the pre-flight, as the tensors autograd saves for the backward pass of 2 samples,
scaled to the largest batch size; by the plan's calibration, as the measured peak less the rest.
"""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field

from raytune_ft.errors import InputError

MB = 2**20
CPU_PROCESS_MB = 520.0  # a worker process with torch and our libraries loaded, before any model (measured: 522)
GPU_RESERVE_MB = 600.0  # of each GPU: the CUDA context and the caching allocator's slack, outside `allocated`


class MemoryEstimate(BaseModel):
    base_mb: float = Field(description="the worker process itself (CPU: its libraries; GPU: 0)")
    parameters_mb: float = Field(description="every weight of the model, trainable or frozen")
    gradients_mb: float = Field(description="a gradient per trainable weight")
    optimizer_mb: float = Field(description="the optimizer's state (AdamW: two numbers per trainable weight)")
    activations_mb: float = Field(description="activations and the rest a training step holds, at the largest "
                                  "searched batch size (and the job's text length / image size)")
    shards: int = Field(1, description="FSDP: parameters, gradients and optimizer state are split over this many "
                        "workers of a trial")
    batch_size: int = Field(description="the batch size the activations are for")
    measured: bool = Field(False, description="from the calibration's measured peak (else the pre-flight's sample)")

    def total_mb(self) -> float:
        return self.base_mb + self.static_mb() / self.shards + self.activations_mb

    def static_mb(self) -> float:
        return self.parameters_mb + self.gradients_mb + self.optimizer_mb

    def at_batch(self, batch_size: int) -> float:
        """The total at another batch size (activations in proportion)."""
        return self.total_mb() - self.activations_mb * (1 - batch_size / self.batch_size)


def shards(job) -> int:
    """How many workers share a trial's weights: workers_per_trial under FSDP (resources.distributed), else 1."""
    return job.resources.workers_per_trial if job.resources.distributed == "fsdp" else 1


def model_counts(model, optimizer_kind: str) -> dict:
    """parameters_mb, gradients_mb, optimizer_mb of a built model (before any step: the optimizer's state from
    its kind; adamw: exp_avg and exp_avg_sq; sgd: the momentum buffer)."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    per = 2 if optimizer_kind == "adamw" else 1
    return {"parameters_mb": params / MB, "gradients_mb": trainable / MB, "optimizer_mb": per * trainable / MB}


def saved_activation_mb(model, inputs: dict) -> float:
    """MB autograd saves for the backward pass of a training step's forward pass on these inputs (the
    parameters, which it saves too, left out; each storage once). No backward pass is run: the graph is dropped."""
    import torch

    params = {p.data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        try:
            ptr, size = t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()
        except (RuntimeError, NotImplementedError):  # a tensor without storage (a sparse or meta one)
            return t
        if ptr not in params:
            seen[ptr] = max(seen.get(ptr, 0), size)
        return t

    model.train()
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(**inputs)
    del out
    return sum(seen.values()) / MB


def sample_estimate(job, model, inputs: dict, samples: int, batch_size: int) -> MemoryEstimate:
    """The pre-flight's estimate of a built model (the strategy applied): its weights' parts counted, the
    activations saved by a training forward pass on `samples` samples scaled to `batch_size`; the process:
    CPU_PROCESS_MB on a CPU, 0 on a GPU (outside what is allocated)."""
    counts = model_counts(model, job.training.optimizer)
    activations = saved_activation_mb(model, inputs) * batch_size / max(1, samples)
    return MemoryEstimate(base_mb=0.0 if job.resources.gpus_per_worker else CPU_PROCESS_MB, **counts,
                          activations_mb=activations, shards=shards(job), batch_size=batch_size)


def capacity(job, workers_at_once: int) -> Optional[tuple[float, str]]:
    """(MB a worker may use, how that was reckoned) on this machine: on a GPU, one device's memory (or the share
    gpus_per_worker gives) less GPU_RESERVE_MB; on a CPU, the machine's RAM shared by the workers that run at
    once. None when it cannot be told here (GPUs asked for, none on this machine)."""
    res = job.resources
    if res.gpus_per_worker:
        import torch

        if not torch.cuda.is_available():
            return None
        total = min(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())) / MB
        return gpu_capacity(total, res.gpus_per_worker)
    return ram_capacity(machine_ram_mb(), workers_at_once)


def gpu_capacity(device_mb: float, gpus_per_worker: float) -> tuple[float, str]:
    share = min(1.0, gpus_per_worker)
    what = f"a GPU of {device_mb / 1024:.1f} GB" + (f" x gpus_per_worker {share:g}" if share < 1 else "")
    return device_mb * share - GPU_RESERVE_MB, what + f", less {GPU_RESERVE_MB:.0f} MB for CUDA's own"


def ram_capacity(ram_mb: float, workers_at_once: int) -> tuple[float, str]:
    n = max(1, workers_at_once)
    return ram_mb / n, f"{ram_mb / 1024:.1f} GB of RAM" + (f" shared by {n} workers at once" if n > 1 else "")


def machine_ram_mb() -> float:
    import os

    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / MB


def remedies(job, estimate: MemoryEstimate) -> list[str]:
    """What would make it fit, most effective first, each with its field."""
    out = []
    if estimate.batch_size > 1:
        half = max(1, estimate.batch_size // 2)
        out.append(f"a smaller batch size (hparams.batch_size {half}: about {gb(estimate.at_batch(half))})")
    out.append(f"hparams.gradient_checkpointing: true (recomputes activations in the backward pass instead of "
               f"keeping {gb(estimate.activations_mb)})")
    out.append(f"FSDP (resources.distributed: fsdp) over more workers per trial (splits parameters, gradients and "
               f"optimizer state, {gb(estimate.static_mb())})")
    out.append("QLoRA (strategy qlora, on a GPU: 4-bit frozen weights, adapters train)")
    if job.resources.gpus_per_worker:
        out.append("a GPU with more memory, or a whole GPU per worker (resources.gpus_per_worker)")
    else:
        out.append("fewer trials at a time (resources.max_concurrent_trials)")
    return out


def gb(mb: float) -> str:
    return f"{mb / 1024:.2f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def refusal(job, index: int, name: str, estimate: MemoryEstimate, have: tuple[float, str], where: str) -> str:
    parts = (f"parameters {gb(estimate.parameters_mb)}, gradients {gb(estimate.gradients_mb)}, optimizer state "
             f"{gb(estimate.optimizer_mb)}"
             + (f" (split over {estimate.shards} workers)" if estimate.shards > 1 else "")
             + f", activations {gb(estimate.activations_mb)}" + (f", the process {gb(estimate.base_mb)}"
                                                                  if estimate.base_mb else ""))
    return (f"strategies[{index}] ({name}): a worker needs about {gb(estimate.total_mb())} at its largest setting "
            f"({where}; {'measured' if estimate.measured else 'estimated'}: {parts}), but it has "
            f"{gb(have[0])} ({have[1]}), so every such trial would run out of memory. To fit it: "
            + "; or ".join(remedies(job, estimate)))


def refuse_what_does_not_fit(job, estimates: dict[str, tuple[MemoryEstimate, str]],
                             have: Optional[tuple[float, str]]) -> None:
    """InputError naming every strategy whose estimate exceeds what a worker has; `estimates`: {strategy name:
    (estimate, its largest setting in words)}."""
    if have is None:
        return
    names = [s.name for s in job.strategies]
    lines = [refusal(job, names.index(name), name, est, have, where)
             for name, (est, where) in estimates.items() if est.total_mb() > have[0]]
    if lines:
        raise InputError("\n".join(lines))
