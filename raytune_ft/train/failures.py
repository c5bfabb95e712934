"""Which errors of a trial would come back on a retry: those are not retried when Ray Train restarts
the trial's worker group (a restart costs seconds, not an epoch)."""
from __future__ import annotations

import re


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


# Device memory running out is raised as torch.OutOfMemoryError by PyTorch's own allocator, but as a plain
# RuntimeError by the libraries under it (cuBLAS, cuDNN, NCCL): the same batch on the same device runs out
# again. (A trial on a fraction of a GPU is held to its share of the memory, train/device.py, so running out
# is its own doing, not its neighbour's.)
OUT_OF_MEMORY = re.compile(r"out of memory|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED|"
                           r"CUDNN_STATUS_NOT_ENOUGH_WORKSPACE|NCCL.*(ncclSystemError|Cuda failure 2|memory)|"
                           r"cudaErrorMemoryAllocation", re.IGNORECASE)


def would_repeat(error: BaseException) -> bool:
    """Whether a trial's error would come back on a retry (see DETERMINISTIC_ERRORS, SHAPE_ERROR, OUT_OF_MEMORY)."""
    import torch

    return (isinstance(error, (*DETERMINISTIC_ERRORS, torch.OutOfMemoryError))
            or (isinstance(error, RuntimeError) and (SHAPE_ERROR.search(str(error)) is not None
                                                     or OUT_OF_MEMORY.search(str(error)) is not None)))


FAILED_FILE = "failed.json"
