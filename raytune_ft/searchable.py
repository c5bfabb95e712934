"""Searchable values: a knob in a job spec is a constant or one Tune sampler.

    lr: 3.0e-4                        # a constant
    lr: {loguniform: [1.0e-5, 1.0e-3]}
    r: {choice: [4, 8, 16]}
    weight_decay: {uniform: [0.0, 0.1]}
    epochs_frozen: {randint: [1, 3]}  # both ends included
    batch_size: {grid: [32, 64]}      # every value, in every combination with other grids

`Searchable(float, gt=0)` is the pydantic type of such a knob: it checks the constant, or every
value the sampler can draw, against the bounds, so `lr: {uniform: [-1, 1]}` fails at validate time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

SAMPLERS = ("choice", "grid", "uniform", "loguniform", "randint")

JSON_TYPES = {float: "number", int: "integer", str: "string", bool: "boolean"}
# A sampler in the spec's JSON schema (the reference pages are generated from it): one key, a list of values
SAMPLER_SCHEMA = {"title": "Sampler", "type": "object", "minProperties": 1, "maxProperties": 1,
                  "propertyNames": {"enum": list(SAMPLERS)}, "additionalProperties": {"type": "array"},
                  "description": "a sampler such as {choice: [...]}: the bounds hold for every value it can draw"}


@dataclass(frozen=True)
class Sampler:
    kind: str
    values: tuple

    def candidates(self) -> tuple:
        """Values whose bounds must hold: every option, or both ends of a range."""
        return self.values

    def to_tune(self):
        from ray import tune

        if self.kind == "choice":
            return tune.choice(list(self.values))
        if self.kind == "grid":
            return tune.grid_search(list(self.values))
        lo, hi = self.values
        if self.kind == "uniform":
            return tune.uniform(lo, hi)
        if self.kind == "loguniform":
            return tune.loguniform(lo, hi)
        return tune.randint(lo, hi + 1)  # randint: both ends included

    def suggest(self, trial, name: str):
        """The same sampler for Optuna's define-by-run API."""
        if self.kind in ("choice", "grid"):
            return trial.suggest_categorical(name, list(self.values))
        lo, hi = self.values
        if self.kind == "randint":
            return trial.suggest_int(name, lo, hi)
        return trial.suggest_float(name, lo, hi, log=self.kind == "loguniform")

    def __str__(self) -> str:
        return f"{{{self.kind}: {list(self.values)}}}"


def _parse_sampler(raw: dict, kind_of_value: type) -> Sampler:
    if len(raw) != 1:
        raise ValueError(
            f"a sampler is one key out of {', '.join(SAMPLERS)}; got keys {sorted(raw)}"
        )
    (kind, values), = raw.items()
    if kind not in SAMPLERS:
        raise ValueError(f"unknown sampler {kind!r}; use one of {', '.join(SAMPLERS)}")
    if not isinstance(values, list) or not values:
        raise ValueError(f"{kind} takes a non-empty list, e.g. {{{kind}: [1, 2]}}")
    values = tuple(_coerce(v, kind_of_value) for v in values)
    if kind in ("uniform", "loguniform", "randint"):
        if len(values) != 2:
            raise ValueError(f"{kind} takes [low, high]; got {len(values)} values")
        lo, hi = values
        if not lo < hi:
            raise ValueError(f"{kind} needs low < high; got [{lo}, {hi}]: swap or widen them")
        if kind == "loguniform" and lo <= 0:
            raise ValueError(f"loguniform needs low > 0; got {lo}: use uniform, or a positive low")
        if kind == "randint" and not all(isinstance(v, int) for v in values):
            raise ValueError("randint takes two integers")
        if kind in ("uniform", "loguniform") and kind_of_value is int:
            raise ValueError(f"this knob is a whole number: use {{randint: [{lo}, {hi}]}} or {{choice: [...]}}, "
                             f"not {kind}")
    return Sampler(kind, values)


def _coerce(value: Any, kind_of_value: type):
    if kind_of_value is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    if kind_of_value is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a finite number")
        return value
    if kind_of_value is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind_of_value in (str, bool) and isinstance(value, kind_of_value):
        return value
    if kind_of_value is object:
        return value
    raise ValueError(f"expected {kind_of_value.__name__}, got {value!r}")


def Searchable(kind_of_value: type, *, gt=None, ge=None, lt=None, le=None):  # noqa: N802
    """A pydantic type: a constant of `kind_of_value`, or a sampler whose values obey the bounds."""

    def parse(raw):
        value = _parse_sampler(raw, kind_of_value) if isinstance(raw, dict) else _coerce(raw, kind_of_value)
        for x in value.candidates() if isinstance(value, Sampler) else (value,):
            if gt is not None and not x > gt:
                raise ValueError(f"must be > {gt}; got {x}")
            if ge is not None and not x >= ge:
                raise ValueError(f"must be >= {ge}; got {x}")
            if lt is not None and not x < lt:
                raise ValueError(f"must be < {lt}; got {x}")
            if le is not None and not x <= le:
                raise ValueError(f"must be <= {le}; got {x}")
        return value

    bounds = {key: bound for key, bound in (("exclusiveMinimum", gt), ("minimum", ge), ("exclusiveMaximum", lt),
                                             ("maximum", le)) if bound is not None}
    constant = {"type": JSON_TYPES[kind_of_value], **bounds} if kind_of_value in JSON_TYPES else {}
    return Annotated[Any, BeforeValidator(parse), PlainSerializer(to_plain),
                     WithJsonSchema({"anyOf": [constant, SAMPLER_SCHEMA]})]


def can_be_nonzero(value) -> bool:
    """A constant other than 0, or a sampler that can draw one (a range's ends, or any option): whether a
    knob that is off at 0 (ewc, augment_text, ...) can be on in some trial."""
    if isinstance(value, Sampler):
        return any(v != 0 for v in value.candidates())
    return value is not None and value != 0


def to_plain(value):
    """A constant as is, a sampler as its YAML form (for the resolved spec file)."""
    return {value.kind: list(value.values)} if isinstance(value, Sampler) else value
