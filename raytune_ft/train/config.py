"""What a trial's workers get: a typed `TrialConfig`, everything a trial needs and nothing that needs the
driver. It crosses the Ray boundary as is (pydantic models pickle), and is saved with every checkpoint
(trial.json) so that a checkpoint rebuilds its model on its own."""
from __future__ import annotations

import json
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from raytune_ft.data.subsets import TrainSubset
from raytune_ft.hparams import HParams
from raytune_ft.spec.job import ResourcesSpec, TrainingSpec


class TrialConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: dict = Field(description="the job's model entry, resolved; its source's Config checks it when built")
    training: TrainingSpec
    resources: ResourcesSpec
    metric: str = Field(description="search.metric: val_accuracy / val_f1 / val_loss, or a task's (val_accuracy.topic)")
    mode: Literal["max", "min"]
    data_dir: str
    trial_dir: str = Field(description="this trial's local folder (a failed-trial mark; checkpoints without Ray)")
    strategy: dict = Field(description="the strategy's name and this trial's value of each of its knobs")
    hparams: HParams
    seed: int
    stage: Literal["search", "select", "confirm"] = Field(
        "search", description="select / confirm: full epochs, no early stopping; confirm also scores the test split "
        "at each better epoch (select chooses a configuration on validation only)")
    train_subset: Optional[TrainSubset] = Field(None, description="train on this subset of the train split")
    data_seed: Optional[int] = Field(
        None, description="search.confirm.vary_data: train and validation split again (stratified, the same sizes) "
        "and the train subset drawn with this seed; None: the prepared split and data.seed's subset")
    cap_validation: bool = Field(
        False, description="data.cap_validation: validate on a stratified subset of the validation split no larger "
        "than the training set")
    classes: Optional[list[str]] = Field(None, description="the class names, once known (saved checkpoints)")
    tasks: Optional[dict[str, list[str]]] = Field(
        None, description="multi-task: each task's class names, in head order, once known (saved checkpoints)")

    def with_training(self, **changes) -> "TrialConfig":
        """A copy with some training settings changed, checked as the spec checks them."""
        return self.model_copy(update={"training": TrainingSpec.model_validate(
            {**self.training.model_dump(), **changes})})

    def key(self) -> str:
        """What must match for a saved state to be this trial's: its strategy, hyperparameters, seed, model."""
        subset = self.train_subset.model_dump() if self.train_subset else None
        return json.dumps([self.strategy, self.hparams.model_dump(mode="json"), self.seed, self.model, subset,
                           self.data_seed, self.cap_validation], sort_keys=True, default=str)


def trial_config(job, data_dir, trial_dir, strategy: dict, hparams: dict, seed: Optional[int] = None, *,
                 stage: str = "search", train_subset: Optional[dict] = None) -> TrialConfig:
    """A trial's config from the job (a JobSpec, or its resolved dict as Tune passes it to trial drivers).
    A select or confirm trial trains every epoch: no patience (nor scheduler: the sweep gives it none); with
    search.confirm.vary_data its seed also draws its data (data_seed)."""
    resolved = job.resolved() if hasattr(job, "resolved") else job
    again = stage in ("select", "confirm")
    training = {**resolved["training"], "patience": None} if again else resolved["training"]
    seed = resolved["search"]["seed"] if seed is None else seed
    vary = again and (resolved["search"].get("confirm") or {}).get("vary_data", False)
    return TrialConfig.model_validate({
        "model": resolved["model"], "training": training, "resources": resolved["resources"],
        "metric": resolved["search"]["metric"], "mode": resolved["search"]["mode"],
        "data_dir": str(data_dir), "trial_dir": str(trial_dir), "strategy": strategy, "hparams": hparams,
        "seed": seed, "stage": stage, "train_subset": train_subset, "data_seed": seed if vary else None,
        "cap_validation": resolved["data"].get("cap_validation", False),
    })
