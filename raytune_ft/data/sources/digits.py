"""scikit-learn's digits: 1,797 real 8x8 handwritten digits, split here (stratified, seeded); no files."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from raytune_ft.data.config import DataConfig
from raytune_ft.data.sources.base import DataSource, register_data_source


DIGITS_MIN_SHARE = 0.02  # of 1,797 digits: 36 images, 3-4 of each of the 10 classes

# The digits' label columns (data.label_columns), each a task derived from the digit d:
# digit: d itself (the single task of a job without label_columns); parity: even / odd; high: d >= 5 (high / low)
DIGITS_TASKS = {
    "digit": lambda d: str(d),
    "parity": lambda d: "odd" if d % 2 else "even",
    "high": lambda d: "high" if d >= 5 else "low",
}


class DigitsConfig(DataConfig):
    source: Literal["digits"] = "digits"
    validation_fraction: float = Field(0.15, gt=0, lt=1, description=f"share held out as the validation split "
                                       f"(at least {DIGITS_MIN_SHARE})")
    test_fraction: float = Field(0.15, ge=0, lt=1, description="share held out as the test split (0: none, "
                                 f"else at least {DIGITS_MIN_SHARE})")
    multi_task = True

    @field_validator("label_columns")
    @classmethod
    def _digit_tasks(cls, columns):
        unknown = [c for c in columns or [] if c not in DIGITS_TASKS]
        if unknown:
            raise ValueError(f"{', '.join(map(repr, unknown))}: the digits have the label columns "
                             f"{', '.join(DIGITS_TASKS)} (the digit; even / odd; >= 5)")
        return columns

    @model_validator(mode="after")
    def _shares(self):
        """Every split is stratified over the 10 digits, so each needs a few images of every digit."""
        train = 1 - self.validation_fraction - self.test_fraction
        if train < DIGITS_MIN_SHARE - 1e-9:
            raise ValueError(
                f"data.validation_fraction {self.validation_fraction} + data.test_fraction {self.test_fraction} "
                f"= {self.validation_fraction + self.test_fraction:g} leaves {max(train, 0):.0%} of the digits to "
                f"train on: keep their sum at most {1 - DIGITS_MIN_SHARE:g} (e.g. 0.15 and 0.15)")
        for name in ("validation_fraction", "test_fraction"):
            share = getattr(self, name)
            if 0 < share < DIGITS_MIN_SHARE - 1e-9:
                raise ValueError(f"data.{name} {share} holds out {round(share * 1797)} of the 1,797 digits, too few "
                                 f"for a stratified split of 10 classes: use at least {DIGITS_MIN_SHARE}"
                                 + (" (or 0: no test split)" if name == "test_fraction" else ""))
        return self


@register_data_source
class Digits(DataSource):
    """scikit-learn's 1,797 real 8x8 handwritten digits (ships with scikit-learn: no download)."""

    name = "digits"
    family = "vision"
    Config = DigitsConfig

    def index(self, config):
        import numpy as np
        from sklearn.model_selection import train_test_split

        labels = _digits()[1]
        idx = np.arange(len(labels))
        held = config.validation_fraction + config.test_fraction
        train_idx, rest = train_test_split(idx, test_size=held, stratify=labels, random_state=config.seed)
        splits = {"train": train_idx}
        if config.test_fraction > 0:
            rest_labels = [labels[i] for i in rest]
            val_idx, test_idx = train_test_split(
                rest, test_size=config.test_fraction / held, stratify=rest_labels, random_state=config.seed)
            splits.update(validation=val_idx, test=test_idx)
        else:
            splits["validation"] = rest
        tasks = [DIGITS_TASKS[c] for c in config.label_columns] if config.label_columns else None
        return {s: ([int(i) for i in ix], [tuple(t(labels[i]) for t in tasks) if tasks else labels[i] for i in ix])
                for s, ix in splits.items()}

    def decode(self, config, refs, chunk):
        images = _digits()[0]
        for start in range(0, len(refs), chunk):
            yield [images[i] for i in refs[start:start + chunk]]


def _digits():
    """(images H x W x 3 uint8, labels) of scikit-learn's digits: 0..16 grey levels scaled to 0..255."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    return np.repeat(images[..., None], 3, axis=-1), digits.target.tolist()

