"""The sweep's Tune callback: every trial's record, the progress lines, the tables, and freeing what a
stopped trial held.

Its records are saved to `sweep_state.json` at every event (trial drivers read it on a resume, and
it is newer than anything Tune saved), and handed to Tune as the callback's state (`get_state`),
which Tune saves with its experiment and gives back on restore (`set_state`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Optional

from ray.tune import Callback

from raytune_ft.files import write_text
from raytune_ft.layout import RunLayout
from raytune_ft.results.progress import snapshot, summary_line
from raytune_ft.results.confirm import strategy_table
from raytune_ft.results.tables import epoch_rows, error_reason, trial_row, write_table
from raytune_ft.sweep.ray_setup import free_placement_group
from raytune_ft.sweep.records import TrialRecord
from raytune_ft.sweep.space import trial_settings

# What the sweep keeps of each reported epoch (the worker reports more, e.g. lr_scales)
EPOCH_KEYS = ("epoch", "train_loss", "val_loss", "val_accuracy", "val_f1", "trainable_params", "total_params",
              "samples_per_sec", "train_seconds", "first_step_s", "peak_memory_mb", "checkpoint_path", "pg_id",
              "lr", "resumes", "eval_seconds", "checkpoint_seconds", "data_load_s", "world_size",
              "distributed_type", "node_id", "stop_reason", "test_accuracy", "test_f1", "test_loss")
ENDED_WORDS = {"completed": "completed", "stopped_early": "stopped early",
               "stopped_patience": "stopped by patience", "error": "FAILED"}


class SweepCallback(Callback):
    def __init__(self, job, layout: RunLayout, printer: Callable[[str], None], *,
                 records: Optional[dict[str, TrialRecord]] = None, concurrency: int = 1,
                 on_update: Optional[Callable] = None, train_size: Optional[int] = None, total: Optional[int] = None):
        self.job, self.layout, self.printer, self.on_update = job, layout, printer, on_update
        self.metric, self.mode, self.epochs = job.search.metric, job.search.mode, job.training.epochs
        self.total = total or job.search.num_samples * len(job.strategies)  # trials of the stage running now
        self.concurrency = concurrency
        self.train_size = train_size  # the whole train split's samples: the size of a trial without a subset
        self.records: dict[str, TrialRecord] = dict(records or {})
        self.stage = "search"
        self.pg_ids: set[str] = set()
        self.t0 = time.monotonic()

    # ------------------------------------------------------------------ Tune's events

    def on_trial_start(self, iteration, trials, trial, **info):
        self.record(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        rec = self.record(trial)
        if rec.done_before:
            return
        # a worker group started again goes on from its latest checkpoint, and sends that epoch's report
        # again without the checkpoint: keep where the checkpoint is
        before = next((m for m in rec.history if m["epoch"] == result["epoch"]), {})
        rec.history = [m for m in rec.history if m["epoch"] < result["epoch"]]
        entry = {k: result[k] for k in EPOCH_KEYS if k in result}
        entry["checkpoint_path"] = result.get("checkpoint_uri") or before.get("checkpoint_path") \
            or result.get("checkpoint_path")  # a URI for bucket storage, else Ray's path
        rec.history.append(entry)
        self.write_epochs()
        self.save_state()
        self.show(f"{self._clock()} {trial.trial_id} {rec.strategy['name']:<20} epoch {result['epoch']}/{self.epochs}"
                  f"  {self.metric} {result[self.metric]:.4f}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        rec = self.record(trial)
        if rec.done_before:  # ended before a resume; Tune had not saved that yet
            return
        last = rec.history[-1] if rec.history else {}
        # ended before max epochs: by the scheduler, unless the worker's last report says patience did it
        rec.status = ("completed" if last.get("epoch", 0) >= self.epochs else
                      "stopped_patience" if last.get("stop_reason") == "patience" else "stopped_early")
        self._end(trial, rec)

    def on_trial_error(self, iteration, trials, trial, **info):
        rec = self.record(trial)
        if rec.done_before:
            return
        rec.status, rec.error = "error", _error_text(trial)
        self._end(trial, rec)

    def on_experiment_end(self, trials, **info):
        # A trial started after Tune last saved its state, before the driver died, is unknown to the
        # resumed Tune (its search generator makes that sample again under a new id): drop its record.
        known = {t.trial_id for t in trials}
        lost = [tid for tid, rec in self.records.items() if rec.status == "running" and tid not in known]
        for tid in lost:
            del self.records[tid]
        if lost:
            self.printer(f"{len(lost)} trial(s) that started after Tune's last saved state ran again under new "
                         f"ids: {', '.join(lost)}")

    # ------------------------------------------------------------------ state (Tune's protocol + our file)

    def get_state(self) -> Optional[dict]:
        return {"records": {tid: rec.to_json() for tid, rec in self.records.items()}}

    def set_state(self, state: dict) -> None:
        """Tune's copy is at most as new as sweep_state.json's, which the records were loaded from: it
        fills in only trials that file lacks."""
        for tid, d in state.get("records", {}).items():
            self.records.setdefault(tid, TrialRecord.from_json(d))

    def save_state(self) -> None:
        write_text(self.layout.sweep_state, json.dumps(self.get_state()["records"]))

    # ------------------------------------------------------------------ records, progress, tables

    def record(self, trial) -> TrialRecord:
        # a trial whose actor fails to start gets on_trial_error without on_trial_start
        if trial.trial_id not in self.records:
            settings = trial_settings(trial.config)
            self.records[trial.trial_id] = TrialRecord(
                strategy=settings["strategy"], seed=settings["seed"], stage=settings["stage"],
                train_size=(settings["train_subset"] or {}).get("size", self.train_size),
                source_trial_id=settings["source_trial_id"])
        return self.records[trial.trial_id]

    def _end(self, trial, rec: TrialRecord) -> None:
        rec.ended = time.monotonic()
        if rec.history:  # Tune killed the trial actor: free what its Train worker group held
            self.pg_ids.add(rec.history[-1].get("pg_id", ""))
            free_placement_group(rec.history[-1].get("pg_id", ""))
        line = (f"{self._clock()} {trial.trial_id} {rec.strategy['name']:<20} {ENDED_WORDS[rec.status]} "
                f"after {len(rec.history)} epoch(s)")
        self.save_state()
        self.write_tables()
        self.show(line + (f": {error_reason(rec.error)[:200]}" if rec.error else ""))

    def show(self, line: str) -> None:
        stage = {tid: rec for tid, rec in self.records.items() if rec.stage == self.stage}
        snap = snapshot(stage, t0=self.t0, total=self.total, concurrency=self.concurrency,
                        metric=self.metric, mode=self.mode, epochs=self.epochs)
        self.printer(f"{line}   {summary_line(snap)}")
        if self.on_update:
            self.on_update(snap)

    def begin_stage(self, stage: str, total: int) -> None:
        """The progress lines count the trials of this stage ("search" or "confirm") from now on."""
        self.stage, self.total = stage, total

    def rows(self) -> list[dict]:
        return [trial_row(job=self.job.name, run_id=self.layout.run_id, trial_id=tid, strategy=rec.strategy,
                          seed=rec.seed, status=rec.status, history=rec.history, metric=self.metric, mode=self.mode,
                          wall_seconds=rec.wall_seconds(), error=rec.error, stage=rec.stage,
                          train_size=rec.train_size or self.train_size, source_trial_id=rec.source_trial_id,
                          resumes=max((m.get("resumes", 0) for m in rec.history), default=0))
                for tid, rec in self.records.items() if rec.status != "running"]

    def write_tables(self) -> list[dict]:
        rows = self.rows()
        if rows:
            write_table(rows, self.layout.trials)
            strategies, comparisons = strategy_table(rows, self.mode, self.metric)
            write_table(strategies, self.layout.strategies)
            if comparisons:
                write_table(comparisons, self.layout.comparisons)
        self.write_epochs()
        return rows

    def write_epochs(self) -> None:
        rows = [r for tid, rec in self.records.items() for r in epoch_rows(
            run_id=self.layout.run_id, trial_id=tid, strategy=rec.strategy["name"], status=rec.status,
            history=rec.history, stage=rec.stage, train_size=rec.train_size or self.train_size)]
        if rows:
            write_table(rows, self.layout.epochs)

    def _clock(self) -> str:
        return f"[{time.monotonic() - self.t0:6.0f}s]"


def _error_text(trial) -> str:
    try:
        return Path(trial.error_file).read_text().strip() if trial.error_file else "unknown error"
    except OSError:
        return "unknown error (no error file)"
