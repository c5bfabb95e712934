from typing import Literal

from pydantic import Field, model_validator

from raytune_ft.searchable import Sampler, Searchable
from raytune_ft.strategies.base import register_strategy
from raytune_ft.strategies.peft_base import PeftStrategy, PeftStrategyConfig


class AdaLoraConfig(PeftStrategyConfig):
    """AdaLoRA: LoRA whose rank budget is reallocated during training, from init_r down to target_r
    per layer on average, towards the layers that matter (Linear layers only)."""

    name: Literal["adalora"] = "adalora"
    init_r: Searchable(int, ge=1) = Field(12, description="rank every layer starts with")
    target_r: Searchable(int, ge=1) = Field(8, description="average rank after the budget is pruned")
    alpha: Searchable(float, gt=0) = Field(16.0, description="scaling: the update is multiplied by alpha / r")
    orth_reg_weight: Searchable(float, ge=0) = Field(
        0.5, description="weight of the orthogonal regulariser on the adapters' singular vectors (peft's default)")

    @model_validator(mode="after")
    def _ranks(self):
        if not isinstance(self.init_r, Sampler) and not isinstance(self.target_r, Sampler) \
                and self.target_r > self.init_r:
            raise ValueError(f"target_r ({self.target_r}) must not exceed init_r ({self.init_r})")
        return self


@register_strategy
class AdaLora(PeftStrategy):
    name = "adalora"
    unsupported = {"fsdp": "its rank allocator and orthogonality penalty compute on whole adapter matrices and their "
                           "gradients at every step, and FSDP holds shards of them; use lora (or distributed: ddp)"}
    Config = AdaLoraConfig
    mapping = "TRANSFORMERS_MODELS_TO_ADALORA_TARGET_MODULES_MAPPING"
    adapts = ("Linear", "Conv1D")  # peft also wraps Conv2d now; the rank allocator is kept to Linear layers

    def peft_config(self, model, cfg, total_steps):
        import peft

        total = total_steps or 100  # the loop passes the trial's optimizer steps; a bare build (reload) has none
        return peft.AdaLoraConfig(
            init_r=cfg.init_r, target_r=min(cfg.target_r, cfg.init_r), lora_alpha=cfg.alpha,
            target_modules=self.targets(model, cfg.target_modules), total_step=total,
            orth_reg_weight=cfg.orth_reg_weight,
            tinit=int(total * 0.1), tfinal=int(total * 0.2), deltaT=max(1, total // 20))

    def after_step(self, model, step):
        model.backbone.base_model.update_and_allocate(step)

    def penalty(self, model):
        """peft's orthogonal regulariser, orth_reg_weight x mean over adapted layers of ||PP^T - I||_F
        (P = A rows, B columns). peft adds it in `AdaLoraModel.forward` only when the output carries
        `.loss`; ours is computed outside the model, so it is added here (same formula)."""
        import torch

        adalora = model.backbone.base_model
        name = adalora.trainable_adapter_name
        terms = []
        for n, p in adalora.model.named_parameters():
            if ("lora_A" in n or "lora_B" in n) and name in n and p.numel():
                cov = p @ p.T if "lora_A" in n else p.T @ p
                terms.append(torch.linalg.matrix_norm(cov - torch.eye(*cov.shape, device=cov.device, dtype=cov.dtype)))
        weight = adalora.peft_config[name].orth_reg_weight
        return weight * torch.stack(terms).mean() if terms and weight else None

    def state_dict(self, model):
        """The rank budget as allocated so far (`rank_pattern`) and the allocator's importance
        statistics: without them a restarted trial past `tfinal` cannot mask, and one before it
        would reallocate from scratch."""
        adalora = model.backbone.base_model
        allocator = adalora.rankallocator
        return {"rank_pattern": adalora.peft_config[adalora.trainable_adapter_name].rank_pattern,
                "ipt": allocator.ipt, "exp_avg_ipt": allocator.exp_avg_ipt, "exp_avg_unc": allocator.exp_avg_unc}

    def load_state_dict(self, model, state):
        adalora = model.backbone.base_model
        allocator = adalora.rankallocator
        adalora.peft_config[adalora.trainable_adapter_name].rank_pattern = state["rank_pattern"]
        device = next(model.parameters()).device
        for key in ("ipt", "exp_avg_ipt", "exp_avg_unc"):
            setattr(allocator, key, {n: t.to(device) for n, t in state[key].items()})
