"""Loading images from anything a notebook holds, and preparing them for a backend.

A source is a path, an http(s) URL, bytes, a binary file object, a PIL image, a numpy
array, or the value of an ipywidgets `FileUpload`. `prepare_image` turns it into a
`PreparedImage`: an 8-bit RGB(A) picture with EXIF orientation applied, made square by
the `fit` policy when the backend needs it, encoded as a PNG under the size limit.

Every failure is an `InvalidImageError` whose message names the problem and the fix.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ._download import Download, download
from ._options import FITS
from ._sync import run_sync
from .errors import InvalidImageError, InvalidParameterError, is_whole

if TYPE_CHECKING:
    from PIL import Image

    from .models import ResultImage

__all__ = ["PreparedImage", "load_image", "prepare_image"]

MAX_PIXELS = 64_000_000  # 8000 x 8000: larger headers are refused before decoding
MAX_DECODED_BYTES = 100_000_000
"""Largest decoded picture: pixels x bytes per pixel (channels x bit depth, from the header).

About 5770x5770 RGB, 5000x5000 RGBA or 7070x7070 16-bit greyscale. Pixels alone do not
bound memory: a 124 KB 16-bit PNG of 7999x7999 passes the pixel limit yet decodes to 128 MB.
"""
MIN_SIDE = 16  # smaller pictures hold too few patches to vary
_URL_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+):")


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to send: PNG bytes, the picture they hold, its name and hash."""

    png: bytes
    image: Image.Image
    name: str
    sha256: str
    original_size: tuple[int, int]
    mime: str = "image/png"
    # The `ResultImage` this was made from (set by the client), so responses know their parent.
    origin: ResultImage | None = field(default=None, compare=False)

    @property
    def filename(self) -> str:
        """The upload filename: the source's name with a `.png` suffix."""
        return f"{PurePosixPath(self.name).stem or 'image'}.png"

    def __repr__(self) -> str:
        w, h = self.image.size
        return f"PreparedImage({self.name!r}, {w}x{h}, {len(self.png):,} bytes PNG)"


def prepare_image(
    source: Any,
    *,
    fit: str = "crop",
    square: bool = True,
    max_side: int = 1024,
    max_bytes: int = 4 * 1024 * 1024,
) -> PreparedImage:
    """Load `source` and prepare it for upload.

    Args:
        source: a path, http(s) URL, bytes, binary file, PIL image, numpy array,
            `FileUpload` value, or a result `response[i]` (whose lineage is kept).
        fit: how a non-square image becomes square: "crop" (centre crop), "pad" (pad
            with the border colour) or "strict" (refuse it). Ignored when not `square`.
        square: whether the backend needs a square picture (the variations contract does).
        max_side: the longest side after preparation; larger pictures are downscaled,
            since no backend returns more than this.
        max_bytes: the PNG is downscaled until it is smaller than this.
    """
    check_fit(fit)
    for option, value, least in (("max_side", max_side, MIN_SIDE), ("max_bytes", max_bytes, 4096)):
        if not is_whole(value) or value < least:
            raise InvalidParameterError(
                f"{option} must be a whole number of at least {least}, not {value!r}."
            )
    image, name = load_image(source, draft_side=max_side)
    original_size = image.size
    image = _to_8bit(image)
    if square and fit == "pad":
        # Shrink before padding: padding a 20000x10 strip first would build a huge canvas.
        image = downscale(image, max_side)
    if square:
        image = _make_square(image, fit, name)
    elif min(image.size) < MIN_SIDE:
        raise InvalidImageError(
            f"{name} is {image.width}x{image.height} pixels: too small to vary "
            f"(at least {MIN_SIDE}x{MIN_SIDE})."
        )
    image = downscale(image, max_side)
    png = _encode_png(image)
    while len(png) >= max_bytes:
        if min(image.size) <= MIN_SIDE:
            raise InvalidImageError(f"{name} cannot be made smaller than {max_bytes} bytes.")
        scale = math.sqrt(max_bytes / len(png)) * 0.95
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
        png = _encode_png(image)
    return PreparedImage(png, image, name, hashlib.sha256(png).hexdigest(), original_size)


def check_fit(fit: Any) -> None:
    if fit not in FITS:
        allowed = f"{', '.join(map(repr, FITS[:-1]))} or {FITS[-1]!r}"
        raise InvalidParameterError(f"fit must be {allowed}, not {fit!r}.", param="fit")


