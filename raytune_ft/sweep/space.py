"""The search space: per strategy its knobs and hyperparameters, as Tune samplers.

Random and grid search see one grid over the strategies with each strategy's own samplers inside
(Tune resolves nested domains); Optuna gets one define-by-run space per strategy (search.py).
"""
from __future__ import annotations

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


def tune_param_space(job) -> dict:
    """A grid over strategies; inside each, its own samplers (Tune resolves nested domains)."""
    from ray import tune

    algorithm = job.search.algorithm

    def convert(d):
        return {k: convert(v) if isinstance(v, dict) else _domain(v, algorithm) for k, v in d.items()}
    return {"strategy": tune.grid_search([convert(s) for s in strategy_spaces(job)])}
