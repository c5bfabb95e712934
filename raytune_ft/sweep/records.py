"""What the sweep knows of each trial (its strategy, per-epoch metrics, status), saved at every
event to `sweep_state.json` so that a resumed sweep starts from it."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from raytune_ft.layout import RunLayout


@dataclass
class TrialRecord:
    strategy: dict
    history: list = field(default_factory=list)
    status: str = "running"
    error: str = ""
    seed: Optional[int] = None  # the trial's own seed (search.trial_seed); None in runs made before
    stage: str = "search"  # or "confirm" (sweep/confirm.py)
    train_size: Optional[int] = None  # training samples, when the job has data.train_sizes
    source_trial_id: Optional[str] = None  # a confirm trial: the search trial whose configuration it repeats
    wall_before: float = 0.0  # seconds this trial ran under an earlier driver (a resumed sweep)
    done_before: bool = False  # it had ended before the sweep was resumed: its record is final
    started: float = field(default_factory=time.monotonic)
    ended: Optional[float] = None

    def wall_seconds(self, now: Optional[float] = None) -> float:
        return self.wall_before + (self.ended or now or time.monotonic()) - self.started

    def to_json(self) -> dict:
        return {"strategy": self.strategy, "history": self.history, "status": self.status, "error": self.error,
                "seed": self.seed, "wall_seconds": self.wall_seconds(), "stage": self.stage,
                "train_size": self.train_size, "source_trial_id": self.source_trial_id}

    @classmethod
    def from_json(cls, d: dict) -> "TrialRecord":
        rec = cls(strategy=d["strategy"], history=d["history"], status=d["status"], error=d["error"],
                  seed=d.get("seed"), wall_before=d["wall_seconds"], stage=d.get("stage", "search"),
                  train_size=d.get("train_size"), source_trial_id=d.get("source_trial_id"))
        if rec.status != "running":
            rec.ended, rec.done_before = rec.started, True
        return rec


def load_sweep_state(run_dir: Path) -> dict[str, TrialRecord]:
    path = RunLayout(run_dir).sweep_state
    if not path.exists():
        return {}
    return {tid: TrialRecord.from_json(d) for tid, d in json.loads(path.read_text()).items()}
