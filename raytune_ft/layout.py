"""A run folder's layout, in one place: every module asks this class where a file goes.

    runs/<name>-<time>/
      job.yaml               the resolved spec (absolute data paths: resume works from anywhere)
      data/                  the prepared splits (meta.json + one .npy per split and column), made once per job
      trials.parquet         one row per trial
      strategies.parquet     one row per strategy (x train size)
      epochs.parquet         one row per reported epoch
      comparisons.parquet    one row per ordered pair of strategies (a run with a confirm stage)
      budget_curves.parquet  expected best score after n trials / c seconds, per strategy, with a band
      data_size.parquet      score against train size, per strategy
      provenance.json        what made the run: versions, commit, data and weight hashes, the spec
      plan.json              the forecast made before the first trial (raytune-ft plan): cost, wall time, memory
      sweep_events.jsonl     the sweep's event log (appended; resume starts from it)
      sweep_state.json       its records, compacted, as trial drivers read them
      reports/<strategy>/    the best trial's test-split report and confusion matrix
      report/                report.html and its figures (raytune-ft report)
      ray/train-<trial id>/  each trial's checkpoints (checkpoint_*/): its best and latest while it runs, then its
                             best weights if it is among search.keep_best per strategy (sweep/retention.py)
      ray/tune/              Tune's experiment state (ray/select/, ray/confirm/: the later stages')
      trials/<trial id>/     a failed trial's mark; without Ray (train_trial called directly), its checkpoints
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# What `fetch` brings home from a run's storage: the tables and reports, not the weights
RESULT_FILES = ("trials.parquet", "strategies.parquet", "epochs.parquet", "comparisons.parquet",
                "budget_curves.parquet", "data_size.parquet", "provenance.json", "plan.json", "job.yaml", "reports")


@dataclass(frozen=True)
class RunLayout:
    root: Path

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def job(self) -> Path:
        return self.root / "job.yaml"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def data_meta(self) -> Path:
        return self.data / "meta.json"

    @property
    def trials(self) -> Path:
        return self.root / "trials.parquet"

    @property
    def strategies(self) -> Path:
        return self.root / "strategies.parquet"

    @property
    def epochs(self) -> Path:
        return self.root / "epochs.parquet"

    @property
    def comparisons(self) -> Path:
        return self.root / "comparisons.parquet"

    @property
    def budget_curves(self) -> Path:
        return self.root / "budget_curves.parquet"

    @property
    def data_size(self) -> Path:
        return self.root / "data_size.parquet"

    @property
    def provenance(self) -> Path:
        return self.root / "provenance.json"

    @property
    def plan(self) -> Path:
        """The forecast made before the first trial (raytune_ft/plan/): `run` writes it, `raytune-ft plan` too."""
        return self.root / "plan.json"

    @property
    def sweep_state(self) -> Path:
        return self.root / "sweep_state.json"

    @property
    def sweep_events(self) -> Path:
        """The sweep's event log, one JSON line per trial event (sweep/records.py)."""
        return self.root / "sweep_events.jsonl"

    @property
    def ray(self) -> Path:
        return self.root / "ray"

    @property
    def tune(self) -> Path:
        return self.ray / "tune"

    @property
    def select_tune(self) -> Path:
        """Tune's experiment of the select stage (search.confirm with top_k > 1), between the search and confirm."""
        return self.ray / "select"

    @property
    def confirm_tune(self) -> Path:
        """Tune's experiment of the confirm stage (search.confirm), after the search's (`tune`)."""
        return self.ray / "confirm"

    def trial(self, trial_id: str) -> Path:
        return self.root / "trials" / trial_id

    def report(self, strategy: str) -> Path:
        return self.root / "reports" / strategy

    def test_report(self, strategy: str) -> Path:
        """The test-split scores of a strategy's best trial (results/evaluation.py writes it)."""
        return self.report(strategy) / "test_report.json"

    @property
    def report_page(self) -> Path:
        """The HTML report's folder (`report.html` and its figures)."""
        return self.root / "report"