def load_image(source: Any, *, draft_side: int | None = None) -> tuple[Image.Image, str]:
    """Decode any supported source into a PIL image and a display name.

    `draft_side` lets JPEG decoding skip detail beyond that size, which makes large
    photos several times faster to load.
    """
    from PIL import Image

    picture, name = getattr(source, "image", None), getattr(source, "name", None)
    if isinstance(picture, Image.Image) and isinstance(name, str):
        return picture.copy(), name  # a decoded picture with its name: a result `response[i]`
    if isinstance(source, Image.Image):
        source.load()
        name = Path(getattr(source, "filename", "") or "image.png").name
        return source.copy(), name
    if type(source).__module__ == "numpy" and type(source).__name__ == "ndarray":
        return _from_array(source), "array.png"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode(bytes(source), "image", draft_side), "image"
    if isinstance(source, (tuple, list, Mapping)) and _looks_like_upload(source):
        content, name = _from_upload(source)
        return _decode(content, name, draft_side), name
    if isinstance(source, Download):
        return _from_download(source, draft_side)
    url = source_url(source)
    if url is not None:
        return _from_download(run_sync(download(url)), draft_side)
    if isinstance(source, (str, os.PathLike)):
        path = Path(os.fspath(source))
        if not path.exists():
            raise InvalidImageError(
                f"no such file: '{path}' (looked in {Path.cwd()}); check the path or spelling."
            )
        if path.is_dir():
            raise InvalidImageError(f"'{path}' is a folder; give the path of an image file in it.")
        return _decode(path.read_bytes(), path.name, draft_side), path.name
    if hasattr(source, "read"):
        content = source.read()
        if isinstance(content, str):
            raise InvalidImageError(
                "the file object was opened in text mode; open it with open(path, 'rb')."
            )
        name = Path(str(getattr(source, "name", "image"))).name
        return _decode(bytes(content), name, draft_side), name
    raise InvalidImageError(
        f"cannot read an image from a {type(source).__name__}; give a path, an http(s) URL, "
        "bytes, a binary file, a PIL image, a numpy array or a FileUpload value."
    )


def source_url(source: Any) -> str | None:
    """The URL that `source` names, if it is one (a string with a scheme, not a file)."""
    if not isinstance(source, (str, os.PathLike)):
        return None
    text = os.fspath(source)
    if not isinstance(text, str) or not _URL_SCHEME.match(text) or os.path.exists(text):
        return None
    return text


def _from_download(fetched: Download, draft_side: int | None) -> tuple[Image.Image, str]:
    name, kind = fetched.name, fetched.content_type
    try:
        return _decode(fetched.content, name, draft_side), name
    except InvalidImageError:
        if not kind or kind.startswith("image/") or kind == "application/octet-stream":
            raise
        raise InvalidImageError(
            f"{fetched.url} answered with {kind}, not an image; give the URL of the image itself."
        ) from None


def _looks_like_upload(value: Any) -> bool:
    """A FileUpload value: a dict with 'content', or a tuple/list of such dicts."""
    if isinstance(value, Mapping):
        return "content" in value
    return all(isinstance(item, Mapping) and "content" in item for item in value)


def _from_upload(value: Any) -> tuple[bytes, str]:
    items = [value] if isinstance(value, Mapping) else list(value)
    if not items:
        raise InvalidImageError("nothing was uploaded; choose an image file first.")
    if len(items) > 1:
        raise InvalidImageError(f"{len(items)} files were uploaded; give one at a time (value[0]).")
    item = items[0]
    return bytes(item["content"]), Path(str(item.get("name") or "upload")).name


def _decode(content: bytes, name: str, draft_side: int | None) -> Image.Image:
    from PIL import Image

    if not content:
        raise InvalidImageError(f"{name} is empty (0 bytes); it holds no image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(content))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise InvalidImageError(
                    f"{name} claims {width}x{height} pixels, more than the "
                    f"{MAX_PIXELS // 1_000_000} megapixel limit; downscale it first."
                )
            if draft_side and image.format == "JPEG":
                image.draft("RGB", (draft_side, draft_side))  # the size shrinks here
            _check_decoded_bytes(image, name)
            image.load()
    except InvalidImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImageError(
            f"{name} is a decompression bomb (its header claims a huge image); refused."
        ) from None
    except Image.UnidentifiedImageError:
        raise InvalidImageError(f"{name}: {_describe_unreadable(content)}") from None
    except Exception as exc:  # Pillow's plugins raise many types on damaged files
        kind = _format_name(content)
        raise InvalidImageError(
            f"{name}: the {kind} data is truncated or damaged ({exc}); re-export the image."
        ) from None
    # EXIF orientation is applied here, so every backend sees the photo upright.
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except Exception as exc:  # the EXIF block is parsed only now (SyntaxError, struct.error...)
        raise InvalidImageError(
            f"{name}: its EXIF metadata is damaged ({exc}); re-save the image without it."
        ) from None


def _check_decoded_bytes(image: Image.Image, name: str) -> None:
    from PIL import ImageMode

    mode = ImageMode.getmode(image.mode)
    per_pixel = len(mode.bands) * int(mode.typestr[-1])  # e.g. "<u2": 2 bytes a sample
    width, height = image.size
    decoded = width * height * per_pixel
    if decoded > MAX_DECODED_BYTES:
        raise InvalidImageError(
            f"{name} would take {decoded / 1e6:.0f} MB decoded ({width}x{height} pixels of "
            f"{per_pixel} bytes, mode {image.mode}), more than the "
            f"{MAX_DECODED_BYTES / 1e6:.0f} MB limit; downscale it first."
        )


def _format_name(content: bytes) -> str:
    if content.startswith(b"\x89PNG"):
        return "PNG"
    if content.startswith(b"\xff\xd8"):
        return "JPEG"
    return "image"


