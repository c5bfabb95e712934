"""Fault injection for tests of failure handling, off unless switched on.

Tests switch it on for one strategy with RAYTUNE_FT_INJECT_FAULT=<strategy>:<fault> (an environment
variable, so that it reaches Ray Train workers in their own processes). Faults: `raise` (a
ValueError at start), `nan` (the training loss becomes NaN), `exit_once` (the process dies at the
start of epoch 3, the first time only, as one killed by the OS would: no exception, no cleanup; by
then Ray Train has taken epoch 1's report, which it does when it polls the workers every 2 s).
"""
from __future__ import annotations

import os
from pathlib import Path

ENV = "RAYTUNE_FT_INJECT_FAULT"


class Faults:
    def __init__(self, strategy: str, trial_dir: Path):
        target, _, fault = os.environ.get(ENV, "").partition(":")
        self.fault = fault if target == strategy else ""
        self.strategy, self.trial_dir = strategy, Path(trial_dir)

    def on_start(self) -> None:
        if self.fault == "raise":
            raise ValueError(f"fault injected by {ENV} for strategy {self.strategy}")

    def on_epoch(self, epoch: int) -> None:
        mark = self.trial_dir / ".fault_injected"
        if self.fault == "exit_once" and epoch == 3 and not mark.exists():
            mark.parent.mkdir(parents=True, exist_ok=True)
            mark.touch()
            os._exit(3)

    def on_loss(self, loss):
        return loss * float("nan") if self.fault == "nan" else loss
