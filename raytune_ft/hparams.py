"""Training hyperparameters that every strategy shares and any of them can search."""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

from raytune_ft.searchable import Searchable


class HParams(BaseModel):
    """Defaults for every trial; `search.hparams` sets them for the job, a strategy's `hparams` for itself."""

    model_config = ConfigDict(extra="forbid")

    lr: Searchable(float, gt=0, le=1) = Field(1e-3, description="peak learning rate (AdamW)")
    weight_decay: Searchable(float, ge=0, le=1) = Field(
        0.01, description="weight decay of layer weights and adapter factors; never of biases, norms, "
        "scaling vectors (IA3, AdaLoRA's singular values) or learned prompts (raytune_ft/optim.py)")
    batch_size: Searchable(int, ge=1) = Field(32, description="samples per optimizer micro-batch, per worker")
    warmup_ratio: Searchable(float, ge=0, lt=1) = Field(0.1, description="share of steps spent warming up")
    label_smoothing: Searchable(float, ge=0, lt=1) = Field(0.0, description="cross-entropy label smoothing")
    head_lr_mult: Searchable(float, gt=0) = Field(1.0, description="the new head learns this many times faster")
    head_dropout: Searchable(float, ge=0, lt=1) = Field(0.0, description="dropout before the new head")
    l2sp: Searchable(float, ge=0) = Field(
        0.0, description="L2-SP: penalty strength on the distance of backbone weights from their pretrained "
        "values (strategies that train backbone weights only)")
    augment_text: Searchable(float, ge=0, le=0.5) = Field(
        0.0, description="EDA alpha (text jobs): the share of a training text's tokens each augmentation changes "
        "(training.augment_text_ops; raytune_ft/data/text_augment.py), drawn anew every epoch; 0: off")
    drop_path_rate: Optional[Searchable(float, ge=0, lt=1)] = Field(
        None, description="stochastic depth: the rate of dropping a residual branch in the deepest block, timm's "
        "drop_path_rate (timm models; transformers image models whose config has one: DINOv2, Swin, ConvNeXt ...); "
        "null: the model's own")
    ewc: Searchable(float, ge=0) = Field(
        0.0, description="EWC: like l2sp, each backbone weight's distance from its pretrained value weighted by "
        "its diagonal Fisher information, estimated once per job (raytune_ft/ewc/; data.fisher_source)")
    gradient_checkpointing: Searchable(bool) = Field(
        False, description="recompute each block's activations in the backward pass instead of keeping them from the "
        "forward: much less activation memory for a third or so more compute (transformers models: their own switch; "
        "torchvision / timm / packaged models: each block found by models/blocks.py); the numbers are the same. "
        "Searchable ({choice: [false, true]}) to measure the trade, or set per strategy")


def _all_optional(model: type[BaseModel], name: str, doc: str) -> type[BaseModel]:
    """`model`'s fields, each with its bounds and description but defaulting to None (not given)."""
    fields = {n: (Optional[f.rebuild_annotation()], Field(None, description=f.description))
              for n, f in model.model_fields.items()}
    return create_model(name, __config__=ConfigDict(extra="forbid"), __doc__=doc, __module__=__name__, **fields)


HParamsOverride = _all_optional(HParams, "HParamsOverride",
                                "The same fields, each optional: only what a strategy sets differently from the job.")
