"""Checks of a job's search before anything runs, said on stderr by `validate` and `run` (the job still runs
as asked):

- a strategy asked for more trials than its space has points: a strategy whose knobs are all constants,
  sampled 8 times, is 8 trials of one configuration: they differ only in their seed, and their spread is seed
  noise, not the strategy's sensitivity to its knobs;
- a confirm stage with fewer seeds than telling its strategies apart needs (analysis/stats.py): it will give
  intervals, and no claim.
"""
from __future__ import annotations

import json
import math

from raytune_ft.searchable import Sampler


def _values(sampler: Sampler) -> float:
    """How many different values a sampler draws (math.inf for a continuous range)."""
    if sampler.kind in ("choice", "grid"):
        return len({json.dumps(v, sort_keys=True, default=str) for v in sampler.values})
    if sampler.kind == "randint":
        lo, hi = sampler.values
        return hi - lo + 1
    return math.inf  # uniform, loguniform


def distinct_points(job, index: int) -> float:
    """The number of different configurations strategy `index` can get: the product over its knobs and
    hyperparameters of each one's number of values (1 for a constant)."""
    from raytune_ft.sweep.space import strategy_spaces

    space = strategy_spaces(job)[index]
    values = [v for k, v in space.items() if k != "hparams"] + list(space["hparams"].values())
    return math.prod(_values(v) for v in values if isinstance(v, Sampler))


def repeat_warnings(job) -> list[str]:
    """One line per strategy whose space has fewer distinct points than search.num_samples."""
    n, grid = job.search.num_samples, job.search.algorithm == "grid"
    out = []
    for i, s in enumerate(job.strategies):
        points = distinct_points(job, i)
        if points >= n:
            continue
        asked = (f"its grid has {points} point(s) and search.num_samples {n} runs each {n} times" if grid else
                 f"its search space has {points} distinct configuration(s) but search.num_samples {n} asks for "
                 f"{n} trials of it")
        out.append(f"warning: strategies[{i}] ({s.name}): {asked}: trials repeat a configuration, differing only "
                   "in their seed. Add a sampler to one of its knobs or hyperparameters (e.g. lr: {loguniform: "
                   "[1.0e-4, 1.0e-2]}), or lower search.num_samples")
    return out


def confirm_warnings(job) -> list[str]:
    """A line when search.confirm.seeds are too few for any claim between the job's strategies."""
    from raytune_ft.analysis.stats import seeds_for_a_claim

    confirm = job.search.confirm
    k = len(job.strategies)
    if confirm is None or k < 2 or confirm.seeds >= seeds_for_a_claim(k):
        return []
    return [f"warning: search.confirm.seeds {confirm.seeds}: the confirm stage will give each strategy an interval, "
            f"but telling {k} strategies apart needs at least {seeds_for_a_claim(k)} seeds (with fewer, even a gap "
            "on every seed could be chance without assuming normal scores), so no strategy will be called best or "
            f"below: set seeds: {seeds_for_a_claim(k)} or more to compare them"]
