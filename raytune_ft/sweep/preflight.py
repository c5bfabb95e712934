"""Before Ray starts: what would fail every trial fails once, here, naming the data field, the model or
the strategy."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from raytune_ft.errors import InputError, SpecError
from raytune_ft.plan.memory import capacity, refuse_what_does_not_fit, sample_estimate
from raytune_ft.searchable import Sampler, can_be_nonzero
from raytune_ft.strategies import STRATEGIES
from raytune_ft.sweep.space import strategy_spaces


def check_data(job, source: str) -> None:
    """Every data file or folder the spec names is there, where the job runs: a path (on a node of the
    cluster: its disk or shared file system) or an object in a bucket. A SpecError (exit 2) names each
    field and location that is not, before anything is prepared. Parsing the spec looked at paths
    already, except under `submit`, which leaves those it does not have to this check on the cluster."""
    problems = [(f"data.{field}", problem) for field, problem in job.data.location_problems()]
    if problems:
        raise SpecError(source, problems)


def preflight(job, data_dir: Path, workers_at_once: Optional[int] = None) -> None:
    """Before Ray starts, what would fail every trial fails here, naming the model or the strategy:
    weights that cannot be read, texts longer than the model's positions (virtual tokens included),
    a target module that does not exist, a method or block structure that does not fit the model.
    The model is built, then each strategy applied to it (knobs at their first value) and run
    forward on 2 samples of the prepared train split.

    workers_at_once (trials on this machine): each strategy's peak memory per worker is estimated too
    (plan/memory.py: parameters, gradients and optimizer state counted, activations saved by a training
    forward pass on the 2 samples, scaled to the largest searched batch size), and a strategy that cannot fit
    the memory a worker has here is refused, naming the estimate and what to change."""
    import torch

    from raytune_ft.data import load_meta, load_split
    from raytune_ft.models import SOURCES, build_model
    from raytune_ft.train.evaluate import model_inputs
    from raytune_ft.train.model import build_trial_model

    meta = load_meta(data_dir)
    from raytune_ft.train.tasks import Tasks

    num_classes = Tasks.from_meta(meta).outputs  # the head's outputs: every task's classes
    resolved = job.resolved()
    try:
        build_model(SOURCES.get(job.model.source).Config.model_validate(resolved["model"]), num_classes)
    except Exception as e:  # noqa: BLE001 - a missing or corrupt weights file, a broken model folder
        raise InputError(f"model {job.model.name}: cannot be built: {type(e).__name__}: {e}") from e
    problems = list(_position_problems(job))
    if problems:
        raise InputError("\n".join(problems))
    batch = {k: v[:2] for k, v in load_split(data_dir, "train").items()}
    estimates = {}
    for i, space in enumerate(strategy_spaces(job)):
        first = {k: (v.values[0] if isinstance(v, Sampler) else v) for k, v in space.items() if k != "hparams"}
        if STRATEGIES.get(first["name"]).needs_cuda:  # built on a worker's GPU only (qlora's 4-bit base)
            _cuda_strategy_problem(i, first["name"])
            continue
        hp = {k: (v.values[0] if isinstance(v, Sampler) else v) for k, v in space["hparams"].items()}
        try:
            model, strategy, cfg = build_trial_model(resolved["model"], first, hp.get("head_dropout", 0.0), num_classes)
            strategy.groups(model, cfg)
        except Exception as e:  # noqa: BLE001 - whatever a strategy's apply raises, said before any trial
            raise InputError(f"strategies[{i}] ({first['name']}) does not fit model {job.model.name}: "
                             f"{type(e).__name__}: {e}") from e
        try:
            model.eval()
            with torch.no_grad():
                model(**model_inputs(batch, meta, torch.device("cpu")))
        except Exception as e:  # noqa: BLE001 - a shape that does not fit, a token id beyond the vocabulary
            reason = " ".join(str(e).split())[:400]
            raise InputError(f"strategies[{i}] ({first['name']}) on model {job.model.name}: a forward pass on 2 "
                             f"samples of the prepared train split fails ({type(e).__name__}: {reason}); every "
                             "trial would fail the same way: make the data, model.max_length and the strategy's "
                             "knobs fit the model") from e
        # with gradient checkpointing a training step keeps far fewer activations than this forward saves: no
        # estimate (the plan's calibration measures it)
        if workers_at_once and not can_be_nonzero(space["hparams"].get("gradient_checkpointing")):
            largest = max(space["hparams"]["batch_size"].candidates()) if isinstance(
                space["hparams"]["batch_size"], Sampler) else space["hparams"]["batch_size"]
            try:
                inputs = model_inputs(batch, meta, torch.device("cpu"))
                estimates[first["name"]] = (sample_estimate(job, model, inputs, len(batch["labels"]), int(largest)),
                                            f"hparams.batch_size {largest}")
            except Exception:  # noqa: BLE001 - no estimate (a training-mode forward this check cannot run): the
                pass  # plan's calibration, or the trials, measure it
    if estimates:
        refuse_what_does_not_fit(job, estimates, capacity(job, workers_at_once))


def _position_problems(job):
    """Texts longer than the model has positions for: model.max_length, plus the virtual tokens of
    prompt / prefix tuning (knob num_virtual_tokens, at its largest), against the Hugging Face
    config's max_position_embeddings."""
    max_length = getattr(job.model, "max_length", None)
    if max_length is None:
        return
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(job.model.path(), trust_remote_code=job.model.trust_remote_code)
    except Exception:  # noqa: BLE001 - the model was built just before; the forward pass checks the rest
        return
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int):
        return
    where = f"model {job.model.name} has {limit} positions (max_position_embeddings in its config.json)"
    if max_length > limit:
        yield f"model.max_length: {max_length} tokens, but {where}: set model.max_length to {limit} or less"
        return
    for i, s in enumerate(job.strategies):
        virtual = getattr(s, "num_virtual_tokens", None)
        if virtual is None:
            continue
        most = max(virtual.candidates()) if isinstance(virtual, Sampler) else virtual
        if most + max_length > limit:
            yield (f"strategies[{i}].num_virtual_tokens: up to {most} virtual tokens + model.max_length {max_length} "
                   f"= {most + max_length} positions, but {where}: keep num_virtual_tokens at most "
                   f"{limit - max_length}, or lower model.max_length")


def _cuda_strategy_problem(i: int, name: str) -> None:
    """A strategy that trains on a CUDA GPU only (qlora) is not built here (this process may have no GPU):
    what it needs installed is checked instead."""
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise InputError(f"strategies[{i}] ({name}) loads the model in 4 bits with bitsandbytes, which is not "
                         "installed: pip install 'raytune_ft[qlora]' (on every node of a cluster)")
