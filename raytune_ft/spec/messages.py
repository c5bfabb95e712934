"""pydantic's validation errors as a user reads them: the field path as written in the YAML (no union
tags), what is wrong, and how to fix it (the fields that exist, the closest name, the value given)."""
from __future__ import annotations

import difflib
import re

from pydantic import BaseModel, TypeAdapter, ValidationError

from raytune_ft.data import DATA_SOURCES
from raytune_ft.models import SOURCES
from raytune_ft.spec.job import JobSpec
from raytune_ft.strategies import STRATEGIES


_UNIONS = {"model": (1, SOURCES), "data": (1, DATA_SOURCES), "strategies": (2, STRATEGIES)}  # tag's place in loc


def _is_tag(loc: tuple, i: int) -> bool:
    """Whether loc[i] is the tag pydantic adds for a union member (nothing a user would type)."""
    place, registry = _UNIONS.get(loc[0], (None, None)) if loc else (None, None)
    return (i == place and isinstance(loc[i], str) and loc[i] in registry) or "[" in str(loc[i])


def field_path(loc: tuple) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif _is_tag(loc, i):
            continue
        elif not re.fullmatch(r"[A-Za-z0-9_-]+", str(part)):  # a key no field could have: show it exactly
            out += f"[{str(part)!r}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _model_at(loc: tuple):
    """The pydantic model whose field loc[-1] would be (for listing its fields), or None."""
    import typing

    def models_in(annotation):
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return [annotation]
        return [m for arg in typing.get_args(annotation) for m in models_in(arg)]

    model = JobSpec
    for i, part in enumerate(loc[:-1]):
        if isinstance(part, int):
            continue
        if _is_tag(loc, i):
            model = _UNIONS[loc[0]][1].get(part).Config
            continue
        field = model.model_fields.get(part) if model else None
        if field is None:
            return None
        found = models_in(field.annotation)
        model = found[0] if len(found) == 1 else None  # None: a union, its member comes next in loc
    return model


def _unknown_field(err: dict) -> str:
    model, key = _model_at(err["loc"]), str(err["loc"][-1])
    if model is None:
        return "unknown field: remove it or check its spelling"
    fields = list(model.model_fields)
    close = difflib.get_close_matches(key, fields, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown field: {hint}the fields here are {', '.join(fields)}"


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def message(err: dict) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return _unknown_field(err)
    if kind == "missing":
        return "required: add this field"
    if kind == "union_tag_invalid":
        field = err["ctx"]["discriminator"].strip("'")
        tag = err["input"].get(field) if isinstance(err.get("input"), dict) else err["ctx"]["tag"]
        if not isinstance(tag, str):
            return f"{field} must be a name, one of {err['ctx']['expected_tags']}; got {_short(tag)}"
        close = difflib.get_close_matches(tag, re.findall(r"'([^']+)'", err["ctx"]["expected_tags"]), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{field} {_short(tag)} is not known{hint}; use one of {err['ctx']['expected_tags']}"
    if kind == "union_tag_not_found":
        return f"needs its '{err['ctx']['discriminator'].strip(chr(39))}' field to say which kind it is"
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind != "value_error" and "input" in err:  # a wrong type or value: show what was there
        msg += f"; got {_short(err['input'])}"
    return msg


def section_of_crash(data: dict) -> str:
    """The top-level field whose validation raised an unexpected exception (a validator bug)."""
    for name, field in JobSpec.model_fields.items():
        if name in data:
            try:
                TypeAdapter(field.annotation).validate_python(data[name])
            except ValidationError:
                pass
            except Exception:  # noqa: BLE001 - this is the one
                return name
    return "(top level)"
