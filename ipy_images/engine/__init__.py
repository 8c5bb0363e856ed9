"""The local variation engine: new pictures from one picture, on this machine, no model.

It implements GPNN (Granot et al., "Drop the GAN: In Defense of Patches Nearest Neighbors
as Single Image Generative Models", CVPR 2022) with numpy and faiss: the output keeps the
subject, colours and textures of the input while its arrangement and details change.

Each sample is generated at a working resolution of 256 x 256; larger sizes re-apply the
patch choices found there to the input at the larger size (nearest-neighbour-field
upsampling), so they are sharp rather than interpolated.

Threads: a call uses one core (faiss is set to one OpenMP thread in the calling thread and
the numpy work releases the GIL), so run two calls on two threads to use two cores.
Transparency is not generated: RGBA input is composited over white first.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["SIZES", "EngineCancelled", "generate_variation"]

SIZES = (256, 512, 1024)
"""Output sizes the engine makes (square)."""
WORK_SIZE = 256
"""Resolution the generator works at; larger outputs are upsampled from its result."""
MIN_INPUT = 16
"""Smallest input side accepted (it is resized to WORK_SIZE)."""
MAX_DIVERSITY = 4.0


class EngineCancelled(Exception):
    """Generation stopped because the caller's cancel event was set."""


def generate_variation(
    image: Image.Image,
    *,
    size: int,
    seed: int,
    index: int = 0,
    diversity: float = 1.0,
    cancel: threading.Event | None = None,
) -> Image.Image:
    """One variation of ``image`` (RGB, square) as an RGB PIL image of ``size`` x ``size``.

    ``size`` is 256, 512 or 1024. ``seed`` and ``index`` (the sample's place in its
    request) name the random stream together, so the same pair gives the same picture and
    different pairs, such as (s, 1) and (s + 1, 0), give unrelated ones.

    ``diversity`` in (0, 4] sets how far the picture departs from the input. Below 1 the
    layout is kept: the input is warped smoothly by a few pixels (about 2% of the side at
    0.5) and redrawn from its own patches, so shapes shift slightly and faces stay whole;
    in a picture with a plain region (a sky) its parts are moved a little along seams
    instead (a tenth of the side at 0.5), so that thin things standing there (towers, a
    rocket) stay upright and whole.
    From 1 (the default) up, a picture with a layout has its parts moved apart or together
    along seams of least detail: the same subject, whole and once, in a new arrangement,
    with a shape widened or narrowed (a cup's rim may come out wavy); where the picture has
    wide plain parts (a sky), they move further. From 2 up the parts are moved again (twice
    at 2, three times at 3), so shapes change more (at 2 a cup comes out wider, its rim
    wavier; from 3 it keeps its width, but its rim may come out pointed), and one sample
    in four at 2, one in two from 3, comes out mirrored left to right (``seed + index``
    decides which). A fundus photo (small things on a plain field inside a round frame)
    is turned a little about its middle and gently warped from 1 up, so its optic disc
    and macula move, whole and once; from 2 up one sample in four, from 3 one in two, is
    mirrored too, a right eye for a left. A texture or a sparse picture (a starfield) is
    re-composed from a coarse level instead, at every value from 1: its parts move
    further, change size and shape, and more of it is re-invented as the value rises.
    Small things on a plain background (a starfield) stay spread over the whole picture at
    every value. A dense texture (grass, gravel, pebbles) comes out re-arranged with
    narrow seams where its copied parts meet, not smooth blurs.
    From 1 up, a draw that comes out nearly identical to the input is re-drawn with a
    stronger start (more seams, or a stronger warp). At every value, a frame around the
    picture (a margin of one colour joined to the border all round: a fundus photo's black
    corners, a scan's white margin) stays in place and only the inside varies (in a
    mirrored sample, the frame is mirrored with it).

    Raises EngineCancelled when ``cancel`` is set (checked every few milliseconds of work)
    and ValueError for invalid arguments.
    """
    _validate(image, size, seed, index, diversity, cancel)
    import faiss
    import numpy as np

    from ._gpnn import PATCH, synthesize
    from ._patches import resize, upsample_nnf, vote

    def check_cancel() -> None:
        if cancel is not None and cancel.is_set():
            raise EngineCancelled("variation cancelled")

    faiss.omp_set_num_threads(1)  # per calling thread: two workers use two cores, no contention
    pixels = np.asarray(_to_rgb(image), dtype=np.float32) / 255.0
    source = resize(pixels, WORK_SIZE, WORK_SIZE)
    result = synthesize(
        source,
        diversity,
        np.random.default_rng(np.random.SeedSequence([seed, index])),
        check_cancel,
        place=seed + index,
    )
    check_cancel()
    if size == WORK_SIZE:
        out = result.image
    else:
        nnf = upsample_nnf(result.nnf, size - PATCH + 1, PATCH)
        out = vote(
            resize(pixels, size, size), nnf, PATCH, check_cancel=check_cancel, centre=result.centre
        )
    return _to_pil(out[:, ::-1] if result.mirrored else out)


def _validate(
    image: object, size: object, seed: object, index: object, diversity: object, cancel: object
) -> None:
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise ValueError(f"image must be a PIL image, not {type(image).__name__}")
    width, height = image.size
    if width != height:
        raise ValueError(f"image must be square, got {width}x{height}")
    if width < MIN_INPUT:
        raise ValueError(f"image must be at least {MIN_INPUT}x{MIN_INPUT}, got {width}x{height}")
    if isinstance(size, bool) or size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(map(str, SIZES))}, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"index must be a non-negative integer, got {index!r}")
    if (
        isinstance(diversity, bool)
        or not isinstance(diversity, (int, float))
        or not math.isfinite(diversity)
        or not 0 < diversity <= MAX_DIVERSITY
    ):
        raise ValueError(f"diversity must be a number in (0, {MAX_DIVERSITY:g}], got {diversity!r}")
    if cancel is not None and not callable(getattr(cancel, "is_set", None)):
        raise ValueError("cancel must be a threading.Event or None")


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels; transparent images are composited over white (alpha is not generated)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _to_pil(pixels: object) -> Image.Image:
    import numpy as np
    from PIL import Image

    array = np.clip(np.rint(np.asarray(pixels) * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(array, mode="RGB")
