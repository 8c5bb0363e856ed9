"""A start that moves the parts of a picture apart or together along seams.

Seam carving (Avidan and Shamir, 2007) removes a column of pixels one pixel per row along
the path of least contrast, so the parts on either side close up without being cut. Here
a number of seams are removed where a random smooth profile across the picture is low,
and as many inserted (each a blend of the two columns it sits between) where it is high,
sideways and then, fewer, up and down: the parts in between move by up to that many
pixels, a face or a cup stays whole, and nothing is shown twice. The patch search of the
finer levels then redraws the seams' surroundings from the source's own patches. Each
start also says how far its detail moved, so that of several the one that changed the
picture most can be kept (see _gpnn.seams_start).

This is the start from diversity 1 up to 2 in a picture with a layout (see
_gpnn.Settings.for_diversity); re-composing from the coarsest level instead drew subjects
twice and cut objects (two astronauts, four cat eyes, cups cut in half).
"""

from __future__ import annotations

import numpy as np

BIAS = 0.25
"""Weight of the random profile against the picture's mean contrast: with less, seams keep
to the same plainest regions in every sample (less variety, and several inserted side by
side stretch one region); with more, they cut through faces."""
DOWN = 0.5
"""Vertical moves, as a share of the sideways ones. Moving parts only sideways, a rocket's
and a cup's samples varied too little (SinGAN's diversity about 0.24 and 0.26 over 4
seeds); vertical seams as many as sideways ones squashed faces."""
SPREAD = 4
"""A seam keeps away from detail, not only from edges: the contrast it avoids is averaged
over this many pixels around (at the 61 px start). With each pixel's own contrast, seams
ran through a cheek or a forehead, which are smooth, and split 5 of 16 astronaut faces
(seeds 0 to 3); with 2 pixels, 4 of 16; with 4, about 1."""
BESIDE = 3.0
"""Penalty (times the pull) on a place where a seam was just inserted. At 10 the inserted
seams spread out and the parts moved little (rocket's diversity 0.21 over seeds 0 to 3);
at 0 or 1 they pile up in one place and stretch what lies there into a visible band; at 3,
0.28, and the worst-patch figure about the same as at 10."""
KNOTS = 4
"""The profile is drawn at KNOTS evenly spaced points across the picture and interpolated."""


def recompose(
    image: np.ndarray, share: float, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """``image`` (square, float RGB) with its parts moved sideways along ``share`` of its
    side in seams, then up or down along DOWN times as many; and how far its detail moved
    on average, in pixels: each pixel's move weighted by its contrast, since a plain sky
    moved shows no change."""
    height, width = image.shape[:2]
    rows, columns = np.mgrid[:height, :width].astype(np.float32)
    # The pixels' coordinates travel as two more channels, so the moves carry them along.
    tracked = np.dstack([image, rows, columns])
    tracked = move_sideways(tracked, share, rng)
    tracked = move_sideways(tracked.transpose(1, 0, 2), DOWN * share, rng).transpose(1, 0, 2)
    moved = np.hypot(tracked[..., 3] - rows, tracked[..., 4] - columns)
    weight = contrast(tracked[..., :3])
    return tracked[..., :3], float((moved * weight).sum() / (weight.sum() + 1e-6))


def move_sideways(image: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` with seams (``share`` of its width) removed where a random profile is low and
    as many inserted where it is high. The seams follow the contrast of its first three
    channels (RGB); any further ones are carried along."""
    height, width = image.shape[:2]
    count = min(width // 2, max(1, round(share * width)))
    profile = np.interp(
        np.linspace(0, KNOTS - 1, width), np.arange(KNOTS), rng.random(KNOTS)
    ).astype(np.float32)
    low = np.broadcast_to(profile, (height, width)).copy()
    taken = np.zeros((height, width), np.float32)  # 1 on and beside the inserted seams
    pull = BIAS * (float(contrast(image[..., :3]).mean()) + 1e-6)
    rows = np.arange(height)
    for _ in range(count):
        path = cheapest_seam(contrast(image[..., :3]) + pull * low)
        image, low, taken = (_remove(a, path) for a in (image, low, taken))
    for _ in range(count):
        # An inserted seam is a blend of its neighbours: taken again, it would stretch one spot.
        path = cheapest_seam(contrast(image[..., :3]) + pull * (1.0 - low) + BESIDE * pull * taken)
        image = _insert(image, path, blend=True)
        low, taken = (_insert(a, path, blend=False) for a in (low, taken))
        taken[rows, path] = taken[rows, path + 1] = 1.0
    return image


def contrast(image: np.ndarray) -> np.ndarray:
    """Each pixel's contrast with its four neighbours (summed absolute differences), averaged
    over the square of side 2 * SPREAD + 1 around it."""
    edges = np.pad(_contrast(image), SPREAD, mode="edge").astype(np.float64)
    side = 2 * SPREAD + 1
    # Window sums from a summed-area table: four lookups per pixel, not side**2 additions.
    table = np.pad(edges.cumsum(axis=0).cumsum(axis=1), ((1, 0), (1, 0)))
    sums = table[side:, side:] - table[:-side, side:] - table[side:, :-side] + table[:-side, :-side]
    return (sums / side**2).astype(np.float32)


def _contrast(image: np.ndarray) -> np.ndarray:
    energy = np.zeros(image.shape[:2], np.float32)
    across = np.abs(np.diff(image, axis=1)).sum(axis=-1)
    down = np.abs(np.diff(image, axis=0)).sum(axis=-1)
    energy[:, :-1] += across
    energy[:, 1:] += across
    energy[:-1] += down
    energy[1:] += down
    return energy


def cheapest_seam(energy: np.ndarray) -> np.ndarray:
    """The top-to-bottom path (one column per row, moving at most one column per row) of
    least total energy, as its column in each row (of equal totals, the leftmost step)."""
    height, width = energy.shape
    # Totals padded with an infinite column on each side, so the three steps are slices.
    total = np.full((height, width + 2), np.inf)
    total[:, 1:-1] = energy
    came_from = np.zeros((height, width), np.int64)
    columns = np.arange(width)
    for row in range(1, height):
        left, up, right = total[row - 1, :-2], total[row - 1, 1:-1], total[row - 1, 2:]
        best = np.minimum(np.minimum(left, up), right)
        step = np.where(left == best, -1, np.where(up == best, 0, 1))
        total[row, 1:-1] += best
        came_from[row] = columns + step
    path = np.empty(height, np.int64)
    path[-1] = int(total[-1, 1:-1].argmin())
    for row in range(height - 1, 0, -1):
        path[row - 1] = came_from[row, path[row]]
    return path


def _remove(array: np.ndarray, path: np.ndarray) -> np.ndarray:
    height, width = array.shape[:2]
    keep = np.ones((height, width), bool)
    keep[np.arange(height), path] = False
    return array[keep].reshape((height, width - 1, *array.shape[2:]))


def _insert(array: np.ndarray, path: np.ndarray, *, blend: bool) -> np.ndarray:
    """``array`` with a column inserted right of ``path``: its pixel there repeated, or with
    ``blend`` the mean of it and its right neighbour."""
    height, width = array.shape[:2]
    columns = np.arange(width + 1)[None, :]
    source = np.where(columns <= path[:, None], columns, columns - 1)
    if array.ndim == 3:
        source = source[..., None]
    widened = np.take_along_axis(array, source, axis=1)
    if blend:
        rows = np.arange(height)
        right = np.minimum(path + 1, width - 1)
        widened[rows, path + 1] = (array[rows, path] + array[rows, right]) / 2
    return widened
