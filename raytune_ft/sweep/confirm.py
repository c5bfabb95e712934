"""Stage two of a sweep (search.confirm): each strategy's best configurations, trained again.

    candidates = confirm_candidates(job, callback.records, subsets)          # top_k per strategy and size
    setup = stage_setup(job, "select", candidates, callbacks, run_dir, n_concurrent)  # top_k > 1
    chosen = chosen_candidates(job, callback.records, candidates)            # the best on validation
    setup = stage_setup(job, "confirm", chosen, callbacks, run_dir, n_concurrent)
    tuner = tune.Tuner(trainable, **setup)                                   # (or resumed: sweep/driver.py)

For each strategy (and train size), its `top_k` search trials by best validation score are the
candidates. With one candidate there is nothing to choose: it is confirmed at once. With several, each is
first trained on `selection_seeds` seeds ("select") and the one with the best mean *validation* score is
chosen; only it is then trained on the `seeds` confirm seeds and scored on the test split. The seeds that
chose a configuration never report its test score, so the choice cannot flatter it (the winner's curse:
reporting on the seeds that chose gave +0.011 of bias at top_k 3 with a seed sd of 0.03, simulated).
Every select / confirm trial trains from scratch to the full epochs, with no early stopping; a confirm
trial scores the test split at its best-validation epoch (train/recipe.py). The confirm seeds are the same
for every strategy and size, so strategies can be compared seed by seed (analysis/confirm.py). A
confirm seed is not any search trial's seed: the model's new parts, the data order, augmentation and
dropout are all drawn afresh, and with `vary_data` the train / validation split and train subset too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from raytune_ft.metric import best, best_first
from raytune_ft.sweep.records import TrialRecord
from raytune_ft.sweep.search import derive_seed


def stage_seeds(job, stage: str) -> list[int]:
    """The seeds of the select or confirm stage, the same for every strategy and train size."""
    count = job.search.confirm.selection_seeds if stage == "select" else job.search.confirm.seeds
    return [derive_seed(job.search.seed, stage, i) for i in range(count)]


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


def chosen_candidates(job, records: dict[str, TrialRecord], candidates: list[dict]) -> list[dict]:
    """After the select stage: per strategy and train size, the candidate whose select trials have the best
    mean validation score (a candidate whose select trials all failed is not chosen; the first of equals)."""
    metric, mode = job.search.metric, job.search.mode
    means: dict[str, list[float]] = {}
    for rec in records.values():
        if rec.stage == "select" and rec.status != "error" and rec.history:
            means.setdefault(rec.source_trial_id, []).append(best(rec.history, lambda m: m[metric], mode)[metric])
    groups: dict = {}
    for c in candidates:
        groups.setdefault((c["strategy"]["name"], (c["train_subset"] or {}).get("size")), []).append(c)
    out = []
    for group in groups.values():
        scored = [(sum(means[c["source_trial_id"]]) / len(means[c["source_trial_id"]]), c)
                  for c in group if means.get(c["source_trial_id"])]
        if scored:
            out.append(best_first(scored, lambda x: x[0], mode)[0][1])
    return out


def stage_setup(job, stage: str, candidates: list[dict], callbacks: list, run_dir: Path, n_concurrent: int) -> dict:
    """The stage's param_space, tune_config and run_config: candidates x the stage's seeds, first in, first
    out (no scheduler: every epoch runs). sweep/driver.py makes a Tuner of them, or resumes it."""
    from ray import tune

    from raytune_ft.layout import RunLayout

    layout = RunLayout(run_dir)
    return dict(
        param_space={"candidate": tune.grid_search(candidates), "seed": tune.grid_search(stage_seeds(job, stage)),
                     "stage": stage},
        tune_config=tune.TuneConfig(metric=job.search.metric, mode=job.search.mode, num_samples=1,
                                    max_concurrent_trials=n_concurrent),
        run_config=tune.RunConfig(
            name=(layout.select_tune if stage == "select" else layout.confirm_tune).name, storage_path=str(layout.ray),
            callbacks=callbacks, verbose=0, failure_config=tune.FailureConfig(max_failures=0, fail_fast=False)),
    )
