"""Nearest-neighbour search over patches with faiss.

Small patch sets (the coarsest pyramid levels) are searched exactly on the raw patches:
faiss' PCA needs more training vectors than output dimensions, and exact search is cheap
there. Larger sets are PCA-reduced; the largest are searched with an inverted-file index.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

PCA_MIN = 1000
"""Smallest key set that is PCA-reduced (fewer are searched on the raw patches)."""
PCA_DIMS = 24
"""PCA output dimensions (7x7x3 patches keep most of their energy in 24)."""
EXACT_MAX = 6000
"""Largest key set searched exactly; larger ones use an inverted-file index."""
TRAIN_MAX = 12000
"""At most this many keys train the PCA."""
NPROBE = 3
"""Inverted lists visited per query."""


class PatchIndex:
    """Keys (patches of one image, one row each) ready for nearest-neighbour queries."""

    def __init__(self, keys: np.ndarray) -> None:
        self._pca: faiss.PCAMatrix | None = None
        if len(keys) >= PCA_MIN:
            self._pca = faiss.PCAMatrix(keys.shape[1], PCA_DIMS)
            self._pca.train(keys[:: max(1, len(keys) // TRAIN_MAX)])
        x = self._project(keys)
        if len(keys) <= EXACT_MAX:
            self._index: faiss.Index = faiss.IndexFlatL2(x.shape[1])
        else:
            lists = int(2 * math.sqrt(len(keys)))
            self._index = faiss.IndexIVFFlat(faiss.IndexFlatL2(x.shape[1]), x.shape[1], lists)
            # A rough k-means is enough to route queries; faiss subsamples with a fixed seed.
            self._index.cp.niter = 8
            self._index.cp.max_points_per_centroid = 48
            self._index.cp.min_points_per_centroid = 8
            self._index.nprobe = NPROBE
            self._index.train(x)
        self._index.add(x)

    def _project(self, x: np.ndarray) -> np.ndarray:
        return x if self._pca is None else self._pca.apply(x)

    def nearest(self, queries: np.ndarray) -> np.ndarray:
        """Index of the nearest key of each query (one patch per row)."""
        found = self._index.search(self._project(queries), 1)[1][:, 0]
        # An inverted-file search answers -1 if every probed list is empty (vanishingly rare).
        return np.maximum(found, 0)
