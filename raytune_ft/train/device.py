"""What a trial sets on its device before it trains, and what it reads off it after each epoch.

    prepare_device(accelerator.device, training, resources)   # once, before the model is built
    peak_memory(device)        # {"peak_memory_mb": ..., "peak_memory_reserved_mb": ...} since prepare_device
    release_device(device)     # at the trial's end: what it held goes back (a process may run another trial)

On a CUDA GPU:
- fp32 matrix products and convolutions run in TF32 unless `training.tf32: false` (Ampere and later: the
  tensor cores at a 10-bit mantissa; PyTorch's own default for convolutions, not for matmuls);
- cuDNN picks the fastest convolution algorithm for each shape it meets (`cudnn.benchmark`), unless
  `training.deterministic: true`, which also asks PyTorch for deterministic algorithms only (an op without one
  raises, naming itself) and sets cuBLAS's workspace as its docs require;
- a worker on a fraction of a GPU (`resources.gpus_per_worker: 0.5`) may allocate only that fraction of its
  memory: two trials sharing a GPU cannot take each other's, so an out-of-memory error is the trial's own;
- the peak statistics start at zero, so `peak_memory_mb` (allocated) and `peak_memory_reserved_mb` (what the
  caching allocator held) are this trial's, not an earlier trial's in the same process.
On a CPU the peak is the process's resident set, reset at the start through Linux's /proc/self/clear_refs
where the kernel allows it (else it is the process's peak since it started).
"""
from __future__ import annotations

import os
from pathlib import Path


def prepare_device(device, training, resources) -> None:
    import torch

    if training.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's condition for determinism
        torch.use_deterministic_algorithms(True)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = training.tf32
        torch.backends.cudnn.allow_tf32 = training.tf32
        torch.backends.cudnn.benchmark = not training.deterministic
        if 0 < resources.gpus_per_worker < 1:
            torch.cuda.set_per_process_memory_fraction(resources.gpus_per_worker, device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    else:
        _reset_peak_rss()


def peak_memory(device) -> dict:
    """This trial's peak memory in MiB: CUDA allocated and reserved on a GPU; the resident set on a CPU."""
    import torch

    if device.type == "cuda":
        return {"peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20,
                "peak_memory_reserved_mb": torch.cuda.max_memory_reserved(device) / 2**20}
    return {"peak_memory_mb": _peak_rss_mb(), "peak_memory_reserved_mb": None}


def release_device(device) -> None:
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak resident set (Linux 4.0+)
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB -> MiB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB -> MiB
