"""Image files as sources read them: which suffixes are images, and an image fully decoded (a truncated or
corrupt file fails here, named) from a path or from the bytes of an object in a bucket."""
from __future__ import annotations

import io
from pathlib import Path

from raytune_ft.data import location
from raytune_ft.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def open_image(source, where: str):
    """An RGB PIL image, fully decoded now (a truncated or corrupt file fails here, named)."""
    from PIL import Image

    try:
        with Image.open(source) as im:
            return im.convert("RGB")
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        reason = str(e).split(" <_io.")[0] if "<_io." in str(e) else str(e)  # no BytesIO reprs
        raise InputError(f"{where}: not a readable image ({reason or type(e).__name__})") from None


def image_file(where):
    """What PIL opens: a local path, or the bytes of an object in a bucket."""
    if isinstance(where, Path):
        return where
    try:
        return io.BytesIO(location.read_bytes(where))
    except OSError as e:
        raise InputError(f"{where}: cannot be read ({' '.join(str(e).split())})") from None

