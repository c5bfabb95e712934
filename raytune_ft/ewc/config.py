"""EWC's spec: `data.fisher_source` (which samples the Fisher estimate uses, `FisherSource`) and whether a
job wants the Fisher at all (`wanted`: some trial can have ewc > 0)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FISHER_FILE = "fisher.safetensors"


class FisherSource(BaseModel):
    """Where the samples of the Fisher estimate come from: exactly one of `split` and `path`."""

    model_config = ConfigDict(extra="forbid")

    split: Optional[Literal["train", "validation", "test"]] = Field(
        None, description="a split of this job's prepared data")
    path: Union[Path, str, None] = Field(
        None, description="a file or folder of the source task, in the format and with the columns of the "
        "job's data source (as data.train is); its labels are its own classes, not the job's")

    @field_validator("path", mode="before")
    @classmethod
    def _location(cls, value):
        from raytune_ft.data import location  # here, not above: data/config.py imports this module

        return value if value is None else location.parse(value)

    @model_validator(mode="after")
    def _one(self):
        if (self.split is None) == (self.path is None):
            raise ValueError("give exactly one of split (e.g. {split: train}) and path (e.g. {path: source/train.csv})")
        return self

    def describe(self) -> str:
        return f"{self.split} split" if self.split else str(self.path)


def wanted(job) -> bool:
    """Whether some trial of `job` can have ewc > 0 (only then is the Fisher estimated)."""
    from raytune_ft.searchable import can_be_nonzero
    from raytune_ft.strategies import STRATEGIES

    for s in job.strategies:
        value = s.hparams.ewc if s.hparams.ewc is not None else job.search.hparams.ewc
        if STRATEGIES.get(s.name).trains_backbone and can_be_nonzero(value):  # ewc >= 0: non-zero is > 0
            return True
    return False
