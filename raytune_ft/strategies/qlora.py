"""QLoRA (Dettmers et al. 2023): LoRA adapters on a pretrained transformers model loaded in 4 bits.

The base weights are quantised as the model is loaded (transformers' BitsAndBytesConfig: NF4, double
quantisation, bf16 compute), frozen and never updated; peft's `prepare_model_for_kbit_training` keeps the
other weights (norms, embeddings) in fp32; LoRA adapters train on top, in bf16 as in the paper's code (or
fp32), with the new head in fp32. The 4-bit weights take ~0.5 byte per parameter instead of 4 (fp32) or 2
(bf16): a 7B model's base fits in ~4 GB.

bitsandbytes' 4-bit kernels need a CUDA GPU: `validate` refuses qlora for a job without GPUs
(resources.gpus_per_worker: 0) and `run` for a cluster without them; `pip install 'raytune_ft[qlora]'`
brings bitsandbytes. Reloading a QLoRA trial (`load_trial_model`) loads the base in 4 bits again, so it
also needs a CUDA GPU. Not under FSDP (4-bit weights are not sharded here): one GPU per worker, DDP.
"""
from typing import Literal

from pydantic import Field

from raytune_ft.strategies.base import register_strategy
from raytune_ft.strategies.lora import Lora, LoraFamilyConfig
from raytune_ft.strategies.peft_base import values

INITS = ("default", "gaussian")  # the others start from the base weights, which are 4-bit here


class QLoraConfig(LoraFamilyConfig):
    """LoRA adapters on the backbone loaded in 4 bits (bitsandbytes; a CUDA GPU); the new head trains in fp32."""

    name: Literal["qlora"] = "qlora"
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="the 4-bit data type: nf4 (NormalFloat, the "
                                              "paper's: quantiles of a normal distribution) or fp4")
    double_quant: bool = Field(True, description="quantise the quantisation constants too (~0.4 bit per "
                               "parameter saved)")
    compute_dtype: Literal["bfloat16", "float16"] = Field(
        "bfloat16", description="the dtype the 4-bit weights are dequantised to for each matrix product")
    adapter_dtype: Literal["bfloat16", "float32"] = Field(
        "bfloat16", description="the LoRA adapters' weights: bfloat16 (as the paper's code), or float32")


@register_strategy
class QLora(Lora):
    name = "qlora"
    Config = QLoraConfig
    needs_cuda = True
    unsupported = {"fsdp": "its base weights are 4-bit bitsandbytes tensors, which are not sharded here; use "
                           "distributed: ddp (one GPU per worker)"}

    def use_dora(self, cfg) -> bool:
        return False

    def quantization(self, cfg):
        import torch
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=cfg.quant_type,
                                  bnb_4bit_use_double_quant=cfg.double_quant,
                                  bnb_4bit_compute_dtype=getattr(torch, cfg.compute_dtype))

    def apply(self, model, cfg, *, total_steps=None):
        import peft
        import torch

        # freezes every weight, keeps the non-4-bit ones in fp32; gradient checkpointing is the
        # gradient_checkpointing hyperparameter's (train/grad_checkpoint.py), not turned on here
        model.backbone = peft.prepare_model_for_kbit_training(model.backbone, use_gradient_checkpointing=False)
        model = super().apply(model, cfg, total_steps=total_steps)
        dtype = getattr(torch, cfg.adapter_dtype)
        for name, p in model.backbone.named_parameters():
            if p.requires_grad and ".lora_" in name:
                p.data = p.data.to(dtype)
        return model

    def spec_problems(self, cfg, job):
        if job.model.source != "transformers":
            yield "name", (f"qlora loads the model through transformers (BitsAndBytesConfig), and model.source is "
                           f"{job.model.source}: use lora for a {job.model.source} model")
            return
        inits = [i for i in values(cfg.init) if i not in INITS]
        if inits:
            yield "init", (f"{inits[0]} starts the adapters from the base weights, which qlora holds in 4 bits: use "
                           f"init {' or '.join(INITS)}")
        yield from super().spec_problems(cfg, job)
