"""Images are resized (short side) and center-cropped as the model's own preprocessing does, never squashed.

What the model sees for evaluation is compared with torchvision's `weights.transforms()` (a weights
enum) or an explicit `transforms.v2` pipeline (EfficientNet-Lite, state-dict files) on photos of
several aspect ratios. Both resize the original once with the same PIL call and crop at the same
offsets; here they agree bit for bit. The tolerance, atol 1e-5, leaves room only for float32
rounding in the normalisation (another order of operations, another device): one uint8 step is
1 / 255 / std ~ 0.017 in these units, so a one-pixel shift, a second resize or a squashed image
is far outside it.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from raytune_ft.data import load_meta, load_split, prepare_data
from raytune_ft.spec import parse_job
from raytune_ft.train.evaluate import model_inputs
from tests.conftest import vision_spec

ATOL = 1e-5
SHAPES = [(300, 200), (200, 300), (256, 256), (500, 180)]  # width x height


def photo(width: int, height: int, seed: int) -> Image.Image:
    """Structured content: stripes, gradients along both axes, a block and noise (not a constant colour)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    rgb = np.stack([127 + 120 * np.sin(x / 7.0 + seed), 255 * x / width, 255 * y / height], -1)
    rgb[height // 3: height // 2, width // 4: width // 3] = (20, 240, 60)
    rgb += rng.normal(0, 15, rgb.shape)
    return Image.fromarray(rgb.clip(0, 255).round().astype(np.uint8), "RGB")


def photo_folder(root, shapes=SHAPES) -> list[Image.Image]:
    """root/<class>/<i>.png for two classes; the images in the order preparation reads them."""
    images = []
    for c, cls in enumerate(("a", "b")):
        (root / cls).mkdir(parents=True)
        for i, (w, h) in enumerate(shapes):
            im = photo(w, h, seed=10 * c + i)
            im.save(root / cls / f"{i}.png")  # lossless: read back as written
            images.append(im)
    return images


def what_the_model_sees(model: dict, tmp_path, resnet_weights):
    """Prepare a photo folder as validation split; the normalised tensors validation / test feed the model."""
    images = photo_folder(tmp_path / "photos")
    spec = vision_spec(resnet_weights, model=model,
                       data={"source": "image_folder", "train": str(tmp_path / "photos"),
                             "validation": str(tmp_path / "photos")})
    prepare_data(parse_job(spec), tmp_path / "data")
    batch = {k: v[:] for k, v in load_split(tmp_path / "data", "validation").items()}  # the whole split, read
    seen = model_inputs(batch, load_meta(tmp_path / "data"), torch.device("cpu"))["pixel_values"]
    return images, seen


@pytest.mark.parametrize("weights", ["ResNet18_Weights.IMAGENET1K_V1",  # 256 -> 224, bilinear
                                     "EfficientNet_B1_Weights.IMAGENET1K_V2",  # 255 -> 240: odd margin
                                     "ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1"])  # 384 -> 384, bicubic
def test_evaluation_matches_the_weights_enum_transforms(weights, tmp_path, resnet_weights):
    from torchvision.models import get_model_weights, get_weight

    name = {"ResNet18": "resnet18", "EfficientNet_B1": "efficientnet_b1", "ViT_B_16": "vit_b_16"}[
        weights.split("_Weights")[0]]
    assert get_weight(weights) in list(get_model_weights(name))
    images, seen = what_the_model_sees({"source": "torchvision", "name": name, "weights": weights},
                                       tmp_path, resnet_weights)
    expected = torch.stack([get_weight(weights).transforms()(im) for im in images])
    assert seen.shape == expected.shape
    torch.testing.assert_close(seen, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("model", [
    {"source": "efficientnet_lite", "weights": "packaged:efficientnet-lite0"},  # 224 of 256
    {"source": "torchvision", "name": "resnet18", "weights": "STATE_DICT", "image_size": 64,  # 64 of 73
     "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]},
])
def test_evaluation_matches_the_imagenet_recipe(model, tmp_path, resnet_weights):
    from torchvision.transforms import v2

    if model["weights"] == "STATE_DICT":
        model = {**model, "weights": str(resnet_weights)}
    crop = model.get("image_size", 224)
    mean, std = model.get("mean", (0.485, 0.456, 0.406)), model.get("std", (0.229, 0.224, 0.225))
    pipeline = v2.Compose([v2.Resize(round(crop / 0.875), interpolation=v2.InterpolationMode.BILINEAR,
                                     antialias=True),
                           v2.CenterCrop(crop), v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True),
                           v2.Normalize(mean, std)])
    images, seen = what_the_model_sees(model, tmp_path, resnet_weights)
    expected = torch.stack([pipeline(im) for im in images])
    assert seen.shape == expected.shape == (len(images), 3, crop, crop)
    torch.testing.assert_close(seen, expected, atol=ATOL, rtol=0)


def job_model(model: dict, resnet_weights):
    return parse_job(vision_spec(resnet_weights, model=model)).model


def test_the_recipe_comes_from_the_enum_unless_the_spec_sets_it(resnet_weights):
    enum = {"source": "torchvision", "name": "resnet50", "weights": "ResNet50_Weights.IMAGENET1K_V2"}
    r = job_model(enum, resnet_weights).image_recipe()
    assert (r.crop_size, r.resize_size, r.interpolation) == (224, 232, "bilinear")
    r = job_model({**enum, "image_size": 112, "mean": [0.5] * 3}, resnet_weights).image_recipe()
    assert (r.crop_size, r.resize_size, r.mean, r.std) == (112, 116, (0.5,) * 3, (0.229, 0.224, 0.225))
    vit = {"source": "torchvision", "name": "vit_b_16", "weights": "ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1"}
    r = job_model(vit, resnet_weights).image_recipe()
    assert (r.crop_size, r.resize_size, r.interpolation) == (384, 384, "bicubic")
    r = job_model({"source": "torchvision", "name": "resnet18", "weights": str(resnet_weights)},
                  resnet_weights).image_recipe()
    assert (r.crop_size, r.resize_size, r.interpolation) == (224, 256, "bilinear")
    r = job_model({"source": "efficientnet_lite", "image_size": 300}, resnet_weights).image_recipe()
    assert (r.crop_size, r.resize_size) == (300, 343)
    # the resolved spec (what trials and a resumed run get) leaves unset sizes unset: the enum still decides
    job = parse_job(vision_spec(resnet_weights, model=enum))
    again = parse_job(job.resolved())
    assert again.model.image_recipe() == job.model.image_recipe()


def test_square_images_are_resized_whole_and_others_keep_their_center(resnet_weights):
    from torchvision.transforms.v2 import functional as F

    recipe = job_model({"source": "torchvision", "name": "resnet18", "weights": str(resnet_weights),
                        "image_size": 16}, resnet_weights).image_recipe()
    assert (recipe.crop_size, recipe.resize_size) == (16, 18)
    digit = (np.arange(64).reshape(8, 8, 1).repeat(3, -1) * 4).astype(np.uint8)  # an 8x8 array, as digits
    stored = recipe.store([digit, photo(60, 20, 0)])
    assert stored.shape == (2, 3, 18, 18) and stored.dtype == torch.uint8
    plain = F.pil_to_tensor(F.resize(Image.fromarray(digit), [18, 18], antialias=True))
    assert torch.equal(stored[0], plain)  # nothing cut from a square image
    wide = F.pil_to_tensor(F.resize(photo(60, 20, 0), [18], antialias=True))  # 54 x 18, not squashed
    assert torch.equal(stored[1], wide[:, :, 18:36])


def test_training_crops_come_from_the_stored_image_and_evaluation_from_its_center(resnet_weights):
    recipe = job_model({"source": "torchvision", "name": "resnet18", "weights": "ResNet18_Weights.IMAGENET1K_V1"},
                       resnet_weights).image_recipe()
    stored = torch.full((3, 256, 256), 255, dtype=torch.uint8)
    stored[:, 16:240, 16:240] = 0  # the 224 center black, the 16-pixel border (outside the eval view) white
    plain = recipe.train_transform({})
    assert torch.equal(plain(stored), torch.zeros(3, 224, 224, dtype=torch.uint8))  # = the evaluation view
    assert torch.equal(recipe.model_inputs(stored[None]), recipe.model_inputs(plain(stored)[None]))
    torch.manual_seed(0)
    rrc = recipe.train_transform({"random_resized_crop": True, "hflip": True})
    crops = [rrc(stored) for _ in range(20)]
    assert all(c.shape == (3, 224, 224) for c in crops)
    assert sum(bool((c == 255).any()) for c in crops) >= 10  # crops reach beyond the center view
    assert len({c.float().mean().item() for c in crops}) > 1  # and differ from draw to draw


def test_data_prepared_before_the_recipe_was_recorded_are_not_cropped():
    from raytune_ft.data.images import ImageRecipe

    pixels = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    meta = {"mean": [0.5] * 3, "std": [0.25] * 3}
    recipe = ImageRecipe.from_meta(meta, pixels.shape[-1])
    assert (recipe.crop_size, recipe.resize_size) == (16, 16)
    torch.testing.assert_close(model_inputs({"pixel_values": pixels}, meta, torch.device("cpu"))["pixel_values"],
                               (pixels.float() / 255 - 0.5) / 0.25)
