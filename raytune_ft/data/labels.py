"""Labels as classes: each label named as its class (`label_name`), the classes found in train in their
order, the labels of a split as class indices. An error names the file and row a label came from."""
from __future__ import annotations

import math
import numbers
import re

from raytune_ft.errors import InputError

_NUMBER_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def label_name(label) -> str:
    """A label as the name of its class; ValueError (the reason) for a label that names no class.

    A class is a name or a whole number, whatever the column's type: 1, 1.0 and the text "1.0" are
    all class "1" (a Parquet float column, a CSV cell). Text that is not a number stays as written
    ("007" is "007"). Missing (None, empty text, NaN) and fractional (1.5) labels are errors.
    """
    if isinstance(label, str):
        text = label.strip()
        if not text:
            raise ValueError("the label is empty; fill it in or drop the row")
        if text.lower() == "nan":
            raise ValueError("the label is missing (NaN); fill it in or drop the row")
        if not _NUMBER_TEXT.fullmatch(text) or not any(c in text for c in ".eE"):
            return label  # a name, or an integer as written
        label = float(text)
    if label is None:
        raise ValueError("the label is empty; fill it in or drop the row")
    if isinstance(label, bool) or not isinstance(label, numbers.Real):
        return str(label)
    if isinstance(label, numbers.Integral):
        return str(int(label))
    value = float(label)
    if math.isnan(value):
        raise ValueError("the label is missing (NaN); fill it in or drop the row")
    if not value.is_integer():
        raise ValueError(f"label {value!r} is not a class: a class label is a name or a whole number "
                         "(1.0 counts as 1); fix the row or drop it")
    return str(int(value))



def class_names(names) -> list[str]:
    """The distinct class names, numbers in numeric order ("2" before "10"), then the rest sorted."""
    def key(name: str):
        try:
            value = float(name)
        except ValueError:
            return (1, 0.0, name)
        return (0, value, name) if math.isfinite(value) else (1, 0.0, name)
    return sorted(set(names), key=key)


def label_names(labels, locate, split: str) -> list[str]:
    """Each label as its class name (`label_name`); a label that names no class names its file and row."""
    out = []
    for row, label in enumerate(labels):
        try:
            out.append(label_name(label))
        except ValueError as e:
            raise InputError(f"{locate(row)} ({split} split): {e}") from None
    return out


def first_task(labels: list) -> list:
    """The labels hold-outs stratify on: a multi-task row's first task (its tuple's first class)."""
    return [y[0] for y in labels] if labels and isinstance(labels[0], tuple) else labels


def encode_labels(names, classes, declared: bool, locate, split: str) -> list[int]:
    """Class indices of the label names; a label outside the classes names its file and row."""
    index = {name: i for i, name in enumerate(classes)}
    out = []
    for row, name in enumerate(names):
        if name not in index:
            if declared:
                raise InputError(f"{locate(row)} ({split} split): label {name!r} is not one of data.classes "
                                 f"{classes}; fix the row or add the class to data.classes")
            raise InputError(f"{locate(row)} ({split} split): label {name!r} is not one of the classes found in "
                             f"train {classes}; fix the row, or give train samples of it (or list every class "
                             "in data.classes)")
        out.append(index[name])
    return out

