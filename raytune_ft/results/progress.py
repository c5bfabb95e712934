"""What a running sweep shows: a snapshot of its trials, as one plain line or as a live rich table.

`run_sweep` calls `printer(line)` for each event (a trial's epoch, a trial's end) and
`on_update(snapshot)` after it. The CLI picks the view: a live table on a terminal, plain lines
otherwise (CI logs, `submit` logs), so output that is not a terminal never holds control codes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

from raytune_ft.metric import best_first, better
from raytune_ft.results.tables import STATUSES


@dataclass
class Snapshot:
    elapsed: float
    total: Optional[int]  # trials the sweep will run, when known
    concurrency: int
    counts: dict  # status -> number of trials
    best: dict  # strategy -> (best score so far, trials seen)
    running: list  # (trial_id, strategy, epochs reported, seconds running)
    eta: Optional[float] = None  # seconds left, once a trial has ended
    metric: str = "val_accuracy"
    mode: str = "max"
    epochs: int = 0
    strategies: list = field(default_factory=list)


class Tally:
    """What a snapshot counts, kept up to date event by event: the callback calls `add` for each trial,
    `scored` for each epoch it reports and `end` when it ends, each at a cost that does not grow with the
    sweep, and `snapshot` costs what the running trials do."""

    def __init__(self, metric: str, mode: str):
        self.metric, self.mode = metric, mode
        self.counts = {s: 0 for s in ("running", *STATUSES)}
        self.best: dict = {}  # strategy -> (best score so far, trials seen)
        self.running: dict = {}  # trial id -> its record
        self.ended_seconds = 0.0  # the ended trials' wall seconds, summed

    @classmethod
    def of(cls, records: dict, metric: str, mode: str) -> "Tally":
        tally = cls(metric, mode)
        for tid, rec in records.items():
            tally.add(tid, rec)
        return tally

    def add(self, tid: str, rec) -> None:
        self.counts[rec.status] += 1
        name = rec.strategy["name"]
        score, seen = self.best.get(name, (None, 0))
        self.best[name] = (score, seen + 1)
        for m in rec.history:
            self.scored(rec, m)
        if rec.status == "running":
            self.running[tid] = rec
        else:
            self.ended_seconds += rec.wall_seconds()

    def scored(self, rec, metrics: dict) -> None:
        name, value = rec.strategy["name"], metrics.get(self.metric)
        score, seen = self.best[name]
        if value is not None and better(value, score, self.mode):
            self.best[name] = (value, seen)

    def end(self, tid: str, rec) -> None:
        del self.running[tid]
        self.counts["running"] -= 1
        self.counts[rec.status] += 1
        self.ended_seconds += rec.wall_seconds()

    def snapshot(self, *, t0: float, total: Optional[int], concurrency: int, epochs: int,
                 now: Optional[float] = None) -> Snapshot:
        now = time.monotonic() if now is None else now
        running = [(tid, rec.strategy["name"], len(rec.history), rec.wall_seconds(now))
                   for tid, rec in self.running.items()]
        ended = sum(self.counts[s] for s in STATUSES)
        eta = None
        if ended and total:
            mean = self.ended_seconds / ended
            pending = max(0, total - ended - len(running))
            work = sum(max(0.0, mean - r[3]) for r in running) + pending * mean
            eta = work / max(1, concurrency)
        return Snapshot(elapsed=now - t0, total=total, concurrency=concurrency, counts=dict(self.counts),
                        best=dict(self.best), running=running, eta=eta, metric=self.metric, mode=self.mode,
                        epochs=epochs)


def snapshot(records: dict, *, t0: float, total: Optional[int], concurrency: int, metric: str, mode: str,
             epochs: int, now: Optional[float] = None) -> Snapshot:
    """Counts, best score per strategy and an estimate of the time left, from the sweep's records."""
    return Tally.of(records, metric, mode).snapshot(t0=t0, total=total, concurrency=concurrency, epochs=epochs,
                                                    now=now)


def _clock(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def summary_line(snap: Snapshot) -> str:
    """The one-line summary that ends every plain progress line."""
    c = snap.counts
    ranked = best_first(((k, v[0]) for k, v in snap.best.items() if v[0] is not None), lambda kv: kv[1], snap.mode)
    done = sum(c[s] for s in STATUSES)
    left = f", ~{_clock(snap.eta)} left" if snap.eta is not None else ""
    return (f"{done}/{snap.total or '?'} ended{left} | running {c['running']} done {c['completed']} "
            f"stopped {c['stopped_early']} patience {c['stopped_patience']} failed {c['error']} | best: "
            + ", ".join(f"{k} {v:.3f}" for k, v in ranked))


def render(snap: Snapshot):
    """The live view: counts and time, then one row per strategy, then the running trials."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    c = snap.counts
    done = sum(c[s] for s in STATUSES)
    head = Text.assemble(
        ("sweep ", "bold"), f"{done}/{snap.total or '?'} trials ended   ",
        ("running ", "cyan"), f"{c['running']}   ", ("completed ", "green"), f"{c['completed']}   ",
        ("stopped early ", "yellow"), f"{c['stopped_early']}   ", ("stopped by patience ", "magenta"),
        f"{c['stopped_patience']}   ", ("failed ", "red"), f"{c['error']}   ",
        f"elapsed {_clock(snap.elapsed)}   left ~{_clock(snap.eta)}")
    table = Table(show_edge=False, pad_edge=False, expand=False)
    table.add_column("strategy")
    table.add_column(f"best {snap.metric}", justify="right")
    table.add_column("trials", justify="right")
    scored = best_first((kv for kv in snap.best.items() if kv[1][0] is not None), lambda kv: kv[1][0], snap.mode)
    for name, (score, n) in scored + [kv for kv in snap.best.items() if kv[1][0] is None]:
        table.add_row(name, "-" if score is None else f"{score:.4f}", str(n))
    parts = [head, table]
    if snap.running:
        parts.append(Text("running: " + ", ".join(
            f"{tid} {name} epoch {n}/{snap.epochs} ({_clock(sec)})" for tid, name, n, sec in snap.running),
            style="dim"))
    return Group(*parts)


class LiveView:
    """A rich Live table for a terminal; event lines scroll above it."""

    def __init__(self):
        from rich.console import Console
        from rich.live import Live

        self.console = Console()
        self.live = Live(console=self.console, refresh_per_second=2, transient=False)

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        return self.live.__exit__(*exc)

    def line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def update(self, snap: Snapshot) -> None:
        self.live.update(render(snap))
