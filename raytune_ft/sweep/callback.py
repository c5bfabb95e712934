"""The sweep's Tune callback: every trial's record, the progress lines, the tables, and freeing what a
stopped trial held.

Each event (a trial started, an epoch reported, a trial ended) is appended to the run's event log
(sweep/records.py) and counted in the progress tally: the driver's cost per event does not grow with
the number of trials. What is rewritten whole, `sweep_state.json` (what trial drivers read on a
resume) and the Parquet tables (what `raytune-ft table`, the report and a storage mirror read while
the sweep runs), is written from the records in `on_step_end`, which Tune calls at least every 0.1 s:
soon after a trial ends, at most `WRITE_EVERY_S` after an epoch, and never more often than every
`WRITE_SPACING` times the last write's seconds, so writing them takes at most ~5 % of the driver's time
(Tune's own rule for its experiment state). `compact` writes them all, the log included, at the end of
each stage and on resume.

The records are also handed to Tune as the callback's state (`get_state`), which Tune saves with its
experiment and gives back on restore (`set_state`).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable, Optional

from ray.tune import Callback

from raytune_ft.files import write_text
from raytune_ft.layout import RunLayout
from raytune_ft.results.progress import Tally, summary_line
from raytune_ft.analysis.confirm import strategy_table
from raytune_ft.plan.actual import add_forecast
from raytune_ft.results.tables import epoch_rows, error_reason, trial_row, write_table
from raytune_ft.sweep.ray_setup import free_placement_group
from raytune_ft.sweep import retention
from raytune_ft.sweep.records import EventLog, TrialRecord, with_epoch
from raytune_ft.sweep.space import trial_settings

# What the sweep keeps of each reported epoch (the worker reports more, e.g. lr_scales)
EPOCH_KEYS = ("epoch", "train_loss", "val_loss", "val_accuracy", "val_f1", "trainable_params", "total_params",
              "samples_per_sec", "train_seconds", "first_step_s", "peak_memory_mb", "param_bytes", "optimizer_bytes",
              "checkpoint_path", "pg_id", "lr", "resumes", "eval_seconds", "checkpoint_seconds", "data_load_s",
              "world_size",
              "distributed_type", "node_id", "stop_reason", "test_accuracy", "test_f1", "test_loss", "test_samples",
              "train_samples", "val_samples", "data_seed")


def task_scores(result: dict) -> dict:
    """The per-task metrics of a multi-task trial's report (val_accuracy.topic, test_f1.topic, ...)."""
    return {k: v for k, v in result.items() if "." in k and k.startswith(("val_", "test_"))}


ENDED_WORDS = {"completed": "completed", "stopped_early": "stopped early",
               "stopped_patience": "stopped by patience", "error": "FAILED"}
