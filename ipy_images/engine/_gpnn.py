"""Generative patch nearest neighbours (GPNN, Granot et al., CVPR 2022), our implementation.

The source is turned into a pyramid (ratio 0.75). At the coarsest level noise is added to
the source, which scrambles its layout; then, level by level towards the finest, every
7x7 patch of the current estimate is replaced by its nearest source patch and overlapping
patches are averaged, a few times per level. The coarse levels decide the arrangement, the
fine levels restore sharp detail, so every output patch comes from the source (coherence)
while the layout is new (diversity).

Plain GPNN sometimes lets the noise wash out and rebuilds the source almost unchanged. We
measure that at a middle level (how much of the output is one rigid shift of the source)
and re-draw with stronger noise, which costs only the cheap coarse levels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._patches import extract, resize, upsample_nnf, vote
from ._search import PatchIndex

PATCH = 7
RATIO = 0.75
CHECK_SIZE = 48
"""The near-copy check runs after the first level at least this large."""
COPY_LIMIT = 0.5
"""A result whose largest rigidly shifted region covers more than this is a near-copy."""
REDRAWS = 4
NOISE_STEP = 1.6
NOISE = 1.0
COARSEST = 16


@dataclass(frozen=True)
class Settings:
    """What a diversity value means for the generator."""

    noise: float
    coarsest: int

    @classmethod
    def for_diversity(cls, diversity: float) -> Settings:
        """Noise grows and the coarsest level shrinks as diversity grows (1.0 = default)."""
        return cls(noise=NOISE * diversity, coarsest=COARSEST)


def pyramid_sizes(size: int, coarsest: int) -> list[int]:
    """Square level sizes from ``size`` down to about ``coarsest`` (finest first)."""
    depth = max(0, round(math.log(coarsest / size) / math.log(RATIO)))
    return [max(PATCH + 1, round(size * RATIO**k)) for k in range(depth + 1)]


def rounds(level_size: int, *, coarsest: bool) -> int:
    """Replace-and-average rounds at a level: one on the noise (more would pull it back to
    the source), many where they are cheap, few at the fine levels."""
    if coarsest:
        return 1
    if level_size <= 64:
        return 4
    return 2 if level_size <= 128 else 1


def copy_fraction(nnf: np.ndarray, grid: int) -> float:
    """Share of the patch grid (grid x grid) that follows its most common shift, +-1 px."""
    sy, sx = np.divmod(nnf, grid)
    oy, ox = np.divmod(np.arange(grid * grid), grid)
    span = 2 * grid + 1
    codes = (sy - oy + grid) * span + (sx - ox + grid)
    hist = np.bincount(codes, minlength=span * span).reshape(span, span)
    padded = np.pad(hist, 1)
    near = sum(padded[a : a + span, b : b + span] for a in range(3) for b in range(3))
    return float(near.max()) / (grid * grid)


@dataclass
class Result:
    image: np.ndarray
    nnf: np.ndarray
    redraws: int


def synthesize(
    source: np.ndarray,
    settings: Settings,
    rng: np.random.Generator,
    check_cancel: Callable[[], None],
) -> Result:
    """A new image the size of ``source`` (square float RGB) and its finest-level NNF."""
    sizes = pyramid_sizes(source.shape[0], settings.coarsest)
    levels = [resize(source, s, s) for s in sizes]
    noise = settings.noise
    for redraw in range(REDRAWS + 1):
        coarse = levels[-1] + noise * rng.standard_normal(levels[-1].shape, dtype=np.float32)
        image, nnf, copied = _run_levels(levels, coarse, check_cancel, stop_if_copy=redraw < REDRAWS)
        if not copied:
            return Result(image, nnf, redraw)
        noise *= NOISE_STEP
    raise AssertionError("unreachable: the last draw is never stopped")


def _run_levels(
    levels: list[np.ndarray],
    start: np.ndarray,
    check_cancel: Callable[[], None],
    *,
    stop_if_copy: bool,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Coarse-to-fine PNN; returns early with ``copied`` True when the check fails.

    Each level after the coarsest starts from the coarser level's patch choices carried
    up (NNF upsampling), which gives a sharp estimate, then refines it with searches.
    """
    checked = False
    estimate = start
    nnf: np.ndarray | None = None
    for k in range(len(levels) - 1, -1, -1):
        check_cancel()
        target = levels[k]
        size = target.shape[0]
        grid = size - PATCH + 1
        index = PatchIndex(extract(target, PATCH))
        if nnf is not None:
            nnf = upsample_nnf(nnf, grid)
            estimate = vote(target, nnf, PATCH)
        for _ in range(rounds(size, coarsest=nnf is None)):
            nnf = index.nearest(extract(estimate, PATCH)).reshape(grid, grid)
            estimate = vote(target, nnf, PATCH)
        if stop_if_copy and not checked and size >= CHECK_SIZE:
            checked = True
            if copy_fraction(nnf.ravel(), grid) > COPY_LIMIT:
                return estimate, nnf, True
    return estimate, nnf, False
