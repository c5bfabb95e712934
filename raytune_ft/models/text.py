"""Hugging Face transformers models, from a local folder (or the local hub cache): text encoders (BERT,
RoBERTa, DistilBERT, MiniLM ...), decoder language models (Llama, Qwen2/3, Mistral, Gemma, GPT-2 ...) and
image models (ViT, DeiT, DINOv2, ConvNeXt, Swin, the vision towers of CLIP / SigLIP). The model's
config.json says which (models/hf_arch.py): text is tokenized with its tokenizer, images prepared as its
image processor says (resize, crop, mean / std, resample).

    model: {source: transformers, name: path/to/Qwen2.5-0.5B, max_length: 256}     # pooling: last
    model: {source: transformers, name: path/to/dinov2-small}                       # its image processor
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, Optional

from pydantic import Field, field_validator

from raytune_ft.models import packaged
from raytune_ft.models.base import ModelConfig, Source, own_recipe, register_source
from raytune_ft.models.hf_arch import arch_of

if TYPE_CHECKING:
    from raytune_ft.models.classifier import Classifier

DTYPES = ("float32", "bfloat16", "float16", "auto")
PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


class TransformersConfig(ModelConfig):
    """A transformers model: a text encoder, a decoder language model or an image model."""

    source: Literal["transformers"] = "transformers"
    max_length: int = Field(128, ge=8, le=8192, description="text models: tokens kept per text")
    pooling: Optional[Literal["mean", "cls", "last"]] = Field(
        None, description="the feature vector. Text encoders: mean of the token states (default; sentence-"
        "transformers models) or cls. Decoder LMs: last (default: each row's last real token, under left or right "
        "padding) or mean. Image models: cls or mean of the tokens (default: the model's own pooled output, e.g. "
        "DINOv2's normed [CLS], ConvNeXt's pooled map, SigLIP's attention pool; ViT / DeiT: [CLS])")
    trust_remote_code: bool = Field(False, description="run code shipped with the model; off unless you trust it")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "float32", description="the backbone's weights: float32 (default), bfloat16, float16, or auto: as the "
        "checkpoint stores them (a bf16 model stays bf16). The new head is float32")
    image_size: Optional[int] = Field(
        None, ge=8, le=1024, description="image models: the square crop the model sees; default: its image "
        "processor's (a different size keeps the processor's resize / crop ratio)")
    mean: Optional[tuple[float, float, float]] = Field(None, description="image models: default the processor's")
    std: Optional[tuple[float, float, float]] = Field(None, description="image models: default the processor's")

    weights_field = "name"

    def path(self) -> str:
        return packaged.resolve(self.name)

    def arch(self):
        """What the model is (hf_arch.Arch), or None when its config cannot be read here or is not supported
        (`problems` says which)."""
        try:
            return arch_of(self.path(), self.trust_remote_code)
        except ValueError:
            return None

    def kind(self) -> str:
        """encoder | decoder | vision (a model whose config cannot be read here counts as an encoder)."""
        arch = self.arch()
        return arch.kind if arch else "encoder"

    def family(self) -> str:
        return "vision" if self.kind() == "vision" else "text"

    def weights_path(self) -> Optional[str]:
        return self.path()

    def supports_drop_path(self) -> bool:
        from raytune_ft.models.hf_arch import read_config

        config = read_config(self.path(), self.trust_remote_code) or {}
        return "drop_path_rate" in config or "drop_path_rate" in (config.get("vision_config") or {})

    def problems(self, here: bool = True):
        try:
            arch = arch_of(self.path(), self.trust_remote_code)
        except ValueError as e:
            yield "name", f"{self.path()}: {e}"
            return
        if arch is None:
            if here:
                yield "name", (f"{self.name} is neither a local model folder nor in the local Hugging Face cache "
                               "(HF_HOME), and nothing is downloaded at run time: give a folder with config.json, or "
                               "fetch the model into the cache where there is network")
            return
        kind = arch.kind
        if kind == "vision":
            if self.pooling == "last":
                yield "pooling", "last pools text tokens; an image model takes cls or mean, or leave it out"
            if "max_length" in self.model_fields_set:
                yield "max_length", "counts text tokens; this is an image model: remove it"
        else:
            for name in ("image_size", "mean", "std"):
                if getattr(self, name) is not None:
                    yield name, f"is for image models, and this is a text {kind}: remove it"
        if kind == "decoder":
            yield from _pad_problems(self)

    def image_recipe(self):
        """The image processor's preprocessing (preprocessor_config.json): resize, center crop, resample,
        mean / std; model.image_size / mean / std win."""
        from transformers import AutoImageProcessor

        try:
            processor = AutoImageProcessor.from_pretrained(self.path(), trust_remote_code=self.trust_remote_code)
        except Exception as e:  # noqa: BLE001 - no preprocessor_config.json, an unknown processor
            if self.image_size:
                from raytune_ft.data.images import ImageRecipe

                return ImageRecipe.imagenet(self.image_size, self.mean, self.std)
            raise ValueError(f"model.name {self.name}: its image processor cannot be loaded ({type(e).__name__}: "
                             f"{str(e)[:200]}); save it into the folder (processor.save_pretrained), or set "
                             "model.image_size (and mean / std) for the standard ImageNet recipe") from None
        crop, resize = _processor_sizes(processor)
        resample = getattr(processor, "resample", None)
        interpolation = PIL_RESAMPLE.get(resample, "bicubic") if isinstance(resample, int) \
            else getattr(resample, "value", "bicubic")
        return own_recipe(self, crop, resize, str(interpolation), processor.image_mean, processor.image_std)

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


def _processor_sizes(processor) -> tuple[int, int]:
    """(crop C, short side R) of an image processor: R x R is what is kept, C what the model sees."""
    size = processor.size
    short = getattr(size, "shortest_edge", None) or getattr(size, "height", None)
    crop = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
    crop = getattr(crop, "height", None) if crop is not None else None
    if crop:
        return crop, max(crop, short or crop)
    pct = getattr(processor, "crop_pct", None)
    if pct and getattr(size, "shortest_edge", None) and short < 384:  # ConvNeXt: resize to C / pct, crop C
        return short, int(short / pct)  # as transformers does
    return short, short


def _pad_problems(config: TransformersConfig):
    """A decoder pads with its pad token, or borrows its EOS; a tokenizer with neither cannot pad."""
    try:
        tokenizer = Transformers.tokenizer(config, pad=False)
    except Exception:  # noqa: BLE001 - no tokenizer here: preparing the data says so, naming the model
        return
    if tokenizer.pad_token is None and tokenizer.eos_token is None:
        yield "name", (f"{config.path()}: the tokenizer of this decoder has no pad token and no EOS token to pad "
                       "with; add one (tokenizer.add_special_tokens({'pad_token': '<pad>'}), then save_pretrained "
                       "into the folder)")


@register_source
class Transformers(Source):
    name = "transformers"
    family = "text"  # the default; TransformersConfig.family() reads the model's config
    Config = TransformersConfig

    def build(self, config, num_classes, *, drop_path_rate=None, quantization=None):
        """quantization: a transformers quantization_config (QLoRA's BitsAndBytesConfig): the weights are
        quantised as they load, onto this process's CUDA GPU."""
        import torch
        import transformers

        from raytune_ft.models.classifier import Classifier  # torch: imported when a model is built

        arch = arch_of(config.path(), config.trust_remote_code)  # ValueError: not a supported kind
        kind = arch.kind if arch else "encoder"
        loader = getattr(transformers, arch.model_class) if arch and arch.model_class else transformers.AutoModel
        options = {"trust_remote_code": config.trust_remote_code,
                   "dtype": config.dtype if config.dtype == "auto" else getattr(torch, config.dtype)}
        if drop_path_rate is not None:
            options["drop_path_rate"] = drop_path_rate
        if quantization is not None:  # bitsandbytes quantises on the GPU the weights load onto
            options.update(quantization_config=quantization, device_map={"": torch.cuda.current_device()})
        if torch.get_default_device().type == "meta":  # a skeleton (Source.skeleton): the structure alone
            hf_config = transformers.AutoConfig.from_pretrained(config.path(), trust_remote_code=config.trust_remote_code)
            if arch and arch.model_class:
                hf_config = hf_config.vision_config
            backbone = transformers.AutoModel.from_config(hf_config, trust_remote_code=config.trust_remote_code)
        else:
            backbone = loader.from_pretrained(config.path(), **options)
        if kind == "vision":
            return _vision_classifier(backbone, num_classes, config.pooling or "pooler")
        if getattr(backbone, "pooler", None) is not None:
            # We pool token states ourselves; an unused pooler would be counted, "trained" with no
            # gradient, and make DistributedDataParallel fail on parameters that got no grad.
            backbone.pooler = None
        dim = getattr(backbone.config, "hidden_size", None) or backbone.config.dim
        model = Classifier(backbone, dim, num_classes, "text",
                           pooling=config.pooling or ("last" if kind == "decoder" else "mean"))
        model.positions = kind == "decoder"
        return model

    def skeleton(self, config):
        import torch

        with torch.device("meta"):
            return self.build(config, 2)

    @staticmethod
    def tokenizer(config: TransformersConfig, pad: bool = True):
        """The model's tokenizer. A decoder's tokenizer without a pad token pads with its EOS token (pooling
        and attention follow the attention mask, never the token ids)."""
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(config.path(), trust_remote_code=config.trust_remote_code)
        if pad and tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ValueError("the tokenizer has no pad token and no EOS token to pad with")
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer


def _vision_classifier(backbone, num_classes: int, pooling: str) -> Classifier:
    """An image model's backbone under a new head. A pooler that is a fresh dense layer (ViT's, DeiT's: their
    own classifiers read [CLS] instead) is dropped, so pooling="pooler" reads [CLS] there."""
    import inspect

    from torch import nn

    from raytune_ft.models.classifier import Classifier

    pooler = getattr(backbone, "pooler", None)
    if isinstance(pooler, nn.Module) and any(isinstance(m, nn.Linear) for m in pooler.modules()):
        backbone.pooler = None
    sizes = getattr(backbone.config, "hidden_sizes", None)  # CNNs: the last stage's channels
    model = Classifier(backbone, sizes[-1] if sizes else backbone.config.hidden_size, num_classes, "vision",
                       pooling=pooling)
    if "interpolate_pos_encoding" in inspect.signature(backbone.forward).parameters:
        # position embeddings resized to the image (model.image_size); at the trained size they are used as they are
        model.image_options = {"interpolate_pos_encoding": True}
    return model
