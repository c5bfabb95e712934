"""What the report reads from a run folder: its tables, job.yaml, the metric and its direction, and one colour
per strategy (the same in every figure and table)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from raytune_ft.layout import RunLayout
from raytune_ft.metric import best_first, direction_word, mode_of
from raytune_ft.results.tables import num

# One colour per strategy: matplotlib's tab10 without its grey and its red. Greys and hatches mean a trial's
# status (report/figures.py STATUS_STYLE), and nothing else: no colour means two things on one page.
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
           "#393b79", "#637939"]


@dataclass
class Run:
    """What the report needs from a run folder; strategies best first, as strategies.parquet has them."""
    dir: Path
    trials: list[dict]
    strategies: list[dict]
    epochs: list[dict] | None
    job: dict
    metric: str
    mode: str
    # with a confirm stage or several train sizes, trials / strategies above are the search at the largest size
    # (what the search figures show); these are every row of the two tables
    all_trials: list[dict] = field(default_factory=list)
    all_strategies: list[dict] = field(default_factory=list)
    train_size: int | None = None

    @property
    def better(self) -> str:
        return direction_word(self.mode)

    @property
    def winner(self) -> dict | None:
        """The strategy whose best search trial scored best (the search's leader, not a confirmed claim)."""
        return next((s for s in self.strategies if num(s["best_score"]) is not None), None)

    @cached_property
    def colors(self) -> dict[str, str]:
        names = dict.fromkeys(s["strategy"] for s in self.all_strategies or self.strategies)
        return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}

    def ranked(self, trials: list[dict]) -> list[dict]:
        """Scored trials (failed ones left out), best first."""
        scored = [t for t in trials if t["status"] != "error" and num(t["score"]) is not None]
        return best_first(scored, lambda t: t["score"], self.mode)


def load_run(run_dir: Path) -> Run:
    from raytune_ft.results.tables import read_table, strategy_rows

    layout = RunLayout(Path(run_dir))
    if not layout.trials.exists():
        raise FileNotFoundError(f"{layout.trials} not found: not a finished run folder "
                                "(run `raytune-ft run JOB.yaml` first)")
    all_trials = read_table(layout.trials)
    trials = [t for t in all_trials if t.get("stage") != "confirm"]
    job = read_job(layout)
    search = job.get("search", {})
    metric = search.get("metric", "score")
    mode = search.get("mode") or mode_of(metric, "max")
    # strategies.parquet; a run that crashed between the two writes: the summary rebuilt
    all_strategies = read_table(layout.strategies) if layout.strategies.exists() else strategy_rows(trials, mode)
    size = max((s["train_size"] for s in all_strategies if s.get("train_size") is not None), default=None)
    strategies = [s for s in all_strategies if s.get("train_size") in (size, None)]
    trials = [t for t in trials if t.get("train_size") in (size, None)]
    epochs = read_table(layout.epochs) if layout.epochs.exists() else None
    return Run(layout.root, trials, strategies, epochs, job, metric, mode, all_trials, all_strategies, size)


def read_job(layout: RunLayout) -> dict:
    """The run's job.yaml as a dict ({} where the folder has none)."""
    import yaml

    return (yaml.safe_load(layout.job.read_text()) or {}) if layout.job.exists() else {}
