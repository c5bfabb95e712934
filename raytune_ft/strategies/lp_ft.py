from typing import Literal

from pydantic import Field

from raytune_ft.searchable import Sampler, Searchable
from raytune_ft.strategies.base import Strategy, StrategyConfig, register_strategy


class LpFtConfig(StrategyConfig):
    """LP-FT (Kumar et al. 2022): a linear probe first (the head alone, the backbone frozen in eval mode),
    then full fine-tuning of everything from that head, at a smaller learning rate."""

    name: Literal["lp_ft"] = "lp_ft"
    probe_epochs: Searchable(int, ge=1) = Field(
        1, description="epochs of the linear probe before everything trains (fewer than training.epochs)")
    ft_lr_mult: Searchable(float, gt=0, le=1) = Field(
        0.1, description="every group's lr x this in the fine-tuning stage (the head keeps head_lr_mult on top)")


@register_strategy
class LpFt(Strategy):
    """Every parameter is in the optimizer (and in DDP's sync) from the start, as in gradual_unfreeze:
    during the probe the backbone's group has scale 0, so it does not move, and it runs in eval mode
    (the probe sees exactly the pretrained features: BatchNorm statistics and dropout included). From
    epoch probe_epochs + 1 every group trains at base lr x ft_lr_mult.

    The learning-rate schedule is the trial's one schedule over all its steps, not restarted at the
    switch: warmup (warmup_ratio) falls in the probe, and fine-tuning goes on from where the schedule
    is (cosine: a little decayed already), scaled by ft_lr_mult. Fine-tuning gets no second warmup:
    the backbone's gradients were computed through the probe (at lr 0), so Adam's moment estimates for
    it are already averaged over the probe's steps when it starts to move."""

    name = "lp_ft"
    Config = LpFtConfig

    def apply(self, model, cfg, *, total_steps=None):
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    def probing(self, cfg, epoch: int) -> bool:
        return epoch <= cfg.probe_epochs

    def lr_scale(self, group, cfg, epoch):
        if self.probing(cfg, epoch):
            return 1.0 if group == "head" else 0.0
        return cfg.ft_lr_mult

    def eval_modules(self, model, cfg, epoch):
        return [model.backbone] if self.probing(cfg, epoch) else []

    def spec_problems(self, cfg, job):
        probe = cfg.probe_epochs
        longest = max(probe.candidates()) if isinstance(probe, Sampler) else probe
        if longest >= job.training.epochs:
            yield "probe_epochs", (f"{probe} leaves no fine-tuning epoch in training.epochs "
                                   f"{job.training.epochs}: keep it below that (a probe alone is feature_extraction)")
