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

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from raytune_ft.cluster.storage import is_uri
from raytune_ft.data import DATA_SOURCES
from raytune_ft.data.base import path_exists
from raytune_ft.hparams import HParams
from raytune_ft.metric import base_metric, metric_problem, mode_of
from raytune_ft.models import SOURCES
from raytune_ft.searchable import Sampler, can_be_nonzero
from raytune_ft.strategies import STRATEGIES


def _union(registry, tag: str):
    configs = tuple(entry.Config for _, entry in registry.items())
    return Annotated[Union[configs], Field(discriminator=tag)]


ModelSpec = _union(SOURCES, "source")
DataSpec = _union(DATA_SOURCES, "source")
StrategySpec = _union(STRATEGIES, "name")

MAX_NAME = 100  # the name starts the run folder's name (<name>-<time>); file systems allow 255 bytes
MAX_SAMPLES = 10_000
MAX_WORKERS = 512


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    augment: AugmentSpec = Field(default_factory=AugmentSpec)
    augment_text_ops: list[Literal["delete", "swap", "insert"]] = Field(
        default_factory=lambda: ["delete", "swap", "insert"], min_length=1,
        description="text jobs with hparams.augment_text > 0: the EDA operations, one drawn per sample and epoch")
    patience: Optional[int] = Field(
        None, ge=1, description="end a trial after this many epochs without a better validation score")
    mixed_precision: Literal["no", "fp16", "bf16"] = Field(
        "no", description="Accelerate mixed precision; fp16 needs a GPU")
    grad_accum_steps: int = Field(1, ge=1, description="micro-batches per optimizer step (Accelerate)")
    eval_batch_size: int = Field(256, ge=1)
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


class SchedulerSpec(Strict):
    name: Literal["asha", "none", "hyperband", "median"] = "asha"
    grace_period: int = Field(1, ge=1, description="epochs every trial runs before it can be stopped")
    reduction_factor: float = Field(2.0, gt=1, description="ASHA / HyperBand: keep 1/reduction_factor per rung")
    per_strategy: bool = Field(
        True, description="compare a trial only with trials of its own strategy (one scheduler each); "
        "false: one scheduler over all trials, so slow-starting strategies are cut early")


class ConfirmSpec(Strict):
    """Stage two: each strategy's best configurations trained again with fresh seeds, scored on test."""

    top_k: int = Field(1, ge=1, description="configurations per strategy (its best by validation) to confirm")
    seeds: int = Field(3, ge=2, le=100, description="fresh seeds per configuration, the same for every "
                       "strategy (paired); at least 2 for an interval, 5 or more for a tight one")


class SearchSpec(Strict):
    algorithm: Literal["random", "grid", "optuna"] = Field(
        "random", description="random: num_samples draws per strategy; grid: every grid/choice combination; "
        "optuna: one TPE study per strategy, each given num_samples trials")
    num_samples: int = Field(
        4, ge=1, le=MAX_SAMPLES, description="trials per strategy (random, optuna); repeats of the grid (grid). "
        f"At most {MAX_SAMPLES:,}: every trial is a Tune trial with its own folder, state and table row, all "
        "held by the one driver")
    metric: str = Field("val_accuracy", description="val_accuracy / val_f1 / val_loss (a multi-task job: the "
                        "mean over its tasks), or one task's, e.g. val_accuracy.topic")
    mode: Optional[Literal["max", "min"]] = Field(None, description="default: max for accuracy / F1, min for loss")
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    hparams: HParams = Field(default_factory=HParams, description="hyperparameters of every strategy")
    seed: int = 0
    confirm: Optional[ConfirmSpec] = Field(
        None, description="after the search, train each strategy's top_k configurations again with `seeds` "
        "fresh seeds to the full epochs and score them on the test split: means, intervals, pairwise tests")

    @field_validator("metric")
    @classmethod
    def _metric(cls, metric):
        problem = metric_problem(base_metric(metric), None)  # a task's name is checked against data.label_columns
        if problem:
            raise ValueError(problem)
        return metric

    @model_validator(mode="after")
    def _mode(self):
        if self.mode is None:
            self.mode = mode_of(self.metric)
        elif self.mode != mode_of(self.metric):
            raise ValueError(f"search.mode {self.mode!r} does not fit metric {self.metric} "
                             f"(use {mode_of(self.metric)!r}, or leave mode out)")
        return self


