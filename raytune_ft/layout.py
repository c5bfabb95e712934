"""A run folder's layout, in one place: every module asks this class where a file goes.

    runs/<name>-<time>/
      job.yaml              the resolved spec (absolute data paths: resume works from anywhere)
      data/                 the prepared splits (meta.json + tensors), made once per job
      trials.parquet        one row per trial            strategies.parquet   one row per strategy
      epochs.parquet        one row per reported epoch   sweep_state.json     the sweep's records
      trials/<trial id>/    each trial's checkpoints     reports/<strategy>/  test-split reports
      ray/                  Ray's own: Tune's experiment state, Train's runs
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# What `fetch` brings home from a run's storage: the tables and reports, not the weights
RESULT_FILES = ("trials.parquet", "strategies.parquet", "epochs.parquet", "job.yaml", "reports")


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
    def sweep_state(self) -> Path:
        return self.root / "sweep_state.json"

    @property
    def ray(self) -> Path:
        return self.root / "ray"

    @property
    def tune(self) -> Path:
        return self.ray / "tune"

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
