"""The spec's `search` section: the search algorithm and its samples (or a budget that sets them), the
scheduler, the confirm stage. spec/job.py puts it in the job spec."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from raytune_ft.hparams import HParams
from raytune_ft.metric import base_metric, metric_problem, mode_of

MAX_SAMPLES = 10_000


class Strict(BaseModel):
    """Every section of the spec: an unknown field is refused (with the fields that exist)."""

    model_config = ConfigDict(extra="forbid")


class BudgetSpec(Strict):
    """What the sweep may cost, instead of a trial count: `raytune-ft plan` forecasts the job (a short
    calibration of each strategy), and num_samples per strategy becomes the largest that fits, the same for
    every strategy. The forecast covers every stage's trials (the confirm stage too)."""

    gpu_hours: Optional[float] = Field(None, gt=0, description="GPU-hours of all trials together (each trial's "
                                       "wall seconds x the GPUs it holds); jobs with resources.gpus_per_worker")
    cpu_hours: Optional[float] = Field(None, gt=0, description="CPU-hours of all trials together (each trial's "
                                       "wall seconds x the CPUs it holds)")
    wall_hours: Optional[float] = Field(None, gt=0, description="hours from the start of the run to its end, "
                                        "with as many trials at a time as the cluster holds")

    @model_validator(mode="after")
    def _one(self):
        given = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give one of gpu_hours, cpu_hours, wall_hours (got {', '.join(given) or 'none'})")
        return self

    def kind(self) -> str:
        """gpu_hours, cpu_hours or wall_hours: the one given."""
        return next(k for k in type(self).model_fields if getattr(self, k) is not None)

    def hours(self) -> float:
        return getattr(self, self.kind())


class SchedulerSpec(Strict):
    name: Literal["asha", "none", "hyperband", "median"] = "asha"
    grace_period: int = Field(1, ge=1, description="epochs every trial runs before it can be stopped")
    reduction_factor: float = Field(2.0, gt=1, description="ASHA / HyperBand: keep 1/reduction_factor per rung")
    per_strategy: bool = Field(
        True, description="compare a trial only with trials of its own strategy (one scheduler each); "
        "false: one scheduler over all trials, so slow-starting strategies are cut early")


class ConfirmSpec(Strict):
    """Stage two: each strategy's best configurations trained again with fresh seeds, scored on test."""

    top_k: int = Field(1, ge=1, description="configurations per strategy (its best by validation) to confirm; "
                       "with more than 1, each is first trained on `selection_seeds` seeds and the one with the best "
                       "mean validation score is confirmed on `seeds` other seeds (the seeds that choose never report)")
    seeds: int = Field(3, ge=2, le=100, description="fresh seeds the confirmed configuration is trained on, the same "
                       "for every strategy (paired), scored on test; 2 give an interval, and telling strategies apart "
                       "needs more: 6 for two strategies, 7 for three, 8 for four (`validate` says)")
    selection_seeds: int = Field(3, ge=1, le=100, description="top_k > 1 only: seeds each candidate configuration "
                                 "is trained on to choose the strategy's one, on validation")
    vary_data: bool = Field(False, description="each select / confirm seed also splits train and validation "
                            "again (stratified, the same sizes) and draws its own train subset: the intervals then "
                            "cover the variation from which data a model is trained and tuned on, not only the "
                            "seed's (Bouthillier et al. 2021); the test split stays the same")


class SearchSpec(Strict):
    algorithm: Literal["random", "grid", "optuna"] = Field(
        "random", description="random: num_samples draws per strategy; grid: every grid/choice combination; "
        "optuna: one TPE study per strategy, each given num_samples trials")
    num_samples: int = Field(
        4, ge=1, le=MAX_SAMPLES, description="trials per strategy (random, optuna); repeats of the grid (grid). "
        f"At most {MAX_SAMPLES:,}: every trial is a Tune trial with its own folder, state and table row, all "
        "held by the one driver")
    budget: Optional[BudgetSpec] = Field(
        None, description="instead of num_samples: what the sweep may cost (GPU-hours, CPU-hours or wall hours); "
        "num_samples per strategy becomes the largest the forecast fits in it (raytune-ft plan), the same for "
        "every strategy, and `run` says so")
    metric: str = Field("val_accuracy", description="val_accuracy / val_f1 / val_loss (a multi-task job: the "
                        "mean over its tasks), or one task's, e.g. val_accuracy.topic")
    mode: Optional[Literal["max", "min"]] = Field(None, description="default: max for accuracy / F1, min for loss")
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec, description="early stopping of weak trials")
    hparams: HParams = Field(default_factory=HParams, description="hyperparameters of every strategy")
    seed: int = Field(0, description="the search's seed: each trial's own seed is derived from it and the "
                      "trial's index, so the same spec gives the same seeds")
    keep_best: int = Field(1, ge=0, description="after each stage, the best checkpoints (weights, no optimizer "
                           "state) of this many trials per strategy and train size are kept, the others' deleted; "
                           "the test split is scored on each strategy's best search trial's (0: none kept, no test "
                           "reports)")
    confirm: Optional[ConfirmSpec] = Field(
        None, description="after the search, train each strategy's top_k configurations again with `seeds` "
        "fresh seeds to the full epochs and score them on the test split: means, intervals, pairwise tests")

    @field_validator("metric")
    @classmethod
    def _metric(cls, metric):
        problem = metric_problem(base_metric(metric), None)  # a task's name is checked against data.label_columns
        if problem:
            raise ValueError(problem)
        return metric

    @model_validator(mode="after")
    def _mode(self):
        if self.mode is None:
            self.mode = mode_of(self.metric)
        elif self.mode != mode_of(self.metric):
            raise ValueError(f"search.mode {self.mode!r} does not fit metric {self.metric} "
                             f"(use {mode_of(self.metric)!r}, or leave mode out)")
        return self
