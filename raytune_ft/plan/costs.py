"""What one trial of a strategy costs, from its calibration points (or a finished run's trials): seconds per
batch as a linear function of its cost knobs (least squares over the points: the calibration's design makes it
exact), the batches an epoch takes at a train size, validation, checkpoints, start-up, and its memory.

    model = CostModel.fit(space, points)
    model.epoch_seconds(train_samples=1257, val_samples=270, workers=1, keep_checkpoint=True)
    model.memory(shards=1)                        # MemoryEstimate at the largest setting
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from raytune_ft.plan.calibrate import Point
from raytune_ft.plan.memory import MemoryEstimate
from raytune_ft.plan.space import BATCH, cost_knobs, features, highest, settings

# Ray's own seconds per trial (its actor, Train's controller, the worker group's start and stop, reporting)
# beside what the worker measures itself: the quickstart's trials had 10.4 s each (benchmarks/results/
# quickstart.md: 125 s over 12 trials, 2 at a time on 2 cores; 11.2 s in a run of 2026-12-04, the first two
# trials' 17 s included). `plan --from-run` measures a run's own.
RAY_TRIAL_START_S = 8.5
RAY_TRIAL_END_S = 2.0


def batches_per_epoch(train_samples: int, batch_size: int, workers: int) -> int:
    """Batches each worker trains an epoch (train/trial_data.py: the remainder dropped, at least one)."""
    per_process = math.ceil(train_samples / max(1, workers))
    return per_process // batch_size if per_process > batch_size else 1


@dataclass
class CostModel:
    strategy: str
    knobs: dict  # {knob: the values trials take}
    coef: list  # seconds per batch = coef . features(setting)
    first: Point  # the largest setting's point (memory, validation, checkpoint, start-up)
    batch_size: int  # the batch size when it is not searched
    start_s: float = RAY_TRIAL_START_S  # Ray's part of a trial's start (plus the worker's own start-up)
    end_s: float = RAY_TRIAL_END_S
    extra_base_mb: float = 0.0  # what a trial's process holds beside the calibration's (a Ray worker's own)

    @classmethod
    def fit(cls, space: dict, points: list[Point], *, average: bool = False, **ray) -> "CostModel":
        """From the strategy's points (failed ones left out). The largest setting's point gives memory,
        validation, checkpoint and start-up; `average` (a run's trials): those three are the points' means."""
        import numpy as np

        knobs = cost_knobs(space)
        good = [p for p in points if not p.error]
        x = np.array([features(p.knobs, knobs) for p in good])
        y = np.array([p.batch_s for p in good])
        coef = np.linalg.lstsq(x, y, rcond=None)[0].tolist()
        largest = {k: highest(v) for k, v in knobs.items()}
        def apart(p: Point) -> int:
            return sum(p.knobs.get(k) != v for k, v in largest.items())
        nearest = min(apart(p) for p in good)  # (a run's trials: those at, or nearest, the largest setting)
        first = max((p for p in good if apart(p) == nearest), key=lambda p: p.peak_memory_mb)
        if average:
            first = first.model_copy(update={k: sum(getattr(p, k) for p in good) / len(good)
                                             for k in ("eval_sample_s", "checkpoint_s", "startup_s")})
        batch = space["hparams"]["batch_size"]
        return cls(good[0].strategy, knobs, coef, first, batch if isinstance(batch, int) else first.batch_size, **ray)

    def batch_s(self, setting: dict) -> float:
        floor = 0.05 * self.first.batch_s  # a fit far from its points is not let go below this
        return max(floor, sum(c * f for c, f in zip(self.coef, features(setting, self.knobs))))

    def train_seconds(self, train_samples: int, workers: int) -> float:
        """An epoch's training, the mean over the settings trials draw (each as likely)."""
        grid = settings(self.knobs) or [{}]
        total = 0.0
        for s in grid:
            batch = int(s.get(BATCH, self.batch_size))
            total += self.first.loader_s + batches_per_epoch(train_samples, batch, workers) * self.batch_s(s)
        return total / len(grid)

    def eval_seconds(self, samples: int) -> float:
        return self.first.eval_sample_s * samples

    def epoch_seconds(self, train_samples: int, val_samples: int, workers: int, keep_checkpoint: bool) -> float:
        return (self.train_seconds(train_samples, workers) + self.eval_seconds(val_samples)
                + (self.first.checkpoint_s if keep_checkpoint else 0.0))

    def start_seconds(self) -> float:
        """Before its first epoch: Ray's part, the worker's start to its first step; and (paid in its first
        epoch, once) what its first validation pass costs beyond the later ones."""
        return self.start_s + self.first.startup_s + self.first.eval_first_s

    def memory(self, shards: int = 1) -> MemoryEstimate:
        """At the largest setting: the measured peak split into the process, the weights' parts and the rest
        (activations)."""
        p = self.first
        static = p.parameters_mb + p.gradients_mb + p.optimizer_mb
        return MemoryEstimate(base_mb=p.base_mb + self.extra_base_mb, parameters_mb=p.parameters_mb,
                              gradients_mb=p.gradients_mb, optimizer_mb=p.optimizer_mb,
                              activations_mb=max(0.0, p.peak_memory_mb - p.base_mb - static), shards=shards,
                              batch_size=p.batch_size, measured=True)

    def largest(self) -> str:
        """The largest setting in words: 'hparams.batch_size 64, r 16' (or the batch size alone)."""
        words = [f"{k} {v}" for k, v in self.first.knobs.items()]
        if BATCH not in self.first.knobs:
            words.insert(0, f"{BATCH} {self.batch_size}")
        return ", ".join(words)
