"""One trial in several local processes, without Ray: what a trial of `workers_per_trial` Train workers does,
on this machine (gloo on CPUs; NCCL, one GPU each, on GPUs). For tests, benchmarks and debugging FSDP.

    histories = train_in_processes(config, workers=2)   # each rank's list of epoch metrics

Each process gets the variables torch.distributed and Accelerate read (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR / MASTER_PORT on 127.0.0.1) and runs the worker loop (`train_trial`) with its epochs collected
in memory; rank 0 writes the checkpoints into config.trial_dir, as a direct call does.
"""
from __future__ import annotations

import os
import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_in_processes(config, workers: int = 2, timeout_s: float = 1800.0) -> list[list[dict]]:
    """Train `config` in `workers` spawned processes; each rank's history (a rank's metrics are the
    trial's: every reduced value is the same on each, memory is the largest worker's)."""
    import queue
    import time

    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_rank, args=(rank, workers, port, config.model_dump(mode="json"), results))
             for rank in range(workers)]
    for p in procs:
        p.start()
    got, deadline = {}, time.monotonic() + timeout_s
    while len(got) < workers and time.monotonic() < deadline:  # read as they come: a full pipe blocks a sender
        try:
            rank, history, error = results.get(timeout=1.0)
            got[rank] = (history, error)
        except queue.Empty:
            if not any(p.is_alive() for p in procs) and results.empty():
                break
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
    errors = [f"rank {r}: {e}" for r, (_, e) in sorted(got.items()) if e]
    if errors or len(got) < workers:
        codes = [p.exitcode for p in procs]
        raise RuntimeError(f"a worker failed (exit codes {codes}): " + ("\n".join(errors) or "no report"))
    return [got[r][0] for r in range(workers)]


def _rank(rank: int, world: int, port: int, config: dict, results) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from raytune_ft.train.config import TrialConfig
    from raytune_ft.train.loop import train_trial

    history, error = [], None
    try:
        train_trial(TrialConfig.model_validate(config), report=history.append)
    except Exception as e:  # noqa: BLE001 - handed to the parent, which raises it with the rank
        import traceback

        error = f"{type(e).__name__}: {e}\n{traceback.format_exc()[-3000:]}"
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    results.put((rank, history, error))
