"""What kind of model a Hugging Face folder (or cached hub name) holds, read from its config.json alone.

    encoder   a text encoder (BERT, RoBERTa, DistilBERT, MiniLM ...): mean / [CLS] pooling
    decoder   a causal language model (Llama, Qwen2/3, Mistral, Gemma, GPT-2, Phi ...): last-token pooling
    vision    an image model (ViT, DeiT, DINOv2, ConvNeXt, Swin, BEiT, ...), or the vision tower of a
              CLIP / SigLIP checkpoint: its image processor says how images are prepared

The kind follows transformers' own tables (its Auto* mappings) for the config's `model_type`; a model
whose code ships with it (`auto_map`, with `trust_remote_code: true`) is told by its `architectures`.
Anything else (an encoder-decoder such as T5, a speech model) is refused with what was found.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

KINDS = ("encoder", "decoder", "vision")


@dataclass(frozen=True)
class Arch:
    kind: str  # one of KINDS
    model_type: str
    model_class: Optional[str] = None  # the transformers class to load (a vision tower), else AutoModel


def read_config(path: str, trust_remote_code: bool = False) -> Optional[dict]:
    """config.json as a dict: a local folder's, or a cached hub model's (offline); None when unreadable."""
    local = Path(path).expanduser()
    try:
        if (local / "config.json").is_file():
            return json.loads((local / "config.json").read_text())
    except (OSError, ValueError):
        return None
    try:  # a hub name: only what the local Hugging Face cache holds (nothing is downloaded here)
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code).to_dict()
    except Exception:  # noqa: BLE001 - not cached, no network: the build says so later, naming the model
        return None


@lru_cache(maxsize=64)
def arch_of(path: str, trust_remote_code: bool = False) -> Optional[Arch]:
    """The model's kind, or None when its config cannot be read here (a hub name not in the cache).
    ValueError, saying what was found, for a model that is none of KINDS."""
    config = read_config(path, trust_remote_code)
    if config is None:
        return None
    return classify(config, trust_remote_code)


def classify(config: dict, trust_remote_code: bool = False) -> Arch:
    from transformers.models.auto import modeling_auto as auto
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    model_type = config.get("model_type") or "(none)"
    architectures = config.get("architectures") or []
    found = f"model_type {model_type!r}" + (f", architectures {architectures}" if architectures else "")
    if model_type not in CONFIG_MAPPING_NAMES:
        if config.get("auto_map") and trust_remote_code:
            kind = _kind_by_architecture(architectures)
            if kind:
                return Arch(kind, model_type)
            raise ValueError(f"its config.json has {found}, code of its own (auto_map) and no architecture that "
                             "says what it is (…ForCausalLM, …ForMaskedLM, …ForImageClassification)")
        hint = ("it ships its own code (auto_map): read it, then set model.trust_remote_code: true"
                if config.get("auto_map") else "a newer transformers may know it")
        raise ValueError(f"its config.json has {found}, which this transformers does not know: {hint}")
    if config.get("is_encoder_decoder"):
        raise ValueError(f"its config.json has {found}: an encoder-decoder model; raytune_ft classifies with text "
                         "encoders (BERT ...), decoder language models (Llama, Qwen, GPT-2 ...) and image models "
                         "(ViT, DINOv2, ConvNeXt, CLIP / SigLIP vision towers ...)")
    image_types = (*auto.MODEL_FOR_IMAGE_MAPPING_NAMES, *auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES)
    if model_type in image_types and "text_config" not in config:
        return Arch("vision", model_type)
    tower = f"{model_type}_vision_model"  # clip -> clip_vision_model (CLIPVisionModel), siglip, siglip2 ...
    if "vision_config" in config and "text_config" in config and tower in auto.MODEL_MAPPING_NAMES:
        return Arch("vision", model_type, auto.MODEL_MAPPING_NAMES[tower])
    if model_type in auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return Arch("decoder", model_type)
    if model_type in auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES or \
            model_type in auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES:
        return Arch("encoder", model_type)
    raise ValueError(f"its config.json has {found}: not a text encoder, a decoder language model or an image "
                     "model (speech, video, multimodal generation ... are not supported)")


def _kind_by_architecture(architectures: list[str]) -> Optional[str]:
    for name in architectures:
        if name.endswith(("ForCausalLM", "LMHeadModel")):
            return "decoder"
        if name.endswith(("ForMaskedLM", "ForSequenceClassification")):
            return "encoder"
        if name.endswith("ForImageClassification"):
            return "vision"
    return None
