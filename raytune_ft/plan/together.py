"""The calibration's processes side by side, as the sweep's trials run: a trial's speed depends on what runs
beside it (two single-threaded trials on a machine's two vCPUs, often one core's two hyperthreads, each ran
1.5-2x slower than alone on the quickstart), so the calibration measures under the same company.

    rows = side_by_side(requests, parallel=2, resources=job.resources)

The strategies go in waves of `parallel` fresh processes (longest first); a wave short of `parallel` is filled
with ballast processes (the first strategy, trained untimed). Every process of a wave sets up, then waits for
the others (`Sync.ready`), so that their timed batches run together; one that has measured trains on, untimed
(`Sync.carry_on`), until every process of its wave is done; one that ends (or fails) early is marked ready and
done here, so that it holds no one up. On GPUs each process gets its own device(s), or a
share of one as `gpus_per_worker` says.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Optional

WAIT_S = 120.0  # the longest a process waits for the others of its wave (one stuck in its set-up is not waited on)


class Sync:
    """A wave's rendezvous in a shared folder: `<i>.ready` and `<i>.done` files of its processes."""

    def __init__(self, spec: Optional[dict]):
        self.spec = spec or {}
        self.ballast = bool(self.spec.get("ballast"))
        self.waited = False

    def _mark(self, kind: str) -> None:
        if self.spec:
            mark(self.spec["dir"], self.spec["index"], kind)

    def _count(self, kind: str) -> int:
        return len(list(Path(self.spec["dir"]).glob(f"*.{kind}")))

    def ready(self, wait: bool = True) -> None:
        """Say this process is ready to time, and (`wait`) wait until every process of the wave is."""
        if not self.spec or self.waited:
            return
        self.waited = True
        self._mark("ready")
        if not wait:
            return
        deadline = time.monotonic() + WAIT_S
        while self._count("ready") < self.spec["size"] and time.monotonic() < deadline:
            time.sleep(0.02)

    def done(self) -> None:
        if not self.ballast:
            self._mark("done")

    def carry_on(self, step: Callable[[], object]) -> None:
        """Train on (`step()`, untimed) until every measuring process of the wave is done."""
        if not self.spec:
            return
        deadline = time.monotonic() + 4 * WAIT_S
        while self._count("done") < self.spec["measuring"] and time.monotonic() < deadline:
            step()


def mark(folder, index: int, kind: str) -> None:
    """The index-th process of a wave is `kind` ("ready" or "done")."""
    (Path(folder) / f"{index}.{kind}").touch()


def devices(index: int, gpus_per_worker: float, count: int) -> Optional[str]:
    """CUDA_VISIBLE_DEVICES of the index-th process of a wave: whole GPUs each, or shares of one."""
    if not gpus_per_worker or not count:
        return None
    if gpus_per_worker < 1:
        return str(int(index * gpus_per_worker) % count)
    per = int(gpus_per_worker)
    return ",".join(str((index * per + k) % count) for k in range(per))


def side_by_side(work: list[dict], parallel: int, resources) -> list[dict]:
    """Every request measured in a fresh process (`python -m raytune_ft.plan.calibrate`), `parallel` at a time."""
    import shutil
    import subprocess
    import tempfile

    import raytune_ft

    root = str(Path(raytune_ft.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
           "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    gpus = gpu_count() if resources.gpus_per_worker else 0
    ordered = sorted(work, key=lambda r: -len(r["points"]))
    parallel = max(1, parallel)
    out = []
    for start in range(0, len(ordered), parallel):
        wave = ordered[start:start + parallel]
        folder = tempfile.mkdtemp(prefix="raytune-ft-plan-sync-")
        members = wave + [{**ordered[0], "points": ordered[0]["points"][:1], "ballast": True}
                          for _ in range(parallel - len(wave))]
        procs = []
        for i, request in enumerate(members):
            sync = {"dir": folder, "index": i, "size": len(members), "measuring": len(wave),
                    "ballast": request.pop("ballast", False)}
            (Path(folder) / f"{i}.json").write_text(json.dumps({**request, "sync": sync}))
            visible = devices(i, resources.gpus_per_worker, gpus)
            with open(Path(folder) / f"{i}.json") as stdin, open(Path(folder) / f"{i}.out", "w") as stdout, \
                    open(Path(folder) / f"{i}.err", "w") as stderr:  # files: no pipe to fill and block on
                procs.append((request, subprocess.Popen(
                    [sys.executable, "-m", "raytune_ft.plan.calibrate"], stdin=stdin, stdout=stdout, stderr=stderr,
                    env={**env, **({"CUDA_VISIBLE_DEVICES": visible} if visible is not None else {})})))
        ended = set()
        while len(ended) < len(procs):  # one that has ended is ready and done: the others wait for it no more
            for i, (_, proc) in enumerate(procs):
                if i not in ended and proc.poll() is not None:
                    ended.add(i)
                    mark(folder, i, "ready")
                    if i < len(wave):
                        mark(folder, i, "done")
            time.sleep(0.05)
        for i, (request, proc) in enumerate(procs):
            if i >= len(wave):
                continue
            stdout, stderr = (Path(folder) / f"{i}.out").read_text(), (Path(folder) / f"{i}.err").read_text()
            lines = [ln for ln in stdout.splitlines() if ln.startswith("[")]
            if proc.returncode != 0 or not lines:
                out.append({"strategy": request["points"][0][0]["name"], "knobs": request["points"][0][2],
                            "error": f"the calibration process ended with code {proc.returncode}: {stderr[-1500:]}"})
            else:
                out += json.loads(lines[-1])
        shutil.rmtree(folder, ignore_errors=True)
    return out


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()
