"""Stage two of a sweep (search.confirm): each strategy's best configurations, trained again.

    candidates = confirm_candidates(job, callback.records, subsets)
    setup = confirm_setup(job, candidates, callbacks, run_dir, n_concurrent)   # -> tune.Tuner(trainable, **setup)

For each strategy (and train size), its `top_k` search trials by best validation score are the
candidates; each is trained from scratch once per confirm seed, to the full epochs, with no early
stopping, scoring the test split at its best-validation epoch (train/recipe.py). The seeds are the
same for every strategy and size, so strategies can be compared seed by seed (results/confirm.py).
A confirm seed is not any search trial's seed: the model's new parts, the data order, augmentation
and dropout are all drawn afresh.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from raytune_ft.metric import best, best_first
from raytune_ft.sweep.records import TrialRecord
from raytune_ft.sweep.search import derive_seed


def confirm_seeds(job) -> list[int]:
    return [derive_seed(job.search.seed, "confirm", i) for i in range(job.search.confirm.seeds)]


def confirm_candidates(job, records: dict[str, TrialRecord], subsets: Optional[dict[int, dict]] = None) -> list[dict]:
    """The configurations to confirm: per strategy and train size, the top_k search trials that
    reported a score (the first of equals; ties by the order trials were made), in the spec's order."""
    metric, mode, top_k = job.search.metric, job.search.mode, job.search.confirm.top_k
    scored = [(tid, rec, best(rec.history, lambda m: m[metric], mode)[metric])
              for tid, rec in records.items()
              if rec.stage == "search" and rec.status != "error" and rec.history]
    out = []
    for s in job.strategies:
        for size in sorted({rec.train_size for _, rec, _ in scored}, key=lambda x: (x is None, x or 0)):
            mine = [x for x in scored if x[1].strategy["name"] == s.name and x[1].train_size == size]
            for tid, rec, _ in best_first(mine, lambda x: x[2], mode)[:top_k]:
                out.append({"strategy": rec.strategy, "train_subset": (subsets or {}).get(size),
                            "source_trial_id": tid})
    return out


def confirm_setup(job, candidates: list[dict], callbacks: list, run_dir: Path, n_concurrent: int):
    """The stage's param_space, tune_config and run_config: candidates x seeds, first in, first out (no
    scheduler: every epoch runs). sweep/run.py makes a Tuner of them, or resumes it."""
    from ray import tune

    from raytune_ft.layout import RunLayout

    return dict(
        param_space={"candidate": tune.grid_search(candidates), "seed": tune.grid_search(confirm_seeds(job)),
                     "stage": "confirm"},
        tune_config=tune.TuneConfig(metric=job.search.metric, mode=job.search.mode, num_samples=1,
                                    max_concurrent_trials=n_concurrent),
        run_config=tune.RunConfig(
            name=RunLayout(run_dir).confirm_tune.name, storage_path=str(RunLayout(run_dir).ray), callbacks=callbacks,
            verbose=0, failure_config=tune.FailureConfig(max_failures=0, fail_fast=False)),
    )
