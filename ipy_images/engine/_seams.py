"""A start that moves the parts of a picture apart or together along seams.

Seam carving (Avidan and Shamir, 2007) removes a column of pixels one pixel per row along
the path of least contrast, so the parts on either side close up without being cut. Here
a number of seams are removed where a random smooth profile across the picture is low,
and as many inserted (each a blend of the two columns it sits between) where it is high,
sideways and then, fewer, up and down: the parts in between move by up to that many
pixels, a face or a cup stays whole, and nothing is shown twice. In a picture with a sky
every seam is straight, a whole column or row (see STRAIGHT_BIAS), so a thin thing standing
there is moved whole, not leaned or broken. The patch search of the finer levels then
redraws the seams' surroundings from the source's own patches. Each start also says how far
its detail moved, so that of several the one that changed the picture most can be kept (see
_gpnn.seams_start), and where each pixel came from, so that where a seam tore an outline
(see torn_outlines) the outline can be put back from rigid pieces of the place it was torn
from (see _gpnn.TORN_PATCH).

This is the start from diversity 1 up in a picture with a layout, from 2 up repeated (see
_gpnn.Settings.for_diversity and chained_start); re-composing from the coarsest level
instead drew subjects twice and cut objects (two astronauts, four cat eyes, cups cut in
half).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._patches import window_mean

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
APART = 2.0
"""From diversity 3 up (see _gpnn.APART_FROM), the penalty (times the pull) on a place
where a seam was just removed (see recompose). Without it the removed seams keep to the
one plainest place (the table beside coffee's cup) while BESIDE spreads the inserted ones,
some through the cup, so the parts in between grow (a random draft as much as the kept
one): in chained moves each move widened coffee's cup again, its rim 1.28 times as wide as
the input's at 3 (seeds 0-3); with the removed seams kept apart, 1.00 times (at 1 times
the pull, 1.15). At 1, where the cup grows once (1.11 times), it is not used: the removed
seams it sends through the cup narrowed its middle into a V, a pointed rim in about 6 of
16 samples (coffee's worst-patch figure 19 -> 29 x1e5), and the astronaut's samples
varied less (0.478 -> 0.403)."""
PLAIN = 0.15
"""A pixel is plain where the contrast around it (see contrast and plain: summed over four
neighbours and three channels; this is about 3 levels of 255 to each neighbour) is below
this: at 61 px 0.64 of rocket's pixels (its sky and most of its towers), 0.007 of coffee's,
0.009 of chelsea's, none of the astronaut's or immunohistochemistry's. At 0.2 coffee's
saucer counted as plain too, and its samples changed for the worse (coarse completeness
147 -> 171 x1e5, the rims 1.14 times as wide as the input's, against 1.12)."""
STRAIGHT_BIAS = 2 * BIAS
"""In a picture with a sky (PLAIN_REGION) every seam is straight, a whole column (or row),
and this is the random profile's weight there (BIAS elsewhere). Free to bend, a seam
wandered across rocket's sky from where the profile pulled it to the cheapest way through
the lit ground below and crossed a tower at a slant, each seam leaning it by a pixel, and
the rounds rebuilt a tower broken in two. Kept straight only where the sky is plain (a
sideways step there cost 0.5 in contrast units, the forty-second session), the seams still
bent in the ground at the towers' feet: broken towers in about 14 of 32 samples at 1 and
6 of 32 at 0.5 (seeds 0-7, by eye). Straight all the way, about 3 of 32 at 1 (towers
pushed against the border) and none at 0.5. A straight seam's cost is summed over the
whole column, where the ground's detail decides, so at BIAS every sample took nearly the
same columns and rocket's samples at 1 varied less than the issue's 0.25 (0.211, seeds
0-7); at 2 times BIAS, 0.267 (the bent seams' 0.281 counted broken towers as variety); at
3 times, 0.297, but more towers pushed against the border lost their lattice."""
PLAIN_REGION = 0.1
"""A picture has a plain region (a sky) when at least this share of its pixels is plain
(PLAIN) at the level a start by seams is at: rocket's 0.64 at 61 px. Coffee's 0.007 (a
few pixels of crema) are none. Only such a picture is moved along straight seams
(STRAIGHT_BIAS), below diversity 1 too (see _gpnn.Settings.for_diversity): when the
forty-second session's seams kept straight in coffee's few plain pixels, they only changed
which way a few seams stepped round those pixels, and its samples came out
as other draws, no better (by eye, about as many pointed rims and saucer drips;
benchmarks/rims.py, 2.62 -> 2.60 px from an ellipse at seeds 0-3, 3.13 -> 3.27 at 4-7),
with their repeats and redraws reshuffled (see docs/engine, "Seams kept straight through
a sky")."""
KNOTS = 4
"""The profile is drawn at KNOTS evenly spaced points across the picture and interpolated."""
OUTLINE = 0.85
"""A picture's outlines are its pixels of most contrast, from this quantile up (see
torn_outlines): coffee's rim, saucer and spoon at 61 px. From 0.93 up, coffee's rims came
out less round (benchmarks/rims.py, seeds 0-3: 2.69 px against 2.50, measured with 3 px of
slack, see _gpnn.ANCHOR)."""


def draw_moves(
    share: float, drafts: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``drafts`` drafts, drawn one after the other: its share (between half and
    one and a half times ``share``) and its random profiles across and down (see
    recompose)."""
    draws = [(0.5 + rng.random(), rng.random((2, KNOTS))) for _ in range(drafts)]
    return share * np.array([scale for scale, _ in draws]), np.stack([p for _, p in draws])


class Moved(NamedTuple):
    """A draft of a picture with its parts moved along seams (see recompose)."""

    pixels: np.ndarray
    moved: float
    """How far its detail moved from the picture, on average, in pixels."""
    origins: np.ndarray
    """Where each pixel came from in the picture: its row and column (rows, columns, 2)."""


def recompose(
    image: np.ndarray,
    shares: np.ndarray,
    profiles: np.ndarray,
    *,
    apart: float = 0.0,
    straight: bool = False,
) -> list[Moved]:
    """Drafts of ``image`` (square, float RGB), one per share in ``shares``: its parts moved
    sideways along that share of its side in seams, then up or down along DOWN times as
    many, where its ``profiles`` (drafts, 2, KNOTS; values in [0, 1], across then down) are
    low; each with how far its detail moved on average, in pixels (each pixel's move
    weighted by its contrast, since a plain sky moved shows no change), and where each of
    its pixels came from. ``apart`` (times the pull) keeps the removed seams apart from each
    other, as BESIDE does the inserted ones (see APART); with ``straight`` each seam is a
    whole column or row (see STRAIGHT_BIAS).

    The drafts are carved together, one seam of each per step: finding a seam is a loop
    over rows of small array operations, which over a stack of drafts costs little more
    than over one. Carved one by one, 8 drafts of 61 px took 0.25-0.30 s; together 0.09-0.11
    s, the same pixels."""
    drafts = len(shares)
    height, width = image.shape[:2]
    rows, columns = np.mgrid[:height, :width].astype(np.float32)
    # The pixels' coordinates travel as two more channels, so the moves carry them along.
    tracked = np.repeat(np.dstack([image, rows, columns])[None], drafts, axis=0)
    tracked = move_sideways(tracked, shares, profiles[:, 0], apart, straight=straight)
    tracked = move_sideways(
        tracked.transpose(0, 2, 1, 3), DOWN * shares, profiles[:, 1], apart, straight=straight
    )
    tracked = tracked.transpose(0, 2, 1, 3)
    moved = np.hypot(tracked[..., 3] - rows, tracked[..., 4] - columns)
    weight = contrast(tracked[..., :3], np.full(drafts, width))
    return [
        Moved(pixels[..., :3], float((m * w).sum() / (w.sum() + 1e-6)), pixels[..., 3:5])
        for pixels, m, w in zip(tracked, moved, weight, strict=True)
    ]


def torn_outlines(picture: np.ndarray, origins: np.ndarray, *, shears: bool) -> np.ndarray:
    """The pixels of a draft of ``picture`` (``origins``: where each came from, as recompose
    tracks them) where a seam tore one of its outlines (OUTLINE): beside a neighbour that
    was not their neighbour in ``picture``, and from one of its outlines.

    Two neighbours in a row are torn apart by a seam removed between them (they came from
    two columns apart), not by one inserted (half a column apart: a stretch). With
    ``shears``, half a pixel across the row is a tear too: an inserted seam, a blend of its
    two neighbours, shifts what lies beyond it by half a pixel a row where it crosses an
    outline slantwise, and leans a thin upright (a rocket's tower) by a pixel per seam.
    Counted (at diversity 1, see _gpnn.Settings.shears), rocket's towers came out broken in
    about 9 of 16 samples (seeds 0-3) where 11 did (see docs/engine, "Shears marked as
    tears at 1")."""
    side = picture.shape[1]
    edges = _contrast(picture[None], np.ones((1, side - 1), bool))[0]
    outline = edges >= np.quantile(edges, OUTLINE)
    seam = np.zeros(origins.shape[:2], bool)
    for axis, step in ((1, (0.0, 1.0)), (0, (1.0, 0.0))):
        # Neighbours along ``axis`` came from neighbours, one step apart the same way.
        off = np.diff(origins, axis=axis) - step
        along, across = np.abs(off[..., axis]), np.abs(off[..., 1 - axis])
        apart = (along > 0.5) | (across >= 0.5 if shears else np.hypot(along, across) > 0.5)
        before, after = [slice(None)] * 2, [slice(None)] * 2
        before[axis], after[axis] = slice(None, -1), slice(1, None)
        seam[tuple(before)] |= apart
        seam[tuple(after)] |= apart
    return seam & outline[pixels_of(origins, side)]


def pixels_of(origins: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """``origins`` (..., 2: a row and a column each, as recompose tracks them) as the rows
    and columns of the nearest pixels of a picture ``side`` px wide."""
    rows, columns = np.moveaxis(np.clip(np.rint(origins), 0, side - 1).astype(np.int64), -1, 0)
    return rows, columns


def move_sideways(
    images: np.ndarray,
    shares: np.ndarray,
    profiles: np.ndarray,
    apart: float,
    *,
    straight: bool,
) -> np.ndarray:
    """``images`` (a stack of drafts) each with seams (its share of the width) removed where
    its random profile (drawn at KNOTS points across) is low, ``apart`` times the pull
    dearer beside each one removed, and as many inserted where it is high, apart (BESIDE);
    with ``straight`` each a whole column (see STRAIGHT_BIAS). The seams follow the contrast
    of the first three channels (RGB); any further ones are carried along.

    The stack keeps its width: a draft narrowed by its seams is padded on the right (the
    seams keep out of the padding) until as many have been inserted."""
    drafts, height, width, channels = images.shape
    counts = np.minimum(width // 2, np.maximum(1, np.round(shares * width))).astype(int)
    low = np.stack(
        [np.interp(np.linspace(0, KNOTS - 1, width), np.arange(KNOTS), p) for p in profiles]
    ).astype(np.float32)
    widths = np.full(drafts, width)
    # Each weight is rounded to float32 once, from its float64 product.
    bias = STRAIGHT_BIAS if straight else BIAS
    pull = np.array([bias * (float(c.mean()) + 1e-6) for c in contrast(images[..., :3], widths)])
    beside = (BESIDE * pull).astype(np.float32)[:, None, None]
    apart_from = (apart * pull).astype(np.float32)[:, None, None]
    pull = pull.astype(np.float32)[:, None, None]
    # The profile and the marks where seams were removed (then inserted) travel with the
    # pixels as two more channels, so each seam moves them too.
    low_at, taken_at = channels, channels + 1
    stack = np.concatenate(
        [
            images,
            np.broadcast_to(low[:, None, :, None], (drafts, height, width, 1)),
            np.zeros((drafts, height, width, 1), np.float32),
        ],
        axis=-1,
    )
    rows = np.arange(height)[None]
    cheapest = cheapest_column if straight else cheapest_seam
    for step in range(int(counts.max())):
        energy = (
            contrast(stack[..., :3], widths)
            + pull * stack[..., low_at]
            + apart_from * stack[..., taken_at]
        )
        path = cheapest(energy, widths)
        carving = step < counts
        stack = _remove(stack, path, carving)
        widths -= carving
        # The two pixels the removal brought together.
        on = np.nonzero(carving)[0]
        stack[on[:, None], rows, np.maximum(path[on] - 1, 0), taken_at] = 1.0
        stack[on[:, None], rows, np.minimum(path[on], widths[on, None] - 1), taken_at] = 1.0
    stack[..., taken_at] = 0.0  # the inserted seams are kept apart from each other only
    for step in range(int(counts.max())):
        # An inserted seam is a blend of its neighbours: taken again, it would stretch one spot.
        energy = (
            contrast(stack[..., :3], widths)
            + pull * (1.0 - stack[..., low_at])
            + beside * stack[..., taken_at]
        )
        path = cheapest(energy, widths)
        carving = step < counts
        stack = _insert(stack, path, carving, widths, blended=channels)
        widths += carving
        on = np.nonzero(carving)[0]
        stack[on[:, None], rows, path[on], taken_at] = 1.0
        stack[on[:, None], rows, path[on] + 1, taken_at] = 1.0
    return stack[..., :channels]


def contrast(images: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Each pixel's contrast with its four neighbours (summed absolute differences), averaged
    over the square of side 2 * SPREAD + 1 around it, in each of a stack of drafts whose
    first ``widths`` columns are the picture (the rest padding)."""
    columns = np.arange(images.shape[2])
    edges = _contrast(images, columns[None, :-1] < widths[:, None] - 1)
    # As if each draft ended at its width: its last column repeated into the padding.
    edges = np.take_along_axis(edges, np.minimum(columns, widths[:, None] - 1)[:, None], axis=2)
    return window_mean(edges, 2 * SPREAD + 1)


def _contrast(images: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Summed absolute differences with the four neighbours; ``inside`` says, per draft,
    which columns have a right-hand neighbour in the picture."""
    # Channel by channel, each made contiguous: on a stack whose channels are interleaved,
    # nine times faster than differences and sums over the last axis, and the same sums.
    channels = [np.ascontiguousarray(images[..., c]) for c in range(images.shape[-1])]
    energy = np.zeros(images.shape[:3], np.float32)
    across = _differences(channels, axis=2) * inside[:, None]
    down = _differences(channels, axis=1)
    energy[:, :, :-1] += across
    energy[:, :, 1:] += across
    energy[:, :-1] += down
    energy[:, 1:] += down
    return energy


def _differences(channels: list[np.ndarray], axis: int) -> np.ndarray:
    """Absolute differences between neighbours along ``axis``, summed over ``channels``."""
    total = np.abs(np.diff(channels[0], axis=axis))
    for channel in channels[1:]:
        total += np.abs(np.diff(channel, axis=axis))
    return total


def plain(picture: np.ndarray) -> np.ndarray:
    """Which pixels of ``picture`` (float RGB) are plain (PLAIN): those with little contrast
    (see contrast) a few pixels round."""
    detail = contrast(picture[None], np.array([picture.shape[1]]))[0]
    # Averaged once more over the same square, so a plain region is plain a few pixels round
    # too: a sky, with a faint tower standing in it, is; a crema ringed by a cup's rim is not.
    return window_mean(detail, 2 * SPREAD + 1) < PLAIN


def has_plain_region(picture: np.ndarray) -> bool:
    """Whether ``picture`` (at the level a start by seams is at) has a plain region, a sky
    (PLAIN_REGION)."""
    return float(plain(picture).mean()) >= PLAIN_REGION


def cheapest_column(energy: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """In each of a stack of drafts, the column of least total ``energy`` within its first
    ``widths`` columns (of equals, the leftmost), as its column in each row."""
    height, width = energy.shape[1:]
    totals = np.where(np.arange(width)[None] < widths[:, None], energy.sum(axis=1), np.inf)
    return np.repeat(totals.argmin(axis=1)[:, None], height, axis=1)


def cheapest_seam(energy: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """In each of a stack of drafts, the top-to-bottom path (one column per row, moving at
    most one column per row) of least total ``energy`` within its first ``widths`` columns,
    as its column in each row (of equal totals, the leftmost step)."""
    drafts, height, width = energy.shape
    # Totals padded with infinite columns, so the three steps are slices and no path leaves
    # the picture.
    total = np.full((drafts, height, width + 2), np.inf)
    inside = np.arange(width)[None, None] < widths[:, None, None]
    total[..., 1:-1] = np.where(inside, energy, np.inf)
    for row in range(1, height):
        above = total[:, row - 1]
        sideways = np.minimum(above[:, :-2], above[:, 2:])
        total[:, row, 1:-1] += np.minimum(sideways, above[:, 1:-1])
    # Back up the rows, each time to the least of the three totals above (the first, so the
    # leftmost, of equals): fewer and smaller operations than noting every pixel's step.
    each = np.arange(drafts)[:, None]
    path = np.empty((drafts, height), np.int64)
    path[:, -1] = total[:, -1, 1:-1].argmin(axis=1)
    for row in range(height - 1, 0, -1):
        ahead = total[each, row - 1, path[:, row, None] + np.arange(3)]
        steps = ahead.argmin(axis=1)
        path[:, row - 1] = path[:, row] + steps - 1
    return path


def _remove(stack: np.ndarray, path: np.ndarray, carving: np.ndarray) -> np.ndarray:
    """``stack`` (drafts, rows, columns, channels) with, in the drafts ``carving``, the pixel
    on ``path`` taken out of each row: the row shifts left over it, its last column repeated
    so that it keeps its width."""
    columns = np.arange(stack.shape[2])
    shift = (columns >= path[..., None]) & carving[:, None, None]
    return _shifted(stack, np.minimum(columns + shift, columns[-1]))


def _insert(
    stack: np.ndarray, path: np.ndarray, carving: np.ndarray, widths: np.ndarray, *, blended: int
) -> np.ndarray:
    """``stack`` (drafts, rows, columns, channels) with, in the drafts ``carving``, a column
    inserted right of ``path``: in its first ``blended`` channels the mean of the pixel on
    the path and its right neighbour in the picture (the first ``widths`` columns), in the
    others the pixel on the path again. What each row pushes out on the right is padding: a
    draft that inserts is narrower than the stack."""
    columns = np.arange(stack.shape[2])
    widened = _shifted(stack, columns - ((columns > path[..., None]) & carving[:, None, None]))
    on = np.nonzero(carving)[0]
    each, rows, left = on[:, None], np.arange(stack.shape[1])[None], path[on]
    right = np.minimum(left + 1, widths[each] - 1)
    mean = (stack[each, rows, left, :blended] + stack[each, rows, right, :blended]) / 2
    widened[each, rows, left + 1, :blended] = mean
    return widened


def _shifted(stack: np.ndarray, source: np.ndarray) -> np.ndarray:
    """``stack`` (drafts, rows, columns, channels) with each row's pixels taken from the
    columns ``source`` (drafts, rows, columns) of the same row."""
    drafts, height, width, channels = stack.shape
    row_starts = width * np.arange(drafts * height).reshape(drafts, height, 1)
    # Whole pixels (all channels) by their place in the flattened stack: a plain take of
    # contiguous blocks, several times faster than take_along_axis or a masked copy.
    pixels = np.take(stack.reshape(-1, channels), (row_starts + source).ravel(), axis=0)
    return pixels.reshape(stack.shape)
