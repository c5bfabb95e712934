"""The job spec: one YAML file says what to compare, on which model and data, how to search.

    raytune-ft validate jobs/quickstart.yaml   # lists every problem with its field path; exit 2

The model, data and strategy entries are discriminated unions over the registries (`source` for
models and data, `name` for strategies), so a new registry entry is valid in a spec at once.
"""
from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from raytune_ft.cluster.storage import is_uri
from raytune_ft.data import DATA_SOURCES
from raytune_ft.data.location import path_exists
from raytune_ft.hparams import HParams
from raytune_ft.models import SOURCES
from raytune_ft.spec.resources import ResourcesSpec
from raytune_ft.spec.rules import cross_field_problems
from raytune_ft.spec.search import SearchSpec, Strict
from raytune_ft.strategies import STRATEGIES


def _union(registry, tag: str):
    configs = tuple(entry.Config for _, entry in registry.items())
    return Annotated[Union[configs], Field(discriminator=tag)]


ModelSpec = _union(SOURCES, "source")
DataSpec = _union(DATA_SOURCES, "source")
StrategySpec = _union(STRATEGIES, "name")

MAX_NAME = 100  # the name starts the run folder's name (<name>-<time>); file systems allow 255 bytes


class AugmentSpec(Strict):
    """Image augmentation on the training split (vision only), applied per sample on the fly."""

    random_resized_crop: bool = Field(False, description="crop 60-100% of the image and resize it back")
    hflip: bool = Field(False, description="random horizontal flip (not for digits or text in images)")
    color_jitter: float = Field(0.0, ge=0, le=1, description="brightness / contrast / saturation jitter strength")

    def active(self) -> bool:
        return self.random_resized_crop or self.hflip or self.color_jitter > 0


class TrainingSpec(Strict):
    epochs: int = Field(3, ge=1, le=1000, description="epochs per trial (the scheduler's max_t)")
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="sgd uses momentum (below), nesterov off")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    schedule: Literal["cosine", "linear", "step", "one_cycle", "constant"] = Field(
        "cosine", description="after the warmup: cosine or linear decay to 0, step decay, or constant; "
        "one_cycle: cosine up to the peak over warmup_ratio (default 0.3 if 0), cosine down to lr/1e4")
    step_every_epochs: float = Field(1.0, gt=0, description="step schedule: decay every this many epochs")
    step_gamma: float = Field(0.5, gt=0, le=1, description="step schedule: multiply the learning rate by this")
    class_weighted_loss: bool = Field(False, description="weight the loss by inverse class frequency in train")
    augment: AugmentSpec = Field(default_factory=AugmentSpec, description="image augmentation of the training split")
    augment_text_ops: list[Literal["delete", "swap", "insert"]] = Field(
        default_factory=lambda: ["delete", "swap", "insert"], min_length=1,
        description="text jobs with hparams.augment_text > 0: the EDA operations, one drawn per sample and epoch")
    patience: Optional[int] = Field(
        None, ge=1, description="end a trial after this many epochs without a better validation score")
    mixed_precision: Literal["no", "fp16", "bf16"] = Field(
        "no", description="Accelerate mixed precision; fp16 needs a GPU (a gradient scaler skips overflowed steps)")
    tf32: bool = Field(True, description="on a GPU, fp32 matrix products and convolutions in TF32 (Ampere and "
                       "later; much faster, a 10-bit mantissa); false: full fp32")
    deterministic: bool = Field(False, description="deterministic algorithms only (slower; an op without one "
                                "raises, naming itself) and cuDNN's autotuning off: the same seed, the same numbers")
    grad_accum_steps: int = Field(1, ge=1, description="micro-batches per optimizer step (Accelerate)")
    eval_batch_size: int = Field(256, ge=1, description="samples per batch when validating and testing")
    keep_checkpoint: bool = Field(True, description="save each trial's best weights (trainable ones) for reload")
    task_weights: Optional[dict[str, float]] = Field(
        None, description="multi-task jobs (data.label_columns): each task's weight in the loss, "
        "sum_t w_t * CE_t; a task left out weighs 1")

    @field_validator("task_weights")
    @classmethod
    def _task_weights(cls, weights):
        for task, w in (weights or {}).items():
            if not w >= 0 or w == float("inf"):
                raise ValueError(f"task {task!r}: weight {w} must be a finite number >= 0")
        return weights

    @field_validator("augment_text_ops")
    @classmethod
    def _once_each(cls, ops):
        if len(set(ops)) != len(ops):
            raise ValueError(f"{ops}: list each operation once (one is drawn per sample, each as likely)")
        return ops


