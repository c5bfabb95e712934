"""What the model sees of an image: one recipe, used by preparation, training and evaluation.

    prepare   short side resized to resize_size (R), the R x R square around the center, stored uint8 N x 3 x R x R
    train     random-resized-crop (augment.random_resized_crop) or the center crop, down to crop_size;
              then flip / colour jitter when asked
    evaluate  the center crop_size square, as validation and test see it
    model     (x / 255 - mean) / std

Evaluation thus sees torchvision's `Resize(R) + CenterCrop(C)` of the original image: for a
torchvision weights enum exactly `weights.transforms()` (the same PIL resize, one resize only),
and training crops come from the larger stored square, not from the C x C view.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_FRACTION = 0.875  # the standard ImageNet evaluation: a 224 crop of the image resized to 256
RRC_SCALE = (0.6, 1.0)  # random-resized-crop: 60-100% of the stored square's area


@dataclass(frozen=True)
class ImageRecipe:
    crop_size: int  # C: the square the model sees
    resize_size: int  # R: the short side before the crops, and the stored square
    interpolation: str = "bilinear"  # a torchvision InterpolationMode value
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        if self.resize_size < self.crop_size:
            raise ValueError(f"resize size {self.resize_size} is smaller than crop size {self.crop_size}")

    @classmethod
    def imagenet(cls, crop_size: int, mean=None, std=None) -> "ImageRecipe":
        """The standard recipe: short side to crop_size / 0.875, center crop crop_size, bilinear."""
        return cls(crop_size, round(crop_size / CROP_FRACTION), "bilinear",
                   tuple(mean or IMAGENET_MEAN), tuple(std or IMAGENET_STD))

    @classmethod
    def from_torchvision(cls, transforms, crop_size: Optional[int] = None, mean=None, std=None) -> "ImageRecipe":
        """A weights enum's `transforms()` (ImageClassification); explicit values override its own.

        A crop size other than the enum's keeps the enum's resize / crop ratio.
        """
        own_crop, own_resize = transforms.crop_size[0], transforms.resize_size[0]
        crop = crop_size or own_crop
        resize = own_resize if crop == own_crop else max(crop, round(crop * own_resize / own_crop))
        return cls(crop, resize, transforms.interpolation.value,
                   tuple(mean or transforms.mean), tuple(std or transforms.std))

    def to_meta(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_meta(cls, meta: dict, stored_size: int) -> "ImageRecipe":
        """The recipe the data were prepared with (data prepared before it was recorded: no crop)."""
        if "image" in meta:
            m = meta["image"]
            return cls(m["crop_size"], m["resize_size"], m["interpolation"], tuple(m["mean"]), tuple(m["std"]))
        return cls(stored_size, stored_size, "bilinear", tuple(meta["mean"]), tuple(meta["std"]))

    def _mode(self):
        from torchvision.transforms import InterpolationMode

        return InterpolationMode(self.interpolation)

    def store(self, images):
        """uint8 N x 3 x R x R: each image's short side resized to R (PIL, antialiased), center R x R.

        images: PIL images or H x W x 3 uint8 arrays. A square image is just resized.
        """
        import numpy as np
        import torch
        from PIL import Image
        from torchvision.transforms.v2 import functional as F

        r = self.resize_size
        out = torch.empty((len(images), 3, r, r), dtype=torch.uint8)
        for i, im in enumerate(images):
            if not isinstance(im, Image.Image):
                im = Image.fromarray(np.asarray(im, dtype=np.uint8))
            im = F.resize(im.convert("RGB"), [r], interpolation=self._mode(), antialias=True)
            w, h = im.size
            im = F.crop(im, _offset(h, r, self.crop_size), _offset(w, r, self.crop_size), r, r)
            out[i] = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)
        return out

    def train_transform(self, augment: dict):
        """One stored uint8 3 x R x R image -> 3 x C x C: random-resized-crop when augment asks for it,
        else the center crop (what evaluation sees); then flip and colour jitter when asked."""
        from torchvision.transforms import v2

        steps = [v2.RandomResizedCrop(self.crop_size, scale=RRC_SCALE, interpolation=self._mode(), antialias=True)
                 if augment.get("random_resized_crop") else v2.CenterCrop(self.crop_size)]
        if augment.get("hflip"):
            steps.append(v2.RandomHorizontalFlip())
        if augment.get("color_jitter"):
            j = augment["color_jitter"]
            steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j))
        return v2.Compose(steps)

    def model_inputs(self, pixel_values):
        """A uint8 batch (N x 3 x R x R stored, or already C x C from train_transform) -> the normalised
        float center crop the model takes, on the batch's device."""
        import torch

        h, w = pixel_values.shape[-2:]
        c = self.crop_size
        if (h, w) != (c, c):
            top, left = _center(h, c), _center(w, c)
            pixel_values = pixel_values[..., top:top + c, left:left + c]
        mean = torch.tensor(self.mean, device=pixel_values.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=pixel_values.device).view(1, 3, 1, 1)
        return (pixel_values.float() / 255.0 - mean) / std


def _center(size: int, crop: int) -> int:
    """torchvision's center_crop offset."""
    return int(round((size - crop) / 2.0))


def _offset(size: int, r: int, c: int) -> int:
    """Where the stored R square starts so that its center C crop is torchvision's center C crop of the
    whole image (a plain center R crop can be one pixel off when R - C is odd, e.g. 255 / 240)."""
    return min(max(_center(size, c) - _center(r, c), 0), size - r)
