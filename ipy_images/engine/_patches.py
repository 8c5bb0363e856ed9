"""Image and patch primitives of the engine: resizing, patch extraction and comparison,
patch voting, window means.

Images are float32 arrays of shape (height, width, 3) with values in [0, 1]. A patch is
named by its top-left pixel; a nearest-neighbour field (NNF) gives, for each output patch,
the row-major index of a source patch among all the source's patch origins.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

COMPARED_ROWS = 2048
"""Rows changed_rows compares at a time (2,048 patches of 7x7x3 values: 1.2 MB)."""


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize of a float image, antialiased when shrinking (Pillow releases the GIL)."""
    if image.shape[:2] == (height, width):
        return image
    bicubic = Image.Resampling.BICUBIC
    channels = [
        np.asarray(Image.fromarray(image[..., c], mode="F").resize((width, height), bicubic))
        for c in range(image.shape[2])
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0)


def extract(image: np.ndarray, patch: int) -> np.ndarray:
    """All ``patch`` x ``patch`` patches, one row each (row-major by origin), as float32."""
    windows = sliding_window_view(image, (patch, patch), axis=(0, 1))
    return np.ascontiguousarray(windows.reshape(-1, image.shape[2] * patch * patch))


def patches_at(image: np.ndarray, origins: np.ndarray, patch: int) -> np.ndarray:
    """The ``patch`` x ``patch`` patches of ``image`` named by ``origins`` (row-major
    indexes, as an NNF gives them), one row each, as extract lays them out: gathered
    directly, not picked from all of them (at 256 px, all 62,500 patches are 37 MB)."""
    rows, columns = np.divmod(origins, image.shape[1] - patch + 1)
    windows = sliding_window_view(image, (patch, patch), axis=(0, 1))
    return windows[rows, columns].reshape(len(origins), image.shape[2] * patch * patch)


def changed_rows(rows: np.ndarray, before: np.ndarray, tolerance: float) -> np.ndarray:
    """The indexes of the ``rows`` (one patch each) that differ from their counterparts in
    ``before`` by ``tolerance`` or more in any value. Compared a block of rows at a time,
    which stays in the processor's cache: at once, 256 px's 62,500 patches took about
    twice as long, most of it writing and reading two arrays of their size."""
    largest = np.empty(len(rows), rows.dtype)
    block = np.empty((min(COMPARED_ROWS, len(rows)), rows.shape[1]), rows.dtype)
    for start in range(0, len(rows), COMPARED_ROWS):
        span = slice(start, start + COMPARED_ROWS)
        difference = block[: len(rows[span])]
        np.subtract(rows[span], before[span], out=difference)
        np.abs(difference, out=difference)
        difference.max(axis=1, out=largest[span])
    return np.flatnonzero(largest >= tolerance)


def vote(
    source: np.ndarray,
    nnf: np.ndarray,
    patch: int,
    weights: np.ndarray | None = None,
    check_cancel: Callable[[], None] | None = None,
    *,
    centre: float | None = None,
) -> np.ndarray:
    """Weighted average of the source patches the NNF picks, each pasted at its output origin.

    ``nnf`` is a (rows, cols) grid of patch indices into ``source``; ``weights`` (same
    shape, default all ones) says how much each patch counts, so a badly matching patch
    blurs a region boundary less. With ``centre`` (a std in pixels), a patch's pixels also
    count less the further they are from its centre (a Gaussian), so each pixel is taken
    mostly from the patches centred near it. The result has ``rows + patch - 1`` x
    ``cols + patch - 1`` pixels. ``check_cancel`` runs once per patch row (large outputs
    take a while).
    """
    rows, cols = nnf.shape
    width = source.shape[1]
    flat = source.reshape(-1, source.shape[2])
    sy, sx = np.divmod(nnf, width - patch + 1)
    origin = sy * width + sx
    # A plain mean (a larger output's final vote, 49 passes over a 1024 px picture) skips
    # the multiplies: about 15% of that vote's time.
    plain = weights is None and centre is None
    w = np.float32(1.0) if weights is None else weights.astype(np.float32)[..., None]
    falloff = np.ones((patch, patch), np.float32)
    if centre is not None:
        offsets = np.arange(patch) - (patch - 1) / 2
        falloff = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * centre**2))
    acc = np.zeros((rows + patch - 1, cols + patch - 1, source.shape[2]), np.float32)
    total = np.zeros((rows + patch - 1, cols + patch - 1, 1), np.float32)
    for dy in range(patch):
        if check_cancel is not None:
            check_cancel()
        for dx in range(patch):
            picked = np.take(flat, origin + dy * width + dx, axis=0)
            if plain:
                acc[dy : dy + rows, dx : dx + cols] += picked
                total[dy : dy + rows, dx : dx + cols] += 1.0
                continue
            wp = w * np.float32(falloff[dy, dx])
            acc[dy : dy + rows, dx : dx + cols] += picked * wp
            total[dy : dy + rows, dx : dx + cols] += wp
    return acc / total


