"""What the sweep knows of each trial (its strategy, per-epoch metrics, status), and how it is kept.

Every event (a trial started, an epoch reported, a trial ended) is appended as one JSON line to the
run's event log, `sweep_events.jsonl`, and fsynced: its cost does not grow with the sweep, and a
killed driver loses nothing it had written. The log is the sweep's record of what happened; a
resumed sweep starts from it (`load_sweep_state`). `sweep_state.json` (trial id -> record, what trial
drivers read on a resume) and the Parquet tables are compactions of it, written by the callback.

    {"event": "trial", "trial": id, "record": {...}}      a trial's whole record (TrialRecord.to_json)
    {"event": "epoch", "trial": id, "metrics": {...}, "wall_seconds": s}
    {"event": "end", "trial": id, "status": s, "error": text, "wall_seconds": s, "ended_at": t,
     "checkpoint_bytes": b}
    {"event": "kept", "trial": id, "checkpoint_bytes": b}  what is left of its checkpoints after a stage
    {"event": "drop", "trial": id}                         a record forgotten

A compaction of the log itself (`EventLog.rewrite`) leaves one `trial` line per record.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Optional

from raytune_ft.files import replacing
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
    started_at: float = field(default_factory=time.time)  # wall clock (epoch seconds): the tables' timestamps
    ended_at: Optional[float] = None
    checkpoint_bytes: Optional[int] = None  # what is left of its checkpoints once it ended (sweep/retention.py)

    def wall_seconds(self, now: Optional[float] = None) -> float:
        return self.wall_before + (self.ended or now or time.monotonic()) - self.started

    def to_json(self) -> dict:
        return {"strategy": self.strategy, "history": self.history, "status": self.status, "error": self.error,
                "seed": self.seed, "wall_seconds": self.wall_seconds(), "stage": self.stage,
                "train_size": self.train_size, "source_trial_id": self.source_trial_id,
                "started_at": self.started_at, "ended_at": self.ended_at, "checkpoint_bytes": self.checkpoint_bytes}

    @classmethod
    def from_json(cls, d: dict) -> "TrialRecord":
        rec = cls(strategy=d["strategy"], history=d["history"], status=d["status"], error=d["error"],
                  seed=d.get("seed"), wall_before=d["wall_seconds"], stage=d.get("stage", "search"),
                  train_size=d.get("train_size"), source_trial_id=d.get("source_trial_id"))
        rec.started_at, rec.ended_at = d.get("started_at") or rec.started_at, d.get("ended_at")
        rec.checkpoint_bytes = d.get("checkpoint_bytes")
        if rec.status != "running":
            rec.ended, rec.done_before = rec.started, True
        return rec


def with_epoch(history: list[dict], metrics: dict) -> list[dict]:
    """A trial's history after it reported `metrics`: that epoch and any later one are replaced (a worker
    group started again goes on from its latest checkpoint and reports the epochs after it again)."""
    return [m for m in history if m["epoch"] < metrics["epoch"]] + [metrics]


class EventLog:
    """The append-only event log: one JSON line per event, flushed and fsynced before `append` returns."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file: Optional[IO[str]] = None

    def append(self, event: dict) -> None:
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write(json.dumps(event) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def rewrite(self, events: Iterable[dict]) -> None:
        """Replace the log with `events`, atomically: a crash leaves the old log or the new one, whole."""
        self.close()
        with replacing(self.path) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(e) + "\n" for e in events)
                f.flush()
                os.fsync(f.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_events(path: Path) -> list[dict]:
    """The log's events. What follows its last newline is a line the driver was killed while writing: left
    out. Any other line that is not JSON is an error."""
    *lines, _torn = Path(path).read_bytes().split(b"\n")
    events = []
    for n, line in enumerate(lines, 1):
        try:
            events.append(json.loads(line))
        except ValueError:
            raise ValueError(f"{path} line {n} is not an event (JSON): {line[:200]!r}") from None
    return events


def fold(events: Iterable[dict]) -> dict[str, dict]:
    """The records the events leave, as sweep_state.json holds them: {trial id: TrialRecord.to_json()}."""
    records: dict[str, dict] = {}
    for e in events:
        kind, tid = e["event"], e["trial"]
        if kind == "trial":
            records[tid] = e["record"]
        elif kind == "drop":
            records.pop(tid, None)
        else:
            rec = records[tid]
            if kind == "epoch":
                rec["history"] = with_epoch(rec["history"], e["metrics"])
            elif kind == "kept":
                rec["checkpoint_bytes"] = e["checkpoint_bytes"]
                continue
            else:  # end
                rec["status"], rec["error"], rec["ended_at"] = e["status"], e["error"], e.get("ended_at")
                if "checkpoint_bytes" in e:
                    rec["checkpoint_bytes"] = e["checkpoint_bytes"]
            rec["wall_seconds"] = e["wall_seconds"]
    return records


def load_sweep_state(run_dir: Path) -> dict[str, TrialRecord]:
    """The records of a run whose driver stopped: from its event log (a run made before the log: from its
    sweep_state.json)."""
    layout = RunLayout(run_dir)
    if layout.sweep_events.exists():
        state = fold(read_events(layout.sweep_events))
    elif layout.sweep_state.exists():
        state = json.loads(layout.sweep_state.read_text())
    else:
        return {}
    return {tid: TrialRecord.from_json(d) for tid, d in state.items()}
