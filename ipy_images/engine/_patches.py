"""Image and patch primitives of the engine: resizing, patch extraction, patch voting.

Images are float32 arrays of shape (height, width, 3) with values in [0, 1]. A patch is
named by its top-left pixel; a nearest-neighbour field (NNF) gives, for each output patch,
the row-major index of a source patch among all the source's patch origins.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize of a float image, antialiased when shrinking (Pillow releases the GIL)."""
    if image.shape[:2] == (height, width):
        return image
    channels = [
        np.asarray(Image.fromarray(image[..., c], mode="F").resize((width, height), Image.BICUBIC))
        for c in range(image.shape[2])
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0)


def extract(image: np.ndarray, patch: int) -> np.ndarray:
    """All ``patch`` x ``patch`` patches, one row each (row-major by origin), as float32."""
    windows = sliding_window_view(image, (patch, patch), axis=(0, 1))
    return np.ascontiguousarray(windows.reshape(-1, image.shape[2] * patch * patch))


def vote(
    source: np.ndarray,
    nnf: np.ndarray,
    grid: tuple[int, int],
    patch: int,
    scale: int = 1,
) -> np.ndarray:
    """Average of the source patches the NNF picks, each pasted at its output origin.

    ``nnf`` holds, for each origin of the output patch grid ``grid`` (rows, cols), the index
    of a patch of a source image ``scale`` times smaller than ``source``, counted row-major
    over that image's patch origins.
    With ``scale`` > 1 the field found at low resolution is applied to a ``scale`` times
    larger ``source``: each patch becomes a ``patch * scale`` block copied from the matching
    place, so the result is sharp at the larger size (NNF upsampling) instead of blurred.
    """
    rows, cols = grid
    src_h, src_w = source.shape[0], source.shape[1]
    key_cols = src_w // scale - patch + 1
    out_h, out_w = (rows + patch - 1) * scale, (cols + patch - 1) * scale
    flat = source.reshape(-1, source.shape[2])
    sy, sx = np.divmod(nnf.reshape(rows, cols).astype(np.int64), key_cols)
    # Offset of each pixel inside its scale x scale block, as a flat index into `source`.
    by, bx = np.divmod(np.arange(scale * scale), scale)
    block = (by * src_w + bx).reshape(scale, scale)
    acc = np.zeros((out_h, out_w, source.shape[2]), np.float32)
    for dy in range(patch):
        for dx in range(patch):
            base = (scale * (sy + dy)) * src_w + scale * (sx + dx)
            if scale > 1:
                base = (base[:, None, :, None] + block[None, :, None, :]).reshape(
                    rows * scale, cols * scale
                )
            y0, x0 = dy * scale, dx * scale
            acc[y0 : y0 + rows * scale, x0 : x0 + cols * scale] += np.take(flat, base, axis=0)
    return acc / _coverage(rows, cols, patch, scale)[..., None]


def _coverage(rows: int, cols: int, patch: int, scale: int) -> np.ndarray:
    """How many voted patches cover each output pixel."""
    ones_y = np.convolve(np.ones(rows), np.ones(patch))
    ones_x = np.convolve(np.ones(cols), np.ones(patch))
    counts = np.outer(np.repeat(ones_y, scale), np.repeat(ones_x, scale))
    return counts.astype(np.float32)
