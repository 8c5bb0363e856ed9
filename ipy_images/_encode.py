"""Pictures as file bytes: the package's one encoder, for results, saves and thumbnails."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

JPEG_QUALITY = 85
WEBP_QUALITY = 80


def encode(picture: Image.Image, fmt: str) -> bytes:
    """`picture` as a file of format `fmt` ("jpeg", "webp", or else PNG)."""
    buffer = io.BytesIO()
    if fmt == "jpeg":
        picture.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    elif fmt == "webp":
        picture.save(buffer, "WEBP", quality=WEBP_QUALITY)
    else:
        picture.save(buffer, "PNG")
    return buffer.getvalue()
