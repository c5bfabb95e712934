"""A model source builds a `Classifier` from a spec entry. A new source is one file + one import."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Iterator, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from raytune_ft.models import packaged
from raytune_ft.registry import Registry

if TYPE_CHECKING:
    from raytune_ft.data.images import ImageRecipe
    from raytune_ft.models.classifier import Classifier


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    name: str = Field(description="the architecture (vision) or Hugging Face name-or-path (text)")
    block_paths: Optional[list[str]] = Field(
        None, description="the backbone's ordered block module paths (bottom to top), for models whose "
        "structure is not recognised; partial / gradual_unfreeze / discriminative_lr use them")
    head: Literal["linear", "prototype"] = Field(
        "linear", description="the new head: linear, or prototype (cosine similarity to one prototype per class "
        "times head_scale; the prototypes start as each class's mean pretrained feature over the trial's "
        "training samples, then train): a better start with few samples per class (models/heads.py)")
    head_scale: Optional[float] = Field(
        None, gt=0, le=1000, description="prototype head: the fixed scale (inverse temperature) of its cosine "
        "logits; default 16")

    weights_field: ClassVar[str] = "weights"  # the field that names the pretrained weights (provenance, job.yaml)

    def family(self) -> str:
        """"vision" or "text": what data the model takes (a transformers model: as its config.json says)."""
        return SOURCES.get(self.source).family

    def weights_path(self) -> Optional[str]:
        """The local file or folder the weights are read from, or None (random init, a torchvision enum)."""
        return None

    def problems(self, here: bool = True) -> Iterator[tuple[str, str]]:
        """(field, message) for what the model's own files say is wrong (read at validate time: a model folder's
        architecture, its tokenizer, cached weights); the spec reports each under model.<field>. here=False
        (`submit`): the model may be on the cluster only, so what is not found here is not a problem."""
        return iter(())

    def supports_drop_path(self) -> bool:
        """Whether hparams.drop_path_rate (stochastic depth) can be set on this model."""
        return False

    @model_validator(mode="after")
    def _head_scale(self):
        if self.head_scale is not None and self.head != "prototype":
            raise ValueError(f"head_scale is set but head is {self.head!r}: it scales the prototype head's cosine "
                             "logits only; set head: prototype, or remove head_scale")
        return self


class VisionModelConfig(ModelConfig):
    weights: Optional[str] = Field(
        None,
        description="a local state-dict file (.safetensors, .pt, .pth), a torchvision weights enum "
        "such as ResNet18_Weights.IMAGENET1K_V1, packaged:<name>, or null for random init",
    )
    image_size: Optional[int] = Field(
        None, ge=8, le=1024,
        description="the square crop the model sees, in pixels. Images are kept with their short side "
        "resized to image_size / 0.875 (256 for 224; a weights enum: its own resize / crop ratio) and "
        "center-cropped to that square; evaluation sees the center image_size crop, training a random-resized "
        "(augment) or the center crop. Default: a torchvision weights enum's crop size, else 224; set, it "
        "wins over the enum's")
    mean: Optional[tuple[float, float, float]] = Field(
        None, description="per-channel normalisation mean (0-1 scale); default: the weights enum's, else ImageNet's")
    std: Optional[tuple[float, float, float]] = Field(
        None, description="per-channel normalisation std (0-1 scale); default: the weights enum's, else ImageNet's")

    def image_recipe(self) -> "ImageRecipe":
        """How images are resized, cropped and normalised for this model (raytune_ft/data/images.py)."""
        from raytune_ft.data.images import ImageRecipe

        return ImageRecipe.imagenet(self.image_size or 224, self.mean, self.std)

    def weights_path(self) -> Optional[str]:
        path = self.weights_file()
        return None if path is None else str(path)

    def weights_file(self) -> Optional[Path]:
        """The local weights file, or None when weights is an enum or null."""
        if self.weights is None:
            return None
        ref = packaged.resolve(self.weights)
        if ref.startswith(packaged.PREFIX) or "/" in ref or ref.endswith((".pt", ".pth", ".bin", ".safetensors")):
            return Path(ref)
        return None

    @field_validator("weights")
    @classmethod
    def _weights_exist(cls, value):
        if value is None:
            return value
        resolved = packaged.resolve(value)  # raises a clear error for an unknown packaged name
        looks_like_file = "/" in resolved or resolved.endswith((".pt", ".pth", ".bin", ".safetensors"))
        if looks_like_file and not Path(resolved).is_file():
            raise ValueError(f"weights file {resolved} does not exist: give a state-dict file, "
                             "a torchvision weights enum, or null")
        return value


class Source:
    name: ClassVar[str]
    family: ClassVar[str]  # "vision" | "text"
    Config: ClassVar[type[ModelConfig]]

    def build(self, config: ModelConfig, num_classes: int, *, drop_path_rate: Optional[float] = None) -> "Classifier":
        """The pretrained backbone and a new head. drop_path_rate: stochastic depth (sources whose config
        says `supports_drop_path`; None: the model's own)."""
        raise NotImplementedError

    def skeleton(self, config: ModelConfig) -> "Classifier":
        """The model's structure without its weights, on the meta device (nothing read, nothing allocated):
        what validate-time checks look at (which layers an adapter method can wrap)."""
        import torch

        with torch.device("meta"):
            return self.build(config.model_copy(update={"weights": None}), 2)


SOURCES: Registry[type[Source]] = Registry("model source")


def register_source(cls: type[Source]) -> type[Source]:
    return SOURCES.register(cls.name)(cls)


def own_recipe(config, crop: int, resize: int, interpolation: str, mean, std) -> "ImageRecipe":
    """A model's own image preprocessing (crop and short-side sizes, interpolation, mean / std) with what the
    spec sets winning (config.image_size / mean / std): a different image_size keeps the model's resize / crop
    ratio. Interpolations a tensor resize cannot do (lanczos, box, hamming) become bicubic."""
    from raytune_ft.data.images import ImageRecipe

    size = config.image_size or crop
    resize = resize if size == crop else max(size, round(size * resize / crop))
    mode = interpolation if interpolation in ("nearest", "bilinear", "bicubic") else "bicubic"
    return ImageRecipe(size, max(size, resize), mode, tuple(config.mean or mean), tuple(config.std or std))


_SKELETONS: dict[str, "Classifier"] = {}


def skeleton(config: ModelConfig) -> "Classifier":
    """`Source.skeleton` of this model config, built once per process (several strategies look at it)."""
    key = f"{config.source}:{config.model_dump_json()}"
    if key not in _SKELETONS:
        _SKELETONS[key] = SOURCES.get(config.source)().skeleton(config)
    return _SKELETONS[key]


def load_state_dict(path: Path) -> dict:
    """Tensors only, never code: safetensors, or torch.load(weights_only=True)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated file, a pickle with code in it, not a torch file at all
        raise ValueError(f"weights file {path} is not a readable state dict (only tensors are loaded, never "
                         f"code): {type(e).__name__}: {str(e).splitlines()[0][:300]}") from e
    return state.get("state_dict", state) if isinstance(state, dict) else state
