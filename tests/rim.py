"""Coffee's cup rim in a picture: the opening it rings and how far its outline strays from
an ellipse, for the engine's tests and benchmarks/rims.py. A kinked, notched or spouted rim
still matches the source patch by patch, so the patch measures do not see it."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BRIGHT = 190
"""The rim's pixels are brighter than this (of 255) in every channel, and lie in the TOP
share of the picture (below it lie the saucer's highlights and the spoon)."""
TOP = 0.65


def opening(pixels: np.ndarray) -> np.ndarray | None:
    """The cup's opening (the rim's largest bright component, hole filled), or None where
    the rim is no closed ring."""
    bright = pixels.min(axis=2) > BRIGHT
    bright[int(pixels.shape[0] * TOP) :] = False
    labels, count = ndimage.label(bright)
    if count == 0:
        return None
    sizes = ndimage.sum(bright, labels, range(1, count + 1))
    ring = labels == 1 + int(np.argmax(sizes))
    filled = ndimage.binary_fill_holes(ring)
    rows, columns = np.nonzero(ring)
    box = (np.ptp(rows) + 1) * (np.ptp(columns) + 1)
    return filled if filled.sum() >= box / 2 else None


def outline(filled: np.ndarray) -> float:
    """The 95th percentile of the outline's distance (px) from the moment ellipse."""
    rows, columns = np.nonzero(filled)
    centre = np.array([rows.mean(), columns.mean()])
    covariance = np.cov(np.stack([rows, columns]))
    grid = np.moveaxis(np.mgrid[: filled.shape[0], : filled.shape[1]], 0, -1) - centre
    # A filled ellipse's outline lies at Mahalanobis distance 2 from its centre.
    radius = np.sqrt(np.einsum("...i,ij,...j->...", grid, np.linalg.inv(covariance), grid)) / 2
    edge = filled & ~ndimage.binary_erosion(filled)
    semi_axis = 2 * np.linalg.det(covariance) ** 0.25  # the two semi-axes' geometric mean
    return float(np.quantile(np.abs(radius[edge] - 1) * semi_axis, 0.95))
