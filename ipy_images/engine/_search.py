"""Nearest-neighbour search over patches with faiss.

Small patch sets (the coarse pyramid levels) are searched exactly on the raw patches:
faiss' PCA needs more training vectors than output dimensions, and exact search is cheap
there. Large sets are PCA-reduced and searched with an inverted-file index.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

EXACT_MAX = 6000
"""Largest key set searched exactly."""
PCA_DIMS = 24
"""PCA output dimensions for large sets (7x7x3 patches keep most of their energy in 24)."""
TRAIN_MAX = 12000
"""At most this many keys train the PCA and the inverted-file centroids."""
NPROBE = 6
"""Inverted lists visited per query."""


class PatchIndex:
    """Keys (patches of one image, one row each) ready for nearest-neighbour queries."""

    def __init__(self, keys: np.ndarray, *, like: PatchIndex | None = None) -> None:
        """Index ``keys``; ``like`` shares an index's trained PCA and centroids (same level)."""
        self.size = len(keys)
        dims = keys.shape[1]
        if like is not None:
            self._pca, self._quantizer = like._pca, like._quantizer
        elif self.size <= EXACT_MAX:
            self._pca, self._quantizer = None, None
        else:
            self._pca, self._quantizer = _train(keys)
        if self._quantizer is None:
            self._index: faiss.Index = faiss.IndexFlatL2(dims)
        else:
            self._index = faiss.IndexIVFFlat(self._quantizer, PCA_DIMS, self._quantizer.ntotal)
            self._index.nprobe = NPROBE
        x = self._project(keys)
        self._index.train(x)  # no-op for flat; reuses the trained centroids for IVF
        self._index.add(x)

    def _project(self, x: np.ndarray) -> np.ndarray:
        return x if self._pca is None else self._pca.apply(x)

    def search(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Squared distances and key indices of the ``k`` nearest keys of each query."""
        distances, indices = self._index.search(self._project(queries), min(k, self.size))
        # An IVF search can come back short when the probed lists hold fewer than k keys.
        return distances, np.maximum(indices, 0)


def nearest(
    queries: np.ndarray, index: PatchIndex, keys: np.ndarray, *, alpha: float | None
) -> np.ndarray:
    """Index of the chosen key for each query.

    With ``alpha`` set, distances are divided by ``alpha + (distance from the key to its
    nearest query)``, as in GPNN: keys already well represented in the output become dearer,
    keys missing from it cheaper, which pulls the output towards using all of the source
    (completeness) and away from repeating one feature. The choice is made among each
    query's nearest candidates, which is exact whenever the winner is among them.
    """
    if alpha is None:
        return index.search(queries)[1][:, 0]
    distances, candidates = index.search(queries, k=16)
    reverse = faiss.IndexFlatL2(queries.shape[1])
    reverse.add(queries)
    key_cover = reverse.search(keys, 1)[0][:, 0]
    scores = distances / (alpha + key_cover[candidates])
    return candidates[np.arange(len(candidates)), np.argmin(scores, axis=1)]


def _train(keys: np.ndarray) -> tuple[faiss.PCAMatrix, faiss.IndexFlatL2]:
    """PCA and inverted-file centroids trained on an even subsample of ``keys``."""
    sample = keys[:: max(1, len(keys) // TRAIN_MAX)]
    pca = faiss.PCAMatrix(keys.shape[1], PCA_DIMS)
    pca.train(sample)
    projected = pca.apply(sample)
    lists = int(2 * math.sqrt(len(keys)))
    kmeans = faiss.Kmeans(PCA_DIMS, lists, niter=8, seed=1, max_points_per_centroid=64, min_points_per_centroid=8)
    kmeans.train(projected)
    quantizer = faiss.IndexFlatL2(PCA_DIMS)
    quantizer.add(kmeans.centroids)
    return pca, quantizer
