"""LoRA and its variants as knobs: DoRA, rsLoRA and the initialisations (all searchable), so that
`use_dora: {choice: [false, true]}` or `init: {choice: [default, pissa]}` compares them in one entry."""
import re
from typing import Literal

from pydantic import Field, field_validator

from raytune_ft.searchable import Sampler, Searchable
from raytune_ft.strategies.base import model_skeleton, register_strategy
from raytune_ft.strategies.peft_base import PeftStrategy, PeftStrategyConfig, matched, values

# peft's init_lora_weights, by our name. pissa / olora / orthogonal start from the base weight's SVD / QR (and
# pissa / olora move its principal part into the adapter); eva from the SVD of the layers' inputs on training
# batches (Paischer et al. 2024; ranks kept at r, rho = 1): Linear layers only.
INITS = {"default": True, "gaussian": "gaussian", "pissa": "pissa", "olora": "olora", "orthogonal": "orthogonal",
         "eva": "eva"}
PISSA_FAST = re.compile(r"pissa_niter_\d+")  # fast-SVD PiSSA with that many subspace iterations
LINEAR_ONLY_INITS = ("pissa", "olora", "orthogonal", "eva")


class LoraFamilyConfig(PeftStrategyConfig):
    """The knobs LoRA and DoRA share."""

    r: Searchable(int, ge=1) = Field(8, description="rank of the low-rank update")
    alpha: Searchable(float, gt=0) = Field(16.0, description="scaling: the update is multiplied by alpha / r")
    dropout: Searchable(float, ge=0, lt=1) = Field(0.0, description="dropout on the adapter input")
    use_rslora: Searchable(bool) = Field(
        False, description="rank-stabilised LoRA (Kalajdzievski 2023): scale by alpha / sqrt(r) instead of alpha / r")
    init: Searchable(str) = Field(
        "default", description="how the adapters start: default (B = 0: a no-op), gaussian, pissa (the base weight's "
        "top singular directions move into the adapter; pissa_niter_N: fast SVD with N iterations), olora (QR of the "
        "base weight), orthogonal (orthogonal A and B, even r), eva (A from the SVD of each layer's inputs on up to 8 "
        "training batches, B = 0); pissa / olora / orthogonal / eva: Linear layers only")

    @field_validator("init")
    @classmethod
    def _known_init(cls, init):
        for value in init.candidates() if isinstance(init, Sampler) else (init,):
            if value not in INITS and not PISSA_FAST.fullmatch(value):
                raise ValueError(f"unknown init {value!r}; use one of {', '.join(INITS)} or pissa_niter_<N>")
        return init


class LoraConfig(LoraFamilyConfig):
    """LoRA adapters (peft) on the backbone; the backbone's own weights stay frozen, the head trains."""

    name: Literal["lora"] = "lora"
    use_dora: Searchable(bool) = Field(
        False, description="DoRA (Liu et al. 2024): the update split into a learned magnitude per output and a "
        "LoRA-updated direction (the dora strategy is lora with this on)")


@register_strategy
class Lora(PeftStrategy):
    name = "lora"
    Config = LoraConfig
    adapts = ("Linear", "Conv1D", "Conv1d", "Conv2d", "Conv3d")

    def use_dora(self, cfg) -> bool:
        return cfg.use_dora

    def peft_config(self, model, cfg, total_steps):
        import peft

        init = INITS.get(cfg.init, cfg.init)
        eva = {"eva_config": peft.EvaConfig(rho=1.0)} if init == "eva" else {}  # rho 1: every layer keeps rank r
        return peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                               target_modules=self.targets(model, cfg.target_modules), bias="none",
                               use_dora=self.use_dora(cfg), use_rslora=cfg.use_rslora, init_lora_weights=init, **eva)

    def init_from_data(self, model, cfg, batches):
        """EVA: each adapted layer's A from the top right-singular vectors of its inputs (a text's real tokens:
        the attention mask says which) over the training batches. A rebuilt model (reload) skips it: its
        trained A and B are loaded."""
        if cfg.init != "eva":
            return
        import peft

        # peft's defaults select a text's real tokens by the attention mask; an image's layer inputs are taken whole
        images = {} if model.kind == "text" else {"prepare_model_inputs_fn": None, "prepare_layer_inputs_fn": None}
        peft.initialize_lora_eva_weights(
            model.backbone, dataloader=batches(), forward_fn=lambda _, inputs: model.features(inputs),
            show_progress_bar=False, gather_distributed_inputs=False, **images)

    def spec_problems(self, cfg, job):
        yield from super().spec_problems(cfg, job)
        inits = [i for i in values(cfg.init) if i.startswith(LINEAR_ONLY_INITS)]
        model = model_skeleton(job) if inits else None
        if model is not None:
            try:
                found = matched(model.backbone, self.targets(model, cfg.target_modules))
            except ValueError:  # no target: super() said so
                return
            convs = sorted({type(m).__name__ for _, m in found if type(m).__name__.startswith("Conv")
                            and type(m).__name__ != "Conv1D"})
            if convs:
                yield "init", (f"{inits[0]} starts from the SVD / QR of Linear weights, and the targets include "
                               f"{', '.join(convs)} layers: use init default or gaussian here, or set target_modules "
                               "to Linear layers")
        if "orthogonal" in values(cfg.init) and any(r % 2 for r in values(cfg.r)):
            yield "r", "init orthogonal needs an even rank: use even values of r"
