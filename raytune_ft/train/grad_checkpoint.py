"""Gradient (activation) checkpointing (hparams.gradient_checkpointing): each block keeps only its input from
the forward pass and runs its forward again in the backward pass, so a trial holds one block's activations
at a time instead of every block's. The loss, the gradients and the weights come out the same (dropout and
stochastic depth draw the same masks again: the RNG state is kept); it costs the blocks' forward once more.

    enable_gradient_checkpointing(model)   # after the strategy is applied, before FSDP shards the model

- a transformers model (text or image, under a peft adapter or not): its own switch, non-reentrant
  (`activation_checkpointing_enable`, or `gradient_checkpointing_enable` where it has only that name);
- any other (torchvision, timm, packaged): each block models/blocks.py finds runs under
  `torch.utils.checkpoint.checkpoint(use_reentrant=False)`.

Non-reentrant checkpointing gives the weights inside a block their gradients even when the block's input
needs none (a frozen embedding under LoRA), so peft's `enable_input_require_grads` hook, which the
reentrant kind needs, is not used (peft's prepare_model_for_kbit_training says the same). BatchNorm layers
inside a block update their running statistics once per step, not again when the block is recomputed.
"""
from __future__ import annotations

import contextlib
from typing import Optional


def transformers_model(model):
    """The transformers model under the backbone (through a peft wrapper), or None."""
    backbone = model.backbone
    base = backbone.get_base_model() if callable(getattr(backbone, "get_base_model", None)) else backbone
    return base if hasattr(base, "supports_gradient_checkpointing") else None


def checkpointing_problem(model) -> Optional[str]:
    """Why gradient checkpointing cannot be turned on for this model (a built model or its skeleton), or None."""
    from raytune_ft.models.blocks import find_blocks

    hf = transformers_model(model)
    if hf is not None:
        return None if hf.supports_gradient_checkpointing else (
            f"{type(hf).__name__} does not support gradient checkpointing (transformers says so): set it to false")
    try:
        find_blocks(model, getattr(model, "block_paths", None))
    except ValueError as e:
        return f"it checkpoints the model block by block, and {e}: set model.block_paths, or set it to false"
    return None


def enable_gradient_checkpointing(model) -> None:
    """Turn it on for a Classifier (see the module's docstring)."""
    hf = transformers_model(model)
    if hf is not None:
        kwargs = {"use_reentrant": False}
        if hasattr(hf, "activation_checkpointing_enable"):  # its newer name; the older one warns where both exist
            hf.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        return
    from raytune_ft.models.blocks import find_blocks

    for group in find_blocks(model, getattr(model, "block_paths", None)).blocks:
        for module in group_modules(model, group):
            checkpoint_forward(module)


def group_modules(model, paths: list[str]) -> list:
    """The modules of a block group (a block, and what joined it: a final norm) that compute something: not
    containers (ModuleList, ModuleDict) and not parameters held directly (ViT's class token)."""
    from torch import nn

    names = dict(model.named_modules())
    return [names[p] for p in paths if p in names and type(names[p]).forward is not nn.Module.forward]


def checkpoint_forward(module) -> None:
    """`module` runs under non-reentrant checkpointing while it trains with gradients on (its parameter names,
    and so checkpoints and block paths, stay as they are)."""
    import functools

    import torch
    from torch.utils.checkpoint import checkpoint

    forward = module.forward

    def checkpointed(*args, **kwargs):
        if not (module.training and torch.is_grad_enabled()):
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False,
                          context_fn=functools.partial(_contexts, module), **kwargs)

    module.forward = checkpointed


def _contexts(module):
    """The forward pass as it is; the recomputation without BatchNorm updates."""
    return contextlib.nullcontext(), _running_stats_kept(module)


@contextlib.contextmanager
def _running_stats_kept(module):
    """BatchNorm layers of `module` recompute with their batch statistics but leave their running ones (and
    their batch count) as the forward pass left them: momentum 0 for the recomputation."""
    from torch import nn

    kinds = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
    norms = [m for m in module.modules() if isinstance(m, kinds) and m.track_running_stats]
    saved = [(m, m.momentum, m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, count in saved:
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)
