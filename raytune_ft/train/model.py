"""The pretrained model with the strategy applied, the same for training and for reloading; and the
public reload API.

    from raytune_ft.train import load_trial_model
    model, config = load_trial_model(trials.parquet's checkpoint_path)   # a folder, or s3:// / gs://
"""
from __future__ import annotations

import json
from typing import Callable, Optional

from raytune_ft.models import SOURCES, build_model
from raytune_ft.strategies import get_strategy
from raytune_ft.train.checkpoint import TRIAL, WEIGHTS, open_checkpoint


def build_trial_model(model_spec: dict, strategy: dict, head_dropout: float, num_classes: int,
                      total_steps: Optional[int] = None, head_init: Optional[Callable] = None,
                      drop_path_rate: Optional[float] = None, batches: Optional[Callable] = None):
    """(model, strategy, its typed config): the model built from its spec entry, the strategy (name + knob
    values, checked by the strategy's own Config) applied. `total_steps`: see `Strategy.apply`.
    `head_init(model)`: called on the pretrained model before the strategy applies (peft wraps the
    backbone then): the worker sets a prototype head's class means there. `drop_path_rate`: hparams.drop_path_rate
    (stochastic depth, set as the model is built; None: the model's own). `batches()`: model inputs of some
    training samples, for a strategy that starts from the data (`Strategy.init_from_data`: LoRA's EVA)."""
    model_cfg = SOURCES.get(model_spec["source"]).Config.model_validate(model_spec)
    applied = get_strategy(strategy["name"])
    cfg = applied.config(**{k: v for k, v in strategy.items() if k not in ("name", "hparams")})
    model = build_model(model_cfg, num_classes, drop_path_rate=drop_path_rate, quantization=applied.quantization(cfg))
    model.block_paths = model_cfg.block_paths
    model.head_dropout.p = float(head_dropout)
    if head_init is not None:
        head_init(model)
    model = applied.apply(model, cfg, total_steps=total_steps)
    if batches is not None:
        applied.init_from_data(model, cfg, batches)
    return model, applied, cfg


def load_trial_model(location, run_dir=None):
    """(model in eval mode, TrialConfig) from a checkpoint: a checkpoint folder, a trial folder (its best,
    as a run without Ray keeps it), or the URI Ray stored it at. trials.parquet's checkpoint_path is relative
    to its run folder (or a bucket URI): pass that folder as `run_dir`."""
    from accelerate.utils import set_seed
    from safetensors.torch import load_file

    from raytune_ft.results.tables import checkpoint_location
    from raytune_ft.train.config import TrialConfig

    if run_dir is not None:
        location = checkpoint_location(run_dir, str(location))
    with open_checkpoint(location) as folder:
        config = TrialConfig.model_validate(json.loads((folder / TRIAL).read_text())["config"])
        state = load_file(str(folder / WEIGHTS))
    set_seed(config.seed)  # as in training: a randomly initialised frozen part comes out the same
    from raytune_ft.train.tasks import Tasks

    outputs = Tasks.from_classes(config.classes, config.tasks).outputs  # every task's classes, side by side
    model, _, _ = build_trial_model(config.model, config.strategy, config.hparams.head_dropout, outputs,
                                    drop_path_rate=config.hparams.drop_path_rate)
    extra = set(state) - set(model.state_dict())
    lacking = {n for n, p in model.named_parameters() if p.requires_grad} - set(state)
    if extra or lacking:
        raise ValueError(f"checkpoint {location} does not fit the rebuilt model: extra {sorted(extra)[:3]}, "
                         f"missing {sorted(lacking)[:3]}")
    model.load_state_dict(state, strict=False)
    return model.eval(), config