class ResourcesSpec(Strict):
    workers_per_trial: int = Field(
        1, ge=1, le=MAX_WORKERS, description="Ray Train workers (processes, data parallel) per trial. At most "
        f"{MAX_WORKERS}: each is a process with its own copy of the model, started and synchronised every step")
    cpus_per_worker: float = Field(1, gt=0)
    gpus_per_worker: float = Field(0, ge=0, description="fractions allowed, e.g. 0.5")
    max_concurrent_trials: Optional[int] = Field(
        None, ge=1, description="default: as many as the cluster's CPUs / GPUs can hold")
    max_worker_restarts: int = Field(
        2, ge=0, description="times a trial's Train workers are started again after one dies (they go on "
                             "from the trial's last epoch); errors that would repeat are not retried")

    @model_validator(mode="after")
    def _whole_gpus_for_several_workers(self):
        # Ray packs two workers asking for 0.5 GPU each onto one GPU, and NCCL then refuses the trial
        # ("Duplicate GPU detected"): every worker of a multi-worker trial needs a GPU of its own.
        if self.workers_per_trial > 1 and 0 < self.gpus_per_worker < 1:
            raise ValueError(
                f"workers_per_trial {self.workers_per_trial} with gpus_per_worker {self.gpus_per_worker}: the "
                "workers of one trial would share a GPU, which NCCL refuses (\"Duplicate GPU detected\"). Use "
                "gpus_per_worker: 1 (or more) with several workers, or workers_per_trial: 1 with a fraction "
                "(then several trials share a GPU)")
        return self


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
    model: ModelSpec
    data: DataSpec
    strategies: list[StrategySpec] = Field(min_length=1)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
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
        problems = list(self._cross_field_problems(on_cluster=bool((info.context or {}).get("on_cluster"))))
        if problems:
            raise ValueError("\n".join(f"{loc}: {msg}" for loc, msg in problems))
        return self

    def _cross_field_problems(self, on_cluster: bool = False):
        # What the model's own files say (architecture, tokenizer, cached weights); `submit` leaves a model it
        # cannot find here to the cluster. With a problem there, what depends on the model's family is not checked.
        model_problems = [(f"model.{field}", msg) for field, msg in self.model.problems(here=not on_cluster)]
        yield from model_problems
        model_family = None if model_problems else self.model.family()  # transformers: as its config.json says
        data_family = DATA_SOURCES.get(self.data.source)().family_of(self.data)
        if None not in (data_family, model_family) and model_family != data_family:
            yield "data.source", (f"{self.data.source!r} is {data_family} data but model.source "
                                  f"{self.model.source!r} is a {model_family} model: pick a matching pair")
        names = [s.name for s in self.strategies]
        for i, s in enumerate(self.strategies):
            for knob, msg in STRATEGIES.get(s.name)().spec_problems(s, self):
                yield f"strategies[{i}].{knob}", msg
            if names.index(s.name) != i:
                yield f"strategies[{i}]", (f"{s.name!r} is listed more than once: merge the entries "
                                           "(use samplers for the knobs that differ)")
            if model_family is not None and model_family not in STRATEGIES.get(s.name).families:
                yield f"strategies[{i}]", (f"{s.name!r} applies to {' / '.join(STRATEGIES.get(s.name).families)} "
                                           f"models only, not to this {model_family} model: remove it")
            for knob, what in (("l2sp", "L2-SP"), ("ewc", "EWC")):  # penalties that hold backbone weights
                value = getattr(s.hparams, knob)
                value = value if value is not None else getattr(self.search.hparams, knob)
                if value != 0.0 and not STRATEGIES.get(s.name).trains_backbone:
                    yield f"strategies[{i}].hparams.{knob}", (
                        f"{s.name} trains no backbone weights, so {what} has nothing to hold back: set it to 0 here")
        for where, value in self.searchables():
            if where.endswith("hparams.drop_path_rate") and can_be_nonzero(value) and model_family is not None \
                    and not self.model.supports_drop_path():
                yield where, (f"stochastic depth is set when a timm model, or a transformers image model whose "
                              f"config has drop_path_rate (DINOv2, Swin, ConvNeXt ...), is built; model "
                              f"{self.model.name} ({self.model.source}) has none: remove it")
        if self.search.algorithm == "grid":
            for where, value in self.searchables():
                if isinstance(value, Sampler) and value.kind not in ("grid", "choice"):
                    yield where, (f"a {value.kind} range cannot be enumerated by grid search: use "
                                  "{grid: [...]} / {choice: [...]}, or search.algorithm: random")
        confirm = self.search.confirm
        if confirm and self.search.algorithm != "grid" and confirm.top_k > self.search.num_samples:
            yield "search.confirm.top_k", (f"{confirm.top_k} is more than the {self.search.num_samples} trials "
                                           "each strategy gets (search.num_samples): lower it")
        if self.training.augment.active() and model_family not in ("vision", None):
            yield "training.augment", "applies to images only: remove it for a text job"
        if model_family not in ("text", None):
            for where, value in self.searchables():
                if where.endswith("hparams.augment_text") and can_be_nonzero(value):
                    yield where, ("EDA augments the tokens of texts, and this is a vision job: set it to 0 (or "
                                  "remove it), and use training.augment for images")
        tasks = DATA_SOURCES.get(self.data.source)().task_names(self.data)  # [] one task; None: cannot tell
        if getattr(self.model, "head", "linear") == "prototype" and (tasks or self.data.label_columns):
            yield "model.head", ("the prototype head starts from one task's class means, and this job has several "
                                 "(data.label_columns): use head: linear for multi-task jobs")
        problem = metric_problem(self.search.metric, tasks) if tasks is not None else None
        if problem:
            yield "search.metric", problem
        if self.training.task_weights is not None and tasks is not None:
            if not tasks:
                yield "training.task_weights", ("weights the tasks of a multi-task job, and this job has one: "
                                                "list the tasks in data.label_columns, or remove it")
            else:
                unknown = [t for t in self.training.task_weights if t not in tasks]
                if unknown:
                    yield "training.task_weights", (f"{', '.join(map(repr, unknown))} is not one of the job's "
                                                    f"tasks {tasks} (data.label_columns)")
                elif not any(self.training.task_weights.get(t, 1.0) > 0 for t in tasks):
                    yield "training.task_weights", "every task weighs 0: nothing would train; give one a weight > 0"
        if self.training.mixed_precision == "fp16" and self.resources.gpus_per_worker == 0:
            yield "training.mixed_precision", "fp16 needs a GPU: set resources.gpus_per_worker, or use bf16 / no on CPU"

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
