"""Text backbones: any transformers encoder (BERT, RoBERTa, DistilBERT families...)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from raytune_ft.models import packaged
from raytune_ft.models.base import ModelConfig, Source, register_source


class TransformersConfig(ModelConfig):
    source: Literal["transformers"] = "transformers"
    max_length: int = Field(128, ge=8, le=8192, description="tokens kept per text")
    pooling: Literal["mean", "cls"] = Field(
        "mean", description="sentence vector: mean of token states (sentence-transformers models) or [CLS]")
    trust_remote_code: bool = Field(False, description="run code shipped with the model; off unless you trust it")

    def path(self) -> str:
        return packaged.resolve(self.name)

    @field_validator("name")
    @classmethod
    def _local(cls, name):
        resolved = packaged.resolve(name)
        try:
            looks_local = resolved.startswith((".", "/", "~")) or Path(resolved).exists()
        except OSError:  # a name too long for a path
            looks_local = False
        if looks_local and not (Path(resolved).expanduser() / "config.json").is_file():
            raise ValueError(f"{resolved} is not a Hugging Face model folder (no config.json there)")
        return name


@register_source
class Transformers(Source):
    name = "transformers"
    family = "text"
    Config = TransformersConfig

    def build(self, config, num_classes):
        from transformers import AutoModel

        from raytune_ft.models.classifier import Classifier  # torch: imported when a model is built

        backbone = AutoModel.from_pretrained(config.path(), trust_remote_code=config.trust_remote_code)
        if getattr(backbone, "pooler", None) is not None:
            # We pool token states ourselves; an unused pooler would be counted, "trained" with no
            # gradient, and make DistributedDataParallel fail on parameters that got no grad.
            backbone.pooler = None
        dim = getattr(backbone.config, "hidden_size", None) or backbone.config.dim
        return Classifier(backbone, dim, num_classes, "text", pooling=config.pooling)

    @staticmethod
    def tokenizer(config: TransformersConfig):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(config.path(), trust_remote_code=config.trust_remote_code)