def vote_spread(
    source: np.ndarray, nnf: np.ndarray, patch: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """How much the source patches that ``vote`` would average disagree at each pixel: the
    root mean square over the channels of the weighted std of the values they give it (0
    where they all agree; arguments as vote's). One plain vote of the source beside its
    square."""
    channels = source.shape[2]
    both = vote(np.concatenate([source, source**2], axis=-1), nnf, patch, weights)
    variance = np.maximum(both[..., channels:] - both[..., :channels] ** 2, 0.0)
    return np.sqrt(variance.mean(axis=-1))


def window_mean(values: np.ndarray, side: int) -> np.ndarray:
    """Each value's mean over the square of ``side`` (odd) around it in the last two axes,
    the outermost values repeated beyond the border; from a summed-area table, four lookups
    per value rather than side**2 additions."""
    half = side // 2
    before = [(0, 0)] * (values.ndim - 2)
    padded = np.pad(values, before + [(half, half)] * 2, mode="edge").astype(np.float64)
    table = np.pad(padded.cumsum(axis=-2).cumsum(axis=-1), before + [(1, 0)] * 2)
    sums = (
        table[..., side:, side:]
        - table[..., :-side, side:]
        - table[..., side:, :-side]
        + table[..., :-side, :-side]
    )
    return (sums / side**2).astype(np.float32)


def upsample_nnf(nnf: np.ndarray, grid: int, patch: int) -> np.ndarray:
    """A square NNF (output and source the same size) carried to a ``grid`` x ``grid`` one.

    Each patch keeps the shift (source origin minus own origin) of its counterpart in the
    smaller field, scaled, so regions copied rigidly stay rigid copies at the new size.
    """
    small = nnf.shape[0]
    factor = (grid + patch - 1) / (small + patch - 1)  # ratio of the image sizes
    pos = np.minimum((np.arange(grid) / factor).astype(np.int64), small - 1)
    sy, sx = np.divmod(nnf[np.ix_(pos, pos)], small)
    own = np.arange(grid)
    ty = np.rint((sy - pos[:, None]) * factor).astype(np.int64) + own[:, None]
    tx = np.rint((sx - pos[None, :]) * factor).astype(np.int64) + own[None, :]
    return np.clip(ty, 0, grid - 1) * grid + np.clip(tx, 0, grid - 1)


def align_border(nnf: np.ndarray, source: np.ndarray, guide: np.ndarray, patch: int) -> np.ndarray:
    """``nnf`` (a square field, output and source the same size, as upsample_nnf makes) with
    each patch on its outer ring moved, by at most 1 px each way, to the source patch
    nearest ``guide`` there: the coarser level's picture, enlarged.

    Carried up a level, a copied region's shift is scaled and rounded, so the region moves
    by up to half a pixel from where the coarser level had it. Inside the picture the next
    search puts that right; a pixel on the border, covered by 7 patches instead of 49, shows
    what lay just outside it: a shape there crept in as a 1 px sliver, which the searches
    kept (its patches are the shape's own edge) and each finer level darkened (a blue tick
    on the edge of 4 of a logo's 16 samples, seeds 0-3).
    """
    grid = nnf.shape[0]
    ring = np.ones((grid, grid), bool)
    ring[1:-1, 1:-1] = False
    rows, cols = np.nonzero(ring)
    wanted = _windows(guide, rows, cols, patch)
    source_rows, source_cols = np.divmod(nnf[rows, cols], grid)
    # The carried choice first, so that it stays on a tie.
    steps = [(0, 0)] + [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    tried_rows = np.stack([np.clip(source_rows + dy, 0, grid - 1) for dy, _ in steps])
    tried_cols = np.stack([np.clip(source_cols + dx, 0, grid - 1) for _, dx in steps])
    distances = np.stack(
        [
            ((_windows(source, r, c, patch) - wanted) ** 2).sum(axis=1)
            for r, c in zip(tried_rows, tried_cols, strict=True)
        ]
    )
    best = np.argmin(distances, axis=0)
    along = np.arange(len(rows))
    aligned = nnf.copy()
    aligned[rows, cols] = tried_rows[best, along] * grid + tried_cols[best, along]
    return aligned


def _windows(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, patch: int) -> np.ndarray:
    """The ``patch`` x ``patch`` patches of ``image`` at the given origins, one row each."""
    offsets = np.arange(patch)
    picked = image[rows[:, None, None] + offsets[:, None], cols[:, None, None] + offsets]
    return picked.reshape(len(rows), -1)