def _describe_unreadable(content: bytes) -> str:
    """Say what the bytes are instead, so the user knows how to convert them."""
    head = content[:512].lstrip()
    if head.startswith(b"%PDF"):
        return "this is a PDF document, not an image; export the page as PNG or JPEG."
    if b"<svg" in head.lower() or (head.startswith(b"<?xml") and b"svg" in head.lower()):
        return "SVG is a vector format; rasterise it to PNG first (e.g. with cairosvg)."
    if content[4:8] == b"ftyp" and content[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
        return "HEIC/HEIF/AVIF pictures are not supported here; convert to PNG or JPEG."
    try:
        head.decode("utf-8")
        return "this is text, not an image; give a PNG, JPEG, WebP or GIF file."
    except UnicodeDecodeError:
        return "not a recognised image format; give a PNG, JPEG, WebP or GIF file."


def _from_array(array: Any) -> Image.Image:
    import numpy as np
    from PIL import Image

    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidImageError(
            f"a numpy image must be HxW, HxWx3 or HxWx4, not shape {array.shape}."
        )
    if array.dtype == np.uint8:
        pixels = array
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise InvalidImageError(
                "a float numpy image must hold finite values in [0, 1]; "
                "divide by 255 or clip it first."
            )
        pixels = np.round(array * 255).astype(np.uint8)
    else:
        raise InvalidImageError(
            f"numpy images of dtype {array.dtype} are not supported; "
            "use uint8 (0-255) or float in [0, 1]."
        )
    return Image.fromarray(np.ascontiguousarray(pixels))


def _to_8bit(image: Image.Image) -> Image.Image:
    """RGB, or RGBA when some pixel is actually transparent."""
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)  # animated: the first frame stands for the picture
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = _scale_wide_greyscale(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        if rgba.getchannel("A").getextrema()[0] < 255:  # type: ignore[operator]
            return rgba
        return rgba.convert("RGB")
    return image.convert("RGB")


def _scale_wide_greyscale(image: Image.Image) -> Image.Image:
    """16-bit and float greyscale to 8 bits by their full range, not by clipping.

    Through a lookup table, or in place in float32: these pictures can be large, and
    float64 temporaries would take several times the decoded size.
    """
    import numpy as np
    from PIL import Image

    values = np.asarray(image)
    if image.mode == "F":
        low, high = float(values.min()), float(values.max())
        scaled = values.astype(np.float32)
        scaled -= low
        scaled *= 255 / max(high - low, 1e-12)
        pixels = np.clip(np.rint(scaled, out=scaled), 0, 255, out=scaled).astype(np.uint8)
    else:
        table = np.round(np.arange(65536) * (255 / 65535)).astype(np.uint8)
        pixels = table[values if values.dtype == np.uint16 else np.clip(values, 0, 65535)]
    return Image.fromarray(pixels)


def _make_square(image: Image.Image, fit: str, name: str) -> Image.Image:
    from PIL import Image, ImageOps

    width, height = image.size
    side = min(width, height)
    if fit == "pad":
        if max(width, height) < MIN_SIDE:
            raise _too_small(name, width, height, "")
        if width == height:
            return image
        background = (0, 0, 0, 0) if image.mode == "RGBA" else _border_colour(image)
        square = Image.new(image.mode, (max(width, height),) * 2, background)
        square.paste(image, ((square.width - width) // 2, (square.height - height) // 2))
        return square
    if side < MIN_SIDE:
        raise _too_small(name, width, height, " Use fit='pad' to pad it instead of cropping.")
    if width == height:
        return image
    if fit == "strict":
        raise InvalidImageError(
            f"{name} is {width}x{height}, not square, and fit='strict' refuses it; "
            "use fit='crop' (centre crop) or fit='pad'."
        )
    return ImageOps.fit(image, (side, side), method=Image.Resampling.BICUBIC)


def _too_small(name: str, width: int, height: int, hint: str) -> InvalidImageError:
    return InvalidImageError(
        f"{name} is {width}x{height} pixels: too small to vary "
        f"(at least {MIN_SIDE}x{MIN_SIDE} after making it square).{hint}"
    )


def _border_colour(image: Image.Image) -> tuple[int, ...]:
    """The mean colour of the picture's edge, so padding reads as background."""
    from PIL import ImageStat

    width, height = image.size
    rows = [(0, 0, width, 1), (0, height - 1, width, height)]  # top, bottom
    columns = [(0, 0, 1, height), (width - 1, 0, width, height)]  # left, right
    means = [ImageStat.Stat(image.crop(box)).mean for box in rows + columns]
    return tuple(round(sum(channel) / len(means)) for channel in zip(*means, strict=True))


def downscale(image: Image.Image, max_side: int, *, reducing_gap: float = 3.0) -> Image.Image:
    """`image` scaled to at most `max_side` on its long side; never enlarged."""
    from PIL import Image

    if max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=reducing_gap)


def _encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    # Level 1 is several times faster than the default and only ~10% larger for photos.
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
