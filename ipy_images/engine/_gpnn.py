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
NOISE = 1.0
"""Std of the Gaussian noise added to the coarsest level (pixels in [0, 1]) at diversity 1."""
COARSEST = 16
"""Side of the coarsest level at diversity <= 1 (a 256 px image then has 11 levels)."""
MIN_COARSEST = 12
"""Side of the coarsest level at diversity >= 1.8."""
CHECK_SIZE = 48
"""The near-copy check runs after the first level at least this large."""
COPY_LIMIT = 0.6
"""A draw whose largest rigidly shifted region covers more than this share is a near-copy."""
REDRAWS = 4
"""Re-draws allowed after near-copies, each with NOISE_STEP times more noise."""
NOISE_STEP = 1.6


@dataclass(frozen=True)
class Settings:
    """What a diversity value means for the generator."""

    noise: float
    coarsest: int

    @classmethod
    def for_diversity(cls, diversity: float) -> Settings:
        """Noise grows with diversity (1.0 = default); above 1 the coarsest level shrinks too.

        A smaller coarsest level lets each patch carry more of the picture, so whole
        objects move and repeat; a larger one (tried for low diversity) only smears them,
        so it stays at COARSEST there.
        """
        coarsest = max(MIN_COARSEST, min(COARSEST, round(COARSEST / diversity**0.5)))
        return cls(noise=NOISE * diversity, coarsest=coarsest)


def pyramid_sizes(size: int, coarsest: int) -> list[int]:
    """Square level sizes from ``size`` down to about ``coarsest`` (finest first)."""
    depth = max(0, round(math.log(coarsest / size) / math.log(RATIO)))
    return [max(PATCH + 1, round(size * RATIO**k)) for k in range(depth + 1)]


def rounds(level_size: int, *, coarsest: bool) -> int:
    """Replace-and-average rounds at a level: one on the noise (more would pull it back to
    the source), several where they are cheap, one at the fine levels, which start from the
    coarser level's patch choices and only need to settle the detail."""
    if coarsest:
        return 1
    return 4 if level_size <= 64 else 1


def copy_fraction(nnf: np.ndarray, grid: int) -> float:
    """Share of the patch grid (grid x grid) that follows its most common shift, +-1 px."""
    sy, sx = np.divmod(nnf, grid)
    oy, ox = np.divmod(np.arange(grid * grid), grid)
    span = 2 * grid + 1
    codes = (sy - oy + grid) * span + (sx - ox + grid)
    hist = np.bincount(codes, minlength=span * span).reshape(span, span)
    padded = np.pad(hist, 1)
    near = np.sum([padded[a : a + span, b : b + span] for a in range(3) for b in range(3)], axis=0)
    return float(near.max()) / (grid * grid)


@dataclass(frozen=True)
class Result:
    """A generated image, its finest-level NNF and how many near-copies were re-drawn."""

    image: np.ndarray
    nnf: np.ndarray
    redraws: int


def synthesize(
    source: np.ndarray,
    settings: Settings,
    rng: np.random.Generator,
    check_cancel: Callable[[], None],
) -> Result:
    """A new image the size of ``source`` (square float RGB, side >= 2 * PATCH)."""
    sizes = pyramid_sizes(source.shape[0], settings.coarsest)
    levels = [resize(source, s, s) for s in sizes]
    # The finest level checked for near-copies: the coarsest one at least CHECK_SIZE wide.
    check_level = max(k for k, s in enumerate(sizes) if s >= min(CHECK_SIZE, sizes[0]))
    indexes: dict[int, PatchIndex] = {}  # per level, shared by the re-draws
    noise, redraws = settings.noise, 0
    while True:
        start = levels[-1] + noise * rng.standard_normal(levels[-1].shape, dtype=np.float32)
        checked = check_level if redraws < REDRAWS else None
        drawn = _run_levels(levels, indexes, start, check_cancel, checked)
        if drawn is not None:
            return Result(drawn[0], drawn[1], redraws)
        noise, redraws = noise * NOISE_STEP, redraws + 1


def _run_levels(
    levels: list[np.ndarray],
    indexes: dict[int, PatchIndex],
    start: np.ndarray,
    check_cancel: Callable[[], None],
    check_level: int | None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Coarse-to-fine PNN from ``start``: the image and NNF, or None for a near-copy.

    Each level after the coarsest starts from the coarser level's patch choices carried
    up (NNF upsampling), which gives a sharp estimate, then refines it with searches.
    """
    estimate = start
    nnf: np.ndarray | None = None
    for k in range(len(levels) - 1, -1, -1):
        check_cancel()
        target = levels[k]
        size = target.shape[0]
        grid = size - PATCH + 1
        if k not in indexes:
            indexes[k] = PatchIndex(extract(target, PATCH))
        if nnf is not None:
            nnf = upsample_nnf(nnf, grid, PATCH)
            estimate = vote(target, nnf, PATCH)
        for _ in range(rounds(size, coarsest=nnf is None)):
            nnf = indexes[k].nearest(extract(estimate, PATCH)).reshape(grid, grid)
            estimate = vote(target, nnf, PATCH)
        if k == check_level and nnf is not None and copy_fraction(nnf.ravel(), grid) > COPY_LIMIT:
            return None
    assert nnf is not None
    return estimate, nnf
