"""Neighbours' shifts offered to each patch (the propagation step of PatchMatch, Barnes et
al. 2009), in a dense texture.

The nearest-patch search answers each output patch on its own. Where two regions copied
from different places of a texture meet (grass, gravel, pebbles), neighbouring patches
pick unrelated source patches, their average is a smooth smear, and the next search,
asked for that smear, picks the smoothest source patches, which keeps it: the samples
had blobs of blur the size of several pebbles. Here each patch is also offered its
neighbours' shifts (a neighbour's source patch, moved by the step between them), from
JUMPS pixels away, and takes one that matches nearly as well as the search's answer.
Regions copied whole then grow into the smear from both sides and meet at a seam a few
pixels wide.

Pictures with a layout do not take this: over the 5 photos that start by seams it
lowered the worst-patch figure by a tenth for 44% more time (coffee's and the
astronaut's samples took over the 2 s the engine keeps to), and the eye found only a few
small details sharper; their smears come from the seams' stretching, not from copied
regions meeting.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._patches import extract

JUMPS = (8, 4, 2, 1)
"""Distances in pixels from which a neighbour's shift is offered, longest first, so a
copied region can grow 15 px across a smear in one pass."""
PASSES = 2
"""Passes over all the JUMPS: a patch that took a shift in the first passes it on in the
second."""
TOLERANCE = 1.0
"""A neighbour's shift is taken when its patch is at most 1 + TOLERANCE times as far from
the query (squared distance) as the search's answer."""
STEPS = tuple(
    (dy * jump, dx * jump) for jump in JUMPS for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0))
)


def propagate(
    level: np.ndarray,
    queries: np.ndarray,
    found: np.ndarray,
    offered: np.ndarray,
    check_cancel: Callable[[], None],
    patch: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The search's answer ``found`` (each query's patch of ``level``, by index, the output
    and ``level`` the same size) with neighbours' shifts taken where they match nearly as
    well (see TOLERANCE), and every query's squared distance to its patch. ``offered``
    (bool, one per patch of ``level``) says which patches may be taken."""
    keys = extract(level, patch)
    grid = level.shape[0] - patch + 1
    chosen = found.reshape(grid, grid).copy()
    distances = squared(keys, queries, found)
    limit = (1.0 + TOLERANCE) * distances
    moved = np.zeros(grid * grid, bool)
    for _ in range(PASSES):
        for dy, dx in STEPS:
            check_cancel()
            candidates = neighbours_shift(chosen, dy, dx).ravel()
            where = np.flatnonzero(candidates >= 0)
            where = where[offered[candidates[where]] & (candidates[where] != chosen.ravel()[where])]
            near = squared(keys, queries[where], candidates[where])
            # A patch moved already takes a further shift only if it is nearer still.
            better = (near <= limit[where]) & (~moved[where] | (near < distances[where]))
            taken = where[better]
            chosen.ravel()[taken] = candidates[taken]
            distances[taken] = near[better]
            moved[taken] = True
    return chosen.ravel(), distances


def neighbours_shift(chosen: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """For each patch of the ``chosen`` grid, the source patch its neighbour ``(dy, dx)``
    back would give it, keeping that neighbour's shift; -1 where none is in the grid."""
    grid = chosen.shape[0]
    rows, cols = np.divmod(chosen, grid)
    candidate = np.full((grid, grid), -1, np.int64)
    to_y, from_y = _overlap(dy, grid)
    to_x, from_x = _overlap(dx, grid)
    y = rows[from_y, from_x] + dy
    x = cols[from_y, from_x] + dx
    inside = (y >= 0) & (y < grid) & (x >= 0) & (x < grid)
    candidate[to_y, to_x] = np.where(inside, y * grid + x, -1)
    return candidate


def _overlap(step: int, grid: int) -> tuple[slice, slice]:
    """The patches that have a neighbour ``step`` back along one axis, and those neighbours."""
    if step >= 0:
        return slice(step, grid), slice(0, grid - step)
    return slice(0, grid + step), slice(-step, grid)


def squared(keys: np.ndarray, queries: np.ndarray, picked: np.ndarray) -> np.ndarray:
    """Each query's squared distance to its ``picked`` key."""
    difference = keys[picked] - queries
    return np.einsum("ij,ij->i", difference, difference)
