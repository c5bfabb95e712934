"""The search space as the forecast sees it: how many trials each strategy gets, which of its searched knobs
change what a trial costs, where the calibration measures them, and the values a trial draws, equally likely.

    for space in strategy_spaces(job):
        knobs = cost_knobs(space)            # {"hparams.batch_size": [16, 32], "r": [4, 8, 16]}
        points = calibration_points(knobs)   # [{"hparams.batch_size": 32, "r": 16}, {... 16, ... 4}, ...]
        n = trials_per_strategy(job, space)  # per train size

Knobs that change cost: the batch size, and every whole-number knob of the strategy (a rank, virtual tokens,
blocks trained: what sizes tensors), and its choices of names or switches (DoRA on or off, an initialisation).
Rates (floats: learning rate, dropout, ...) do not. The model's max_length and image_size are the job's own
and calibrated as they are; so are training settings such as gradient checkpointing or mixed precision.
"""
from __future__ import annotations

import itertools
import math
from typing import Any

from raytune_ft.searchable import Sampler

BATCH = "hparams.batch_size"
MAX_POINTS = 5  # calibration points per strategy: the largest setting, the smallest, one per knob at its top
MAX_CATEGORIES = 3  # a choice of names or switches with more values is not calibrated (taken at its first)
QUANTILES = 9  # a whole-number range is represented by this many values, equally likely


def value_kind(v) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "category"
    return "number" if isinstance(v, int) else "rate"


def represented(value) -> list:
    """The values a knob takes in trials, each as likely: a constant; a choice's or grid's values; a whole-number
    range's integers (or QUANTILES of them, evenly spread); a float range's midpoints of QUANTILES slices."""
    if not isinstance(value, Sampler):
        return [value]
    if value.kind in ("choice", "grid"):
        return list(value.values)
    lo, hi = value.values
    if value.kind == "randint":
        if hi - lo + 1 <= QUANTILES:
            return list(range(lo, hi + 1))
        return sorted({round(lo + (hi - lo) * (k + 0.5) / QUANTILES) for k in range(QUANTILES)})
    if value.kind == "loguniform":
        span = math.log(hi) - math.log(lo)
        return [math.exp(math.log(lo) + span * (k + 0.5) / QUANTILES) for k in range(QUANTILES)]
    return [lo + (hi - lo) * (k + 0.5) / QUANTILES for k in range(QUANTILES)]


def cost_knobs(space: dict) -> dict[str, list]:
    """{knob: the values trials take} of the strategy's searched knobs that change cost (see the module's
    docstring); knob is the strategy's own name, or hparams.batch_size."""
    out = {}
    batch = space["hparams"].get("batch_size")
    if isinstance(batch, Sampler):
        out[BATCH] = represented(batch)
    for name, value in space.items():
        if name in ("name", "hparams") or not isinstance(value, Sampler):
            continue
        values = represented(value)
        kinds = {value_kind(v) for v in values}
        if kinds == {"number"} or (kinds == {"category"} and len(values) <= MAX_CATEGORIES):
            out[name] = values
    return out


def calibration_points(knobs: dict[str, list]) -> list[dict]:
    """Where to measure: first the largest setting of every knob at once (what memory must hold), then the
    smallest, then each knob alone at its largest (numbers) or at each other value (names), the rest at their
    smallest; at most MAX_POINTS, each once."""
    low = {k: lowest(v) for k, v in knobs.items()}
    high = {k: highest(v) for k, v in knobs.items()}
    points = [high, low]
    for k, values in knobs.items():
        others = [high[k]] if all(value_kind(v) == "number" for v in values) else [v for v in values if v != low[k]]
        points += [{**low, k: v} for v in others]
    unique = []
    for p in points:
        if p not in unique:
            unique.append(p)
    return unique[:MAX_POINTS]


def lowest(values: list):
    return min(values) if all(value_kind(v) == "number" for v in values) else values[0]


def highest(values: list):
    return max(values) if all(value_kind(v) == "number" for v in values) else values[-1]


def settings(knobs: dict[str, list]) -> list[dict]:
    """Every combination of the knobs' values, each as likely (what the expectation over trials averages)."""
    names = list(knobs)
    return [dict(zip(names, combo)) for combo in itertools.product(*(knobs[n] for n in names))]


def trial_settings(space: dict, point: dict) -> tuple[dict, dict]:
    """(strategy dict, hparams dict) of a trial at `point`: its knobs there, every other sampler at its first
    value (the lowest learning rate of a range: the calibration's few steps must not diverge)."""
    def first(v):
        return v.values[0] if isinstance(v, Sampler) else v
    strategy = {k: first(v) for k, v in space.items() if k != "hparams"}
    hparams = {k: first(v) for k, v in space["hparams"].items()}
    for knob, value in point.items():
        if knob == BATCH:
            hparams["batch_size"] = value
        else:
            strategy[knob] = value
    return strategy, hparams


def grid_combinations(job, space: dict) -> int:
    """How many points the strategy's own grids make (each is num_samples trials): grid samplers, and under
    search.algorithm grid its choices too (sweep/space.py expands them)."""
    algorithm = job.search.algorithm
    if algorithm == "optuna":
        return 1
    count = 1
    for value in [*(v for k, v in space.items() if k != "hparams"), *space["hparams"].values()]:
        if isinstance(value, Sampler) and (value.kind == "grid" or (algorithm == "grid" and value.kind == "choice")):
            count *= len(value.values)
    return count


def trials_per_strategy(job, space: dict, num_samples: int | None = None) -> int:
    """Search trials of this strategy at one train size: num_samples x its grid's points."""
    return (num_samples or job.search.num_samples) * grid_combinations(job, space)


def features(point: dict, knobs: dict[str, list]) -> list[float]:
    """A setting as the cost model's inputs: 1 (the intercept), each number knob's value, and for a knob of
    names one 0/1 per value but its first."""
    out = [1.0]
    for k, values in knobs.items():
        v: Any = point.get(k, lowest(values))
        if all(value_kind(x) == "number" for x in values):
            out.append(float(v))
        else:
            out += [1.0 if v == other else 0.0 for other in values[1:]]
    return out
