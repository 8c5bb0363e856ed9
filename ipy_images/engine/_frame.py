"""A frame around the picture, kept in place: a fundus photo's black corners, a scan's
white margin.

The patch search does not know where a patch sits, so from diversity 1 up it moves the
frame's edge into the picture like any other content, and a fundus photo's round field
comes out notched and shapeless. A picture with a frame is re-composed inside it: from
the FROM_SIZE level on, the frame's pixels are the source's own, the patches centred on
the frame stay where they are, and no other patch may take one of those. (Kept from the
coarsest level on, the fixed frame pulls the whole layout back to the source's: every
retina sample came out a copy.)

A frame is the part of the picture that is one colour (the median of its outermost
pixels, which must nearly all have it) and joined to the border. Letterbox bars, on two
sides only, do not count: a photo's sky or floor along one side would too. Pictures whose
background is that colour almost everywhere (a logo or text on white, a starfield) are
not framed: more than MAX_SHARE of them would be frame. A frame is round (see ROUND) when
what it holds is a disc, as a fundus photo's field: that can be turned about its middle
and keep its shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._patches import resize

RING = 2
"""Width in pixels of the outermost ring whose median colour is the frame's."""
DETECT_SIDE = 64
"""The frame is grown on the picture reduced to this side (its edge is 4 px wide at 256)."""
TOLERANCE = 0.1
"""Largest colour distance (RGB in [0, 1]) from the border colour that counts as frame."""
RING_SHARE = 0.9
"""Share of the outermost pixels that must have the border colour."""
MIN_SHARE = 0.03
MAX_SHARE = 0.5
"""A frame covers between MIN_SHARE and MAX_SHARE of the picture."""
ROUND = 0.95
"""A frame is round (a fundus photo's) when the picture inside it and the disc of the same
area about its middle overlap at least this much (intersection over union): retina's and
the tests' fundus 0.99, a scan's white margin (a square inside) 0.84."""
FROM_SIZE = 46
"""The frame is kept at the levels at least this wide; the coarser ones re-compose freely."""


def frame_of(source: np.ndarray) -> np.ndarray | None:
    """The frame of ``source`` (float RGB), as a DETECT_SIDE x DETECT_SIDE mask, or None."""
    ring = _ring(source.shape[0], RING)
    colour = np.median(source[ring], axis=0)
    if np.mean(np.linalg.norm(source[ring] - colour, axis=-1) < TOLERANCE) < RING_SHARE:
        return None
    small = resize(source, DETECT_SIDE, DETECT_SIDE)
    near = np.linalg.norm(small - colour, axis=-1) < TOLERANCE
    # Grow from the border through pixels of the border colour. Each pass adds a pixel or
    # stops, so there are at most DETECT_SIDE**2 passes, on a 64 x 64 mask.
    frame = near & _ring(DETECT_SIDE, 1)
    while True:
        grown = frame.copy()
        grown[1:] |= frame[:-1]
        grown[:-1] |= frame[1:]
        grown[:, 1:] |= frame[:, :-1]
        grown[:, :-1] |= frame[:, 1:]
        grown &= near
        if np.array_equal(grown, frame):
            break
        frame = grown
    return frame if MIN_SHARE <= frame.mean() <= MAX_SHARE else None


def is_round(inside: np.ndarray) -> bool:
    """Whether the ``inside`` of a frame (a boolean mask) is round (see ROUND)."""
    rows, columns = np.nonzero(inside)
    radius = math.sqrt(rows.size / math.pi)
    y, x = np.indices(inside.shape)
    disc = (y - rows.mean()) ** 2 + (x - columns.mean()) ** 2 <= radius**2
    return bool((inside & disc).sum() >= ROUND * (inside | disc).sum())


def _ring(side: int, width: int) -> np.ndarray:
    ring = np.ones((side, side), bool)
    ring[width:-width, width:-width] = False
    return ring


@dataclass(frozen=True)
class LevelFrame:
    """The frame at one pyramid level: its pixels, and the patches centred on it."""

    pixels: np.ndarray
    """(side, side) bool: the frame's pixels."""
    centred: np.ndarray
    """(grid, grid) bool: patches whose centre pixel is in the frame."""

    @classmethod
    def at(cls, frame: np.ndarray | None, side: int, patch: int) -> LevelFrame:
        """``frame`` (from frame_of) at a level ``side`` wide; None: an empty frame."""
        if frame is None:
            pixels = np.zeros((side, side), bool)
        else:
            scaled = resize(np.repeat(frame[..., None].astype(np.float32), 3, axis=-1), side, side)
            pixels = scaled[..., 0] > 0.5
        half, grid = patch // 2, side - patch + 1
        return cls(pixels, pixels[half : half + grid, half : half + grid])

    def pin(self, nnf: np.ndarray) -> np.ndarray:
        """``nnf`` with the patches centred on the frame taking themselves."""
        own = np.arange(nnf.size).reshape(nnf.shape)
        return np.where(self.centred, own, nnf)

    def restore(self, estimate: np.ndarray, source: np.ndarray) -> np.ndarray:
        """``estimate`` with the frame's pixels set to the source's."""
        return np.where(self.pixels[..., None], source, estimate)
