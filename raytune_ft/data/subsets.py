"""Training-set sizes for data-size curves: nested, stratified, seeded subsets of the train split.

    data:
      train_sizes: [100, 0.5, {shots: 5}]     # a count, a fraction of train, k samples per class

The driver resolves each entry against the prepared train split's class counts (`resolve_sizes`), and
every trial of that size trains on `TrainSubset.indices(labels, seed)` of the same split, in its worker.

- Stratified: a count keeps each class's share of train (to within one sample); shots take k of
  each class (all of a class that has fewer).
- Nested: every class's samples are put in one seeded order, and a subset takes a prefix of each:
  the 100 samples are among the 200, so a curve over sizes measures the data, not a new draw.
- Seeded by `data.seed`: every trial, strategy and seed of one size sees the same samples.
"""
from __future__ import annotations

from typing import Optional, Union

from pydantic import BaseModel, ConfigDict, Field


class Shots(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shots: int = Field(ge=1, description="training samples per class (few-shot)")


SizeEntry = Union[int, float, Shots]


class TrainSubset(BaseModel):
    """One resolved size: `count` samples (stratified), or `shots` per class; `size` is how many that is."""

    model_config = ConfigDict(extra="forbid")
    count: Optional[int] = None
    shots: Optional[int] = None
    size: int
    seed: int = Field(0, description="data.seed: every trial of this size gets the same samples")

    def label(self) -> str:
        return f"{self.shots}-shot" if self.shots else f"{self.size}"

    def indices(self, labels) -> list[int]:
        """Row indices into the train split, sorted; the same for every call with the same labels and seed."""
        import numpy as np

        labels = np.asarray(labels)
        order = _class_orders(labels, self.seed)
        if self.shots:
            return sorted(int(i) for rows in order.values() for i in rows[: self.shots])
        return sorted(int(i) for i in _stratified_order(order)[: self.count])


def _class_orders(labels, seed: int) -> dict:
    """Each class's row indices in one seeded order (the prefix of each is a subset)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return {int(c): rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)}


def _stratified_order(order: dict) -> list[int]:
    """All rows in one order whose every prefix is stratified: the first sample of each class, then
    each class's j-th sample at position (j + 0.5) / (its count) of the way. A prefix of n holds each
    class's share of n to within about one sample, and a longer prefix holds every shorter one."""
    keyed = []
    for c, rows in order.items():
        keyed += [((-1.0 if j == 0 else (j + 0.5) / len(rows)), c, int(i)) for j, i in enumerate(rows)]
    return [i for _, _, i in sorted(keyed)]


def check_shots(shots: int, class_counts: list[int], classes: list[str]) -> None:
    """data.shots: ValueError naming the classes of train with fewer than `shots` samples."""
    short = [(name, k) for name, k in zip(classes, class_counts) if k < shots]
    if short:
        listed = ", ".join(f"{name!r} has {k}" for name, k in short[:5]) + (", ..." if len(short) > 5 else "")
        raise ValueError(f"data.shots: {shots} samples per class, but in the train split class {listed}: lower "
                         f"data.shots to {min(k for _, k in short)}, or give those classes more training samples")


def resolve_sizes(entries: list[SizeEntry], class_counts: list[int], seed: int = 0) -> list[TrainSubset]:
    """The spec's sizes as subsets of a train split with these class counts, smallest first.

    ValueError (naming the entry and what to do) for a size larger than the split or two entries
    that come to the same subset.
    """
    total = sum(class_counts)
    out = []
    for i, entry in enumerate(entries):
        where = f"data.train_sizes[{i}]"
        if isinstance(entry, Shots):
            size = sum(min(entry.shots, k) for k in class_counts)
            out.append(TrainSubset(shots=entry.shots, size=size, seed=seed))
            continue
        count = round(entry * total) if isinstance(entry, float) else entry
        if count > total:
            raise ValueError(f"{where}: {entry} is more than the {total} training samples; give at most {total}")
        if count < len([k for k in class_counts if k]):
            raise ValueError(f"{where}: {entry} comes to {count} sample(s), fewer than the "
                             f"{len(class_counts)} classes; give at least one sample per class")
        out.append(TrainSubset(count=count, size=count, seed=seed))
    seen = {}
    for i, s in enumerate(out):
        key = (s.shots, s.count if not s.shots else None)
        if key in seen:
            raise ValueError(f"data.train_sizes[{i}]: the same subset as entry {seen[key]}; give each size once")
        seen[key] = i
    return sorted(out, key=lambda s: (s.size, s.shots or 0))
