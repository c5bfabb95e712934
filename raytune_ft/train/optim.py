"""The optimizer and the learning-rate schedule, in one place (nanoGPT's `configure_optimizers`).

Each optimizer group carries the strategy's group name, a `scale` (set every epoch by the
strategy: layer-wise decay, the head multiplier, 0 while a group is frozen) and its base lr; at
every step `lr = base_lr x scale x schedule(step)`.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from raytune_ft.hparams import HParams
    from raytune_ft.spec.job import TrainingSpec
    from raytune_ft.strategies.base import StrategyConfig

SCHEDULES = ("cosine", "linear", "step", "one_cycle", "constant")


def lr_schedule(kind: str, total_steps: int, warmup_ratio: float, steps_per_epoch: int = 1,
                step_every_epochs: float = 1.0, step_gamma: float = 0.5) -> Callable[[int], float]:
    """Multiplier of the peak learning rate after `step` optimizer steps."""
    if kind == "one_cycle":  # cosine up to the peak, cosine down to peak / 1e4 (Smith & Topin)
        up = max(1, int(round(total_steps * (warmup_ratio or 0.3))))

        def one_cycle(step: int) -> float:
            if step < up:
                return 1 / 25 + (1 - 1 / 25) * 0.5 * (1 - math.cos(math.pi * step / up))
            t = min(1.0, (step - up) / max(1, total_steps - up))
            return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * t))
        return one_cycle

    warmup = int(round(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        t = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        if kind == "linear":
            return 1.0 - t
        if kind == "step":
            return step_gamma ** math.floor((step - warmup) / max(1.0, steps_per_epoch * step_every_epochs))
        return 1.0
    return factor


# Adapter factors that peft keeps as bare parameters (AdaLoRA's A and B, LoHa, LoKr): weight matrices,
# decayed like LoRA's A and B (which are nn.Linear weights). AdaLoRA's singular values lora_E are not.
ADAPTER_FACTORS = ("lora_A", "lora_B", "hada_w", "lokr_w")


def decayed_parameters(model) -> set[str]:
    """Names of the parameters weight decay applies to, decided by what each one is, not by its shape.

    Decayed: the `weight` of Linear / Conv / Embedding layers (LoRA's A and B are Linear layers),
    attention input projections, and low-rank adapter factors. Not decayed: biases, every
    normalisation layer (LayerNorm, BatchNorm, GroupNorm, RMSNorm), scaling vectors (IA3's `ia3_l`,
    AdaLoRA's singular values `lora_E`), learned prompts and prefixes (peft's `prompt_encoder`),
    class tokens and position embeddings held as bare parameters.
    """
    from torch import nn

    layers = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)
    out = set()
    for prefix, module in model.named_modules():
        for local, _ in module.named_parameters(recurse=False):
            name = f"{prefix}.{local}" if prefix else local
            if "prompt_encoder" in name.split("."):
                continue
            if (isinstance(module, layers) and local == "weight") \
                    or (isinstance(module, nn.MultiheadAttention) and local.endswith("proj_weight")) \
                    or (isinstance(module, nn.ParameterDict) and prefix.rsplit(".", 1)[-1].startswith(ADAPTER_FACTORS)):
                out.add(name)
    return out


def build_optimizer(model, strategy, cfg: "StrategyConfig", hp: "HParams", training: "TrainingSpec"):
    """One optimizer group per (strategy group x decay / no decay): see `decayed_parameters`."""
    import torch

    params = dict(model.named_parameters())
    decayed = decayed_parameters(model)
    groups = []
    for group, names in strategy.groups(model, cfg).items():
        decay = [params[n] for n in names if n in decayed]
        no_decay = [params[n] for n in names if n not in decayed]
        for plist, wd in ((decay, hp.weight_decay), (no_decay, 0.0)):
            if plist:
                groups.append({"params": plist, "group": group, "base_lr": hp.lr, "scale": 1.0,
                               "weight_decay": wd, "lr": hp.lr})
    if training.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=hp.lr, momentum=training.momentum)
    return torch.optim.AdamW(groups, lr=hp.lr)


def set_scales(optimizer, strategy, cfg: "StrategyConfig", epoch: int, head_lr_mult: float) -> dict[str, float]:
    """Before an epoch: every group's scale from the strategy (x head_lr_mult for the head)."""
    scales = {}
    for g in optimizer.param_groups:
        g["scale"] = strategy.lr_scale(g["group"], cfg, epoch) * (head_lr_mult if g["group"] == "head" else 1.0)
        scales[g["group"]] = g["scale"]
    return scales


def set_lr(optimizer, factor: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] * g["scale"] * factor


def trainable_now(optimizer) -> int:
    """Parameters that can move this epoch: in a group with a non-zero scale."""
    return sum(p.numel() for g in optimizer.param_groups if g["scale"] > 0 for p in g["params"] if p.requires_grad)


def class_weights(counts: list[int]):
    """Inverse class frequency, normalised so a balanced set gets weight 1 everywhere."""
    import torch

    counts_t = torch.tensor(counts, dtype=torch.float)
    present = counts_t > 0
    w = torch.zeros_like(counts_t)
    w[present] = counts_t.sum() / (present.sum() * counts_t[present])
    return w


def head_lr(optimizer) -> float:
    """The new head's learning rate at the last step: it trains under every strategy from epoch 1
    (group 0 is the stem for block-wise strategies, 0 while gradual unfreezing holds it)."""
    return next(g["lr"] for g in optimizer.param_groups if g["group"] == "head")
