"""The job spec's rules across its sections (model and data, strategies and search, ...): each broken
one as (field path, message), all reported at once (spec/job.py, JobSpec._fit_together)."""
from __future__ import annotations

from typing import Iterator

from raytune_ft.data import DATA_SOURCES
from raytune_ft.metric import metric_problem
from raytune_ft.searchable import Sampler, can_be_nonzero
from raytune_ft.spec.scale_rules import scale_problems
from raytune_ft.strategies import STRATEGIES


def cross_field_problems(job, on_cluster: bool = False) -> Iterator[tuple[str, str]]:
    """(field path, message) of every rule across the spec's sections that `job` breaks. on_cluster (`submit`):
    a model not found here may be on the cluster, so that alone is not a problem."""
    # What the model's own files say (architecture, tokenizer, cached weights). With a problem there, what
    # depends on the model's family (text or vision: a transformers model's config.json says) is not checked.
    model_problems = [(f"model.{field}", msg) for field, msg in job.model.problems(here=not on_cluster)]
    yield from model_problems
    model_family = None if model_problems else job.model.family()
    data_family = DATA_SOURCES.get(job.data.source)().family_of(job.data)
    if None not in (data_family, model_family) and model_family != data_family:
        yield "data.source", (f"{job.data.source!r} is {data_family} data but model.source "
                              f"{job.model.source!r} is a {model_family} model: pick a matching pair")
    names = [s.name for s in job.strategies]
    for i, s in enumerate(job.strategies):
        for knob, msg in STRATEGIES.get(s.name)().spec_problems(s, job):
            yield f"strategies[{i}].{knob}", msg
        if names.index(s.name) != i:
            yield f"strategies[{i}]", (f"{s.name!r} is listed more than once: merge the entries "
                                       "(use samplers for the knobs that differ)")
        if model_family is not None and model_family not in STRATEGIES.get(s.name).families:
            yield f"strategies[{i}]", (f"{s.name!r} applies to {' / '.join(STRATEGIES.get(s.name).families)} "
                                       f"models only, not to this {model_family} model: remove it")
        for knob, what in (("l2sp", "L2-SP"), ("ewc", "EWC")):  # penalties that hold backbone weights
            value = getattr(s.hparams, knob)
            value = value if value is not None else getattr(job.search.hparams, knob)
            if value != 0.0 and not STRATEGIES.get(s.name).trains_backbone:
                yield f"strategies[{i}].hparams.{knob}", (
                    f"{s.name} trains no backbone weights, so {what} has nothing to hold back: set it to 0 here")
    for where, value in job.searchables():
        if where.endswith("hparams.drop_path_rate") and can_be_nonzero(value) and model_family is not None \
                and not job.model.supports_drop_path():
            yield where, (f"stochastic depth is set when a timm model, or a transformers image model whose config "
                          f"has drop_path_rate (DINOv2, Swin, ConvNeXt ...), is built; model {job.model.name} "
                          f"({job.model.source}) has none: remove it")
    if job.search.algorithm == "grid":
        for where, value in job.searchables():
            if isinstance(value, Sampler) and value.kind not in ("grid", "choice"):
                yield where, (f"a {value.kind} range cannot be enumerated by grid search: use "
                              "{grid: [...]} / {choice: [...]}, or search.algorithm: random")
    yield from budget_problems(job)
    confirm = job.search.confirm
    if confirm and job.search.algorithm != "grid" and confirm.top_k > job.search.num_samples:
        yield "search.confirm.top_k", (f"{confirm.top_k} is more than the {job.search.num_samples} trials "
                                       "each strategy gets (search.num_samples): lower it")
    if job.training.augment.active() and model_family not in ("vision", None):
        yield "training.augment", "applies to images only: remove it for a text job"
    if model_family not in ("text", None):
        for where, value in job.searchables():
            if where.endswith("hparams.augment_text") and can_be_nonzero(value):
                yield where, ("EDA augments the tokens of texts, and this is a vision job: set it to 0 (or "
                              "remove it), and use training.augment for images")
    tasks = DATA_SOURCES.get(job.data.source)().task_names(job.data)  # [] one task; None: cannot tell
    if getattr(job.model, "head", "linear") == "prototype" and (tasks or job.data.label_columns):
        yield "model.head", ("the prototype head starts from one task's class means, and this job has several "
                             "(data.label_columns): use head: linear for multi-task jobs")
    problem = metric_problem(job.search.metric, tasks) if tasks is not None else None
    if problem:
        yield "search.metric", problem
    if job.training.task_weights is not None and tasks is not None:
        if not tasks:
            yield "training.task_weights", ("weights the tasks of a multi-task job, and this job has one: "
                                            "list the tasks in data.label_columns, or remove it")
        else:
            unknown = [t for t in job.training.task_weights if t not in tasks]
            if unknown:
                yield "training.task_weights", (f"{', '.join(map(repr, unknown))} is not one of the job's "
                                                f"tasks {tasks} (data.label_columns)")
            elif not any(job.training.task_weights.get(t, 1.0) > 0 for t in tasks):
                yield "training.task_weights", "every task weighs 0: nothing would train; give one a weight > 0"
    yield from scale_problems(job, model_family)  # FSDP, gradient checkpointing, strategies needing a CUDA GPU
    if job.training.mixed_precision == "fp16" and job.resources.gpus_per_worker == 0:
        yield "training.mixed_precision", "fp16 needs a GPU: set resources.gpus_per_worker, or use bf16 / no on CPU"


def budget_problems(job) -> Iterator[tuple[str, str]]:
    """search.budget sets num_samples (raytune-ft plan), so not both; GPU-hours of a job that holds no GPU."""
    budget = job.search.budget
    if budget is None:
        return
    if "num_samples" in job.search.model_fields_set:
        yield "search.budget", ("num_samples and budget both given: the budget sets num_samples from the "
                                "forecast; remove one of them")
    if budget.gpu_hours is not None and job.resources.gpus_per_worker == 0:
        yield "search.budget.gpu_hours", ("this job holds no GPU (resources.gpus_per_worker 0): give cpu_hours "
                                          "or wall_hours, or set resources.gpus_per_worker")
