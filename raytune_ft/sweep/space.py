"""The search space: per strategy its knobs and hyperparameters, as Tune samplers.

Random and grid search see one grid over the strategies with each strategy's own samplers inside
(Tune resolves nested domains); Optuna gets one define-by-run space per strategy (search.py). A strategy's
own grids are expanded into that one grid (one entry per combination): Ray before 2.58 cannot resolve a
grid nested in another grid's value when it has more than one value ("could not be unambiguously resolved").
"""
from __future__ import annotations

import itertools
from typing import Optional

from raytune_ft.hparams import HParams
from raytune_ft.searchable import Sampler


def _domain(value, algorithm: str):
    if not isinstance(value, Sampler):
        return value
    if algorithm == "grid" and value.kind == "choice":
        return Sampler("grid", value.values).to_tune()
    return value.to_tune()


def strategy_spaces(job) -> list[dict]:
    """Per strategy: its knobs and its hyperparameters (job defaults + its overrides), as samplers."""
    out = []
    for s in job.strategies:
        hp = {k: getattr(s.hparams, k) if getattr(s.hparams, k) is not None else getattr(job.search.hparams, k)
              for k in HParams.model_fields}
        out.append({"name": s.name, **s.knobs(), "hparams": hp})
    return out


def tune_param_space(job, subsets: Optional[list[dict]] = None) -> dict:
    """A grid over strategies (and train sizes, when the job has several); inside each strategy, its own
    samplers (Tune resolves nested domains)."""
    from ray import tune

    algorithm = job.search.algorithm

    def convert(d):
        return {k: convert(v) if isinstance(v, dict) else _domain(v, algorithm) for k, v in d.items()}
    space = {"strategy": tune.grid_search([x for s in strategy_spaces(job) for x in expand_grids(convert(s))])}
    if subsets:
        space["train_subset"] = tune.grid_search(subsets)
    return space


def expand_grids(d: dict) -> list[dict]:
    """`d` once per combination of the values of the grids inside it (the last grid's value changing
    fastest); other samplers stay as they are."""
    def options(v) -> list:
        if isinstance(v, dict) and set(v) == {"grid_search"}:
            return list(v["grid_search"])
        return expand_grids(v) if isinstance(v, dict) else [v]
    keys = list(d)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(options(d[k]) for k in keys))]


def trial_settings(config: dict) -> dict:
    """What the sweep reads from a Tune trial's config, the same for both stages:
    {"strategy": {name, knobs..., "hparams"}, "seed", "stage", "train_subset" (or None), "source_trial_id"}.

    A search trial's config is {"strategy", "seed"[, "train_subset"]}; a confirm trial's is
    {"candidate": {"strategy", "train_subset", "source_trial_id"}, "seed", "stage": "confirm"} (one grid
    over candidates x seeds: sweep/confirm.py)."""
    flat = {**config.get("candidate", {}), **{k: v for k, v in config.items() if k != "candidate"}}
    return {"strategy": flat["strategy"], "seed": flat.get("seed"), "stage": flat.get("stage", "search"),
            "train_subset": flat.get("train_subset"), "source_trial_id": flat.get("source_trial_id")}