WRITE_EVERY_S = 10.0  # seconds between writes of sweep_state.json and the tables while only epochs come in
WRITE_SPACING = 19  # writes at least this many times the last one's seconds apart: ~5 % of the driver's time at most


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
        self.log = EventLog(layout.sweep_events)
        self.stage = "search"
        self.tally = self._tally()
        self.pg_ids: set[str] = set()
        self.t0 = time.monotonic()
        # what is not in sweep_state.json and the tables yet, and when they were last written
        self.unwritten, self.ended_unwritten = False, False
        self.written_at, self.write_seconds = -math.inf, 0.0

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
        entry = {k: result[k] for k in EPOCH_KEYS if k in result}
        entry.update(task_scores(result))  # a multi-task trial's val_accuracy.<task>, ... (test_* in confirm)
        entry["checkpoint_path"] = result.get("checkpoint_uri") or before.get("checkpoint_path") \
            or result.get("checkpoint_path")  # a URI for bucket storage, else Ray's path
        history = with_epoch(rec.history, entry)
        replaced = len(history) <= len(rec.history)  # epochs reported again
        rec.history = history
        self.log.append({"event": "epoch", "trial": trial.trial_id, "metrics": entry,
                         "wall_seconds": rec.wall_seconds()})
        if replaced:  # a best score may be gone with the epochs replaced: count the stage again (rare)
            self.tally = self._tally()
        elif rec.stage == self.stage:
            self.tally.scored(rec, entry)
        self.unwritten = True
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

    def on_step_end(self, iteration, trials, **info):
        wait = max(WRITE_SPACING * self.write_seconds, 0.0 if self.ended_unwritten else WRITE_EVERY_S)
        if self.unwritten and time.monotonic() - self.written_at >= wait:
            self.write_files()

    def on_experiment_end(self, trials, **info):
        # A trial started after Tune last saved its state, before the driver died, is unknown to the
        # resumed Tune (its search generator makes that sample again under a new id): drop its record.
        known = {t.trial_id for t in trials}
        lost = [tid for tid, rec in self.records.items() if rec.status == "running" and tid not in known]
        for tid in lost:
            del self.records[tid]
            self.log.append({"event": "drop", "trial": tid})
        if lost:
            self.tally = self._tally()
            self.unwritten = True
            self.printer(f"{len(lost)} trial(s) that started after Tune's last saved state ran again under new "
                         f"ids: {', '.join(lost)}")

    # ------------------------------------------------------------------ state (Tune's protocol + our files)

    def get_state(self) -> Optional[dict]:
        return {"records": {tid: rec.to_json() for tid, rec in self.records.items()}}

    def set_state(self, state: dict) -> None:
        """Tune's copy is at most as new as the event log, which the records were loaded from: it fills in
        only trials the log lacks, and goes to sweep_state.json before a trial driver can look there."""
        missing = {tid: d for tid, d in state.get("records", {}).items() if tid not in self.records}
        for tid, d in missing.items():
            self._add(tid, TrialRecord.from_json(d))
        if missing:
            self.write_files()

    def save_state(self) -> None:
        write_text(self.layout.sweep_state, json.dumps(self.get_state()["records"]))

    def write_files(self) -> list[dict]:
        """sweep_state.json and the tables, rewritten whole from the records; the trials' rows."""
        start = time.monotonic()
        self.save_state()
        rows = self.write_tables()
        self.written_at = time.monotonic()
        self.write_seconds = self.written_at - start
        self.unwritten = self.ended_unwritten = False
        return rows

    def compact(self) -> list[dict]:
        """The event log rewritten as one line per trial (its whole record), then sweep_state.json and the
        tables: at the end of each stage, and on resume before any trial runs. The trials' rows."""
        self.log.rewrite({"event": "trial", "trial": tid, "record": rec.to_json()} for tid, rec in self.records.items())
        return self.write_files()

    def start_over(self) -> None:
        """Forget every record (a resume that finds no state Tune saved runs the sweep again)."""
        self.records.clear()
        self.tally = self._tally()
        self.compact()

    # ------------------------------------------------------------------ records, progress, tables

    def record(self, trial) -> TrialRecord:
        # a trial whose actor fails to start gets on_trial_error without on_trial_start
        if trial.trial_id not in self.records:
            settings = trial_settings(trial.config)
            self._add(trial.trial_id, TrialRecord(
                strategy=settings["strategy"], seed=settings["seed"], stage=settings["stage"],
                train_size=(settings["train_subset"] or {}).get("size", self.train_size),
                source_trial_id=settings["source_trial_id"]))
        return self.records[trial.trial_id]

    def _add(self, tid: str, rec: TrialRecord) -> None:
        self.records[tid] = rec
        self.log.append({"event": "trial", "trial": tid, "record": rec.to_json()})
        if rec.stage == self.stage:
            self.tally.add(tid, rec)
        self.unwritten = True

    def _end(self, trial, rec: TrialRecord) -> None:
        rec.ended, rec.ended_at = time.monotonic(), time.time()
        try:  # it never resumes now: its best checkpoint's weights stay, the rest goes (sweep/retention.py)
            rec.checkpoint_bytes = retention.trial_ended(self.layout, trial.trial_id, rec.history, self.metric,
                                                         self.mode)
        except OSError as e:
            self.printer(f"{trial.trial_id}: its checkpoints were left as they are: {e}")
        self.log.append({"event": "end", "trial": trial.trial_id, "status": rec.status, "error": rec.error,
                         "wall_seconds": rec.wall_seconds(), "ended_at": rec.ended_at,
                         "checkpoint_bytes": rec.checkpoint_bytes})
        if rec.stage == self.stage:
            self.tally.end(trial.trial_id, rec)
        self.unwritten = self.ended_unwritten = True
        if rec.history:  # Tune killed the trial actor: free what its Train worker group held
            self.pg_ids.add(rec.history[-1].get("pg_id", ""))
            free_placement_group(rec.history[-1].get("pg_id", ""))
        line = (f"{self._clock()} {trial.trial_id} {rec.strategy['name']:<20} {ENDED_WORDS[rec.status]} "
                f"after {len(rec.history)} epoch(s)")
        self.show(line + (f": {error_reason(rec.error)[:200]}" if rec.error else ""))

    def _tally(self) -> Tally:
        """The progress tally of the stage running now, counted from all its records."""
        stage = {tid: rec for tid, rec in self.records.items() if rec.stage == self.stage}
        return Tally.of(stage, self.metric, self.mode)

    def show(self, line: str) -> None:
        snap = self.tally.snapshot(t0=self.t0, total=self.total, concurrency=self.concurrency, epochs=self.epochs)
        self.printer(f"{line}   {summary_line(snap)}")
        if self.on_update:
            self.on_update(snap)

    def prune(self, stage: str, keep_best: int) -> None:
        """A stage has ended: the checkpoints of all but its `keep_best` best trials per strategy and size go."""
        try:
            left = retention.stage_ended(self.layout, self.records, stage, keep_best, self.metric, self.mode)
        except OSError as e:
            self.printer(f"the {stage} stage's checkpoints were left as they are: {e}")
            return
        for tid, kept in left.items():
            self.records[tid].checkpoint_bytes = kept
            self.log.append({"event": "kept", "trial": tid, "checkpoint_bytes": kept})
        self.unwritten = True

    def begin_stage(self, stage: str, total: int) -> None:
        """The progress lines count the trials of this stage ("search" or "confirm") from now on."""
        self.stage, self.total = stage, total
        self.tally = self._tally()

    def rows(self) -> list[dict]:
        return [trial_row(job=self.job.name, run_id=self.layout.run_id, trial_id=tid, strategy=rec.strategy,
                          seed=rec.seed, status=rec.status, history=rec.history, metric=self.metric, mode=self.mode,
                          wall_seconds=rec.wall_seconds(), error=rec.error, stage=rec.stage,
                          train_size=rec.train_size or self.train_size, source_trial_id=rec.source_trial_id,
                          resumes=max((m.get("resumes", 0) for m in rec.history), default=0),
                          started_at=rec.started_at, ended_at=rec.ended_at, run_dir=self.layout.root,
                          checkpoint_bytes=rec.checkpoint_bytes)
                for tid, rec in self.records.items() if rec.status != "running"]

    def write_tables(self) -> list[dict]:
        rows = self.rows()
        if rows:
            write_table(rows, self.layout.trials)
            strategies, comparisons = strategy_table(rows, self.mode, self.metric)
            add_forecast(strategies, rows, self.layout.plan)  # plan.json's forecast beside the actual
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