class TrackingSpec(Strict):
    mlflow: bool = Field(False, description="log every trial to MLflow (Tune's MLflowLoggerCallback)")
    mlflow_uri: Optional[str] = Field(None, description="tracking URI; default: a file store in <run>/mlruns")
    mlflow_experiment: Optional[str] = Field(None, description="default: the job's name")
    tensorboard: bool = Field(False, description="TensorBoard event files in each trial's Tune folder")

    @model_validator(mode="after")
    def _installed(self):
        import importlib.util

        for switch, module in (("mlflow", "mlflow"), ("tensorboard", "tensorboardX")):
            if getattr(self, switch) and importlib.util.find_spec(module) is None:
                raise ValueError(f"{switch}: true needs the {module} package: pip install 'raytune_ft[tracking]'")
        return self


class JobSpec(Strict):
    name: str = Field(description=f"letters, digits, _ . - (used in paths); at most {MAX_NAME} characters")
    model: ModelSpec = Field(description="the pretrained model; `source` picks the kind (a model source)")
    data: DataSpec = Field(description="the data and its splits; `source` picks the kind (a data source)")
    strategies: list[StrategySpec] = Field(
        min_length=1, description="the strategies to compare, each with its own knobs; `name` picks the strategy")
    training: TrainingSpec = Field(default_factory=TrainingSpec, description="how every trial trains")
    search: SearchSpec = Field(default_factory=SearchSpec, description="the search over strategies and "
                               "hyperparameters, its scheduler and the confirm stage")
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec, description="what each trial asks Ray for")
    tracking: TrackingSpec = Field(default_factory=TrackingSpec, description="optional logging to MLflow or "
                                   "TensorBoard (pip install 'raytune_ft[tracking]')")
    output_dir: Path = Field(Path("runs"), description="run folders are created under it")

    @field_validator("name")
    @classmethod
    def _name(cls, name):
        if len(name) > MAX_NAME:
            raise ValueError(f"{len(name):,} characters; at most {MAX_NAME} (it names the run folder, "
                             f"<name>-<time>): shorten it, e.g. {name[:20]!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"{name!r} has characters other than letters, digits, _ . -: "
                             f"e.g. {re.sub(r'[^A-Za-z0-9_.-]+', '-', name).strip('-') or 'my-job'}")
        return name

    @model_validator(mode="after")
    def _fit_together(self, info: ValidationInfo):
        """Rules across fields; every broken one is reported, each as 'path: message' on its own line."""
        problems = list(cross_field_problems(self, on_cluster=bool((info.context or {}).get("on_cluster"))))
        if problems:
            raise ValueError("\n".join(f"{loc}: {msg}" for loc, msg in problems))
        return self

    def searchables(self):
        """(field path, value) of every searchable knob and hyperparameter."""
        for name in HParams.model_fields:
            yield f"search.hparams.{name}", getattr(self.search.hparams, name)
        for i, s in enumerate(self.strategies):
            for k, v in s.knobs().items():
                yield f"strategies[{i}].{k}", v
            for k in HParams.model_fields:
                if getattr(s.hparams, k) is not None:
                    yield f"strategies[{i}].hparams.{k}", getattr(s.hparams, k)

    def resolved(self) -> dict:
        """The spec with every default filled in, samplers written back in their YAML form."""
        def plain(x):
            if isinstance(x, dict):
                return {k: plain(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return [plain(v) for v in x]
            if isinstance(x, Path):
                return str(x)
            return x
        return plain(self.model_dump(exclude_none=True))  # null = "not set": the default applies

    def file_fields(self) -> list[tuple[str, str]]:
        """(section, key) of every field that may name a local file or folder: the data split files,
        the model's weights, a text model's name-or-path (a Hugging Face name, or a local folder)."""
        fields = [("data", name) for name, field in type(self.data).model_fields.items()
                  if Path in (field.annotation, *typing.get_args(field.annotation))]
        fields.append(("model", self.model.weights_field))
        return fields

    def portable(self) -> dict:
        """resolved(), with relative paths to files made absolute (see file_fields). The job.yaml of
        a run holds this, so `resume RUN` means the same from any working directory."""
        out = self.resolved()

        def absolute(value):
            if is_uri(value):
                return value
            path = Path(value).expanduser()
            return str(path.resolve()) if not path.is_absolute() and path_exists(path) else value
        for section, key in self.file_fields():
            if isinstance(out[section].get(key), str):
                out[section][key] = absolute(out[section][key])
        return out
