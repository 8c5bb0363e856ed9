"""Patch choices at the coarsest level that show each part of the source at one place.

At the coarsest level (14 px at the 256 px working size) a 7x7 patch covers half the
picture, so about half of the source's 64 patches contain its subject. Two output patches
that pick two of them at offsets far apart draw the subject twice (two astronauts, four
cat eyes), and the finer levels only sharpen that layout (docs/engine/astronaut-levels.png).

Here the output patches choose one at a time, the best matched first. Each takes the
nearest of its CANDIDATES nearest source patches none of whose pixels an earlier choice
already shows at an offset more than FAR of the side away from its own; when every
candidate clashes, the one that clashes on the fewest pixels. The best-matched copy of a
subject keeps it, so the subject is shown once rather than dropped. (Letting each pixel's
most common offset win instead, each pixel deciding alone, as tried before, left 4 of 8
astronaut samples with no face.)

A picture whose layout is a texture (a starfield, see is_texture) should keep plain nearest
neighbours: its repeats are what it is made of, and forbidding them leaves empty regions.
"""

from __future__ import annotations

import numpy as np

from ._patches import extract, resize
from ._search import squared_distances

FAR = 0.2
"""Offsets (share of the side) further apart than this show a source pixel twice."""
CANDIDATES = 16
"""Nearest source patches an output patch may choose from."""
TEXTURE = 0.25
"""A layout is a texture when its 4x4 block means vary less than this share of its pixels."""


def exclusive_nearest(
    level: np.ndarray, queries: np.ndarray, patch: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each query (one ``patch`` x ``patch`` patch per row, row-major over the square
    output grid), a source patch of ``level`` (its index) and the squared distance to it,
    chosen so that no source pixel is shown at two offsets far apart."""
    keys = extract(level, patch)
    distances = squared_distances(queries, keys)
    found = np.argmin(distances, axis=1)
    side = level.shape[0]
    grid = side - patch + 1
    far = max(1, round(FAR * side))
    shown = np.zeros((side, side), bool)
    offsets = np.zeros((side, side, 2), np.int64)  # output origin minus source origin
    best = distances[np.arange(len(found)), found]
    for query in np.argsort(best, kind="stable"):
        origin = np.array(divmod(int(query), grid))
        fewest: tuple[int, int, tuple[slice, slice], np.ndarray] | None = None
        for candidate in np.argsort(distances[query], kind="stable")[:CANDIDATES]:
            corner = np.array(divmod(int(candidate), grid))
            window = np.s_[corner[0] : corner[0] + patch, corner[1] : corner[1] + patch]
            offset = origin - corner
            apart = np.abs(offsets[window] - offset).max(axis=-1) > far
            clashes = int(np.count_nonzero(apart & shown[window]))
            if fewest is None or clashes < fewest[0]:
                fewest = (clashes, int(candidate), window, offset)
            if clashes == 0:
                break
        assert fewest is not None  # CANDIDATES >= 1, so every query saw a candidate
        _, found[query], window, offset = fewest
        offsets[window][~shown[window]] = offset
        shown[window] = True
    return found, distances[np.arange(len(found)), found]


def is_texture(level: np.ndarray) -> bool:
    """Whether the picture's large-scale layout varies little against its detail (a flat
    picture counts as a texture: it has nothing to show twice)."""
    blocks = resize(level, 4, 4).var(axis=(0, 1)).sum()
    return bool(blocks <= TEXTURE * level.var(axis=(0, 1)).sum())
