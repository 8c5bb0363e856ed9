"""Nearest-neighbour search over patches with faiss, at a bounded cost on any picture.

Small patch sets (the coarsest pyramid levels) are searched exactly on the raw patches:
faiss' PCA needs more training vectors than output dimensions, and exact search is cheap
there. Larger sets are PCA-reduced; the largest are searched with an inverted-file index.

Keys that are (nearly) the same patch are indexed once. Without that, a flat, logo, text
or line-art picture, whose patches are mostly identical, trains an inverted file whose
k-means cannot split them: every query then lands in one list holding most of the keys,
and one search of a 256 px image took over 30 s. A query answered by such a group gets
one of its members, chosen by the query's position, so a flat region still copies a
flat region patch by patch instead of repeating one source patch.

completing_nearest is GPNN's search with a completeness term, exact, for the small coarse
levels only.

Searches run in chunks with the caller's cancel check between them, so a cancelled
generation stops within a chunk's time (milliseconds).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import faiss
import numpy as np

PCA_MIN = 1000
"""Smallest key set that is PCA-reduced (fewer are searched on the raw patches)."""
PCA_DIMS = 24
"""PCA output dimensions (7x7x3 patches keep most of their energy in 24)."""
EXACT_MAX = 2000
"""Largest (deduplicated) key set searched exactly; larger ones use an inverted file.
(Searched exactly, the 61 px level's 3,025 keys took 0.18 s of a 1.6 s sample; its
inverted file takes 0.03 s, with the same benchmark measures.)"""
TRAIN_MAX = 12000
"""At most this many keys train the PCA."""
NPROBE = 3
"""Inverted lists visited per query."""
QUANTUM = 0.002
"""Keys closer than this in every projected coordinate (pixels in [0, 1]) are one key, so
that a group's members differ by at most 2 of 255 levels in any pixel of the levels of a
logo (the tests' logo() at 81 to 192 px). At 0.02 they differed by up to 9 levels: a plain
white query was answered by a member that held the faint edge of a shape, and every
sample of the logo came out with 14-18 blue or red specks along its border. At 0.002 a
flat picture is still one key; the logo costs 0.83 of a photo's time (0.76 at 0.02), text
0.78 (0.72), by benchmarks/engine_cost.py."""
CHUNK = 8192
"""Queries per search call between two cancel checks."""


class PatchIndex:
    """Keys (patches of one image, one row each) ready for nearest-neighbour queries."""

    def __init__(self, keys: np.ndarray) -> None:
        self._pca: faiss.PCAMatrix | None = None
        if len(keys) >= PCA_MIN:
            self._pca = faiss.PCAMatrix(keys.shape[1], PCA_DIMS)
            self._pca.train(keys[:: max(1, len(keys) // TRAIN_MAX)])
        x = self._project(keys)
        codes = np.rint(x / QUANTUM).astype(np.int32)
        _, first, group, counts = np.unique(
            codes, axis=0, return_index=True, return_inverse=True, return_counts=True
        )
        self._members = np.argsort(group.ravel(), kind="stable")  # keys grouped by code
        self._starts = np.cumsum(counts) - counts
        self._counts = counts
        unique = np.ascontiguousarray(x[first])
        if len(unique) <= EXACT_MAX:
            self._index: faiss.Index = faiss.IndexFlatL2(unique.shape[1])
        else:
            lists = int(2 * math.sqrt(len(unique)))
            self._index = faiss.IndexIVFFlat(
                faiss.IndexFlatL2(unique.shape[1]), unique.shape[1], lists
            )
            # A rough k-means is enough to route queries; faiss subsamples with a fixed seed.
            self._index.cp.niter = 8
            self._index.cp.max_points_per_centroid = 48
            self._index.cp.min_points_per_centroid = 8
            self._index.nprobe = NPROBE
            self._index.train(unique)
        self._index.add(unique)

    def distances(self, queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Each query's squared distance to the key in its row, as a search measures it."""
        return np.sum((self._project(queries) - self._project(keys)) ** 2, axis=1)

    def _project(self, x: np.ndarray) -> np.ndarray:
        return x if self._pca is None else self._pca.apply(x)

    def nearest(
        self,
        queries: np.ndarray,
        check_cancel: Callable[[], None],
        *,
        places: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The nearest key of each query (one patch per row) and its squared distance.
        ``places``, each query's place among its picture's patches (by default its row),
        picks which of the keys indexed once answers it, so that a flat region still
        copies a flat region patch by patch when only some of its patches are asked."""
        found = np.empty(len(queries), np.int64)
        distances = np.empty(len(queries), np.float32)
        for start in range(0, len(queries), CHUNK):
            check_cancel()
            chunk = slice(start, start + CHUNK)
            d, i = self._index.search(self._project(queries[chunk]), 1)
            distances[chunk], found[chunk] = d[:, 0], i[:, 0]
        # An inverted-file search answers -1 if every probed list is empty (vanishingly rare).
        group = np.maximum(found, 0)
        places = np.arange(len(queries)) if places is None else places
        spread = places % self._counts[group]
        return self._members[self._starts[group] + spread], np.maximum(distances, 0.0)


def nearest_among(
    queries: np.ndarray, keys: np.ndarray, candidates: np.ndarray, offered: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's nearest key among its own ``candidates`` (a row of a few indexes into
    ``keys`` per query; those not ``offered`` passed over while another is), and its
    squared distance. Exact, one column of candidates at a time, with no index to build:
    the PCA of an index of 19 px patches took 1.2 s, which no cancel check can cut short."""
    norms = np.einsum("ij,ij->i", keys, keys)
    distances = np.stack(
        [
            norms[column] - 2.0 * np.einsum("ij,ij->i", queries, keys[column])
            for column in candidates.T
        ],
        axis=1,
    )
    distances += np.einsum("ij,ij->i", queries, queries)[:, None]
    distances[~offered[candidates]] = np.inf
    best = np.argmin(distances, axis=1)
    rows = np.arange(len(queries))
    return candidates[rows, best], np.maximum(distances[rows, best], 0.0)


def completing_nearest(
    queries: np.ndarray, keys: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's key by GPNN's normalised distance (Granot et al. 2022): the squared
    distance divided by alpha times the queries' median nearest distance plus the key's
    distance to its own nearest query. A key that some query already matches closely is
    offered less, so source patches the queries do not show yet come back. Returns the
    keys' indexes and their plain squared distances. Exact: len(queries) x len(keys)
    distances, for a few thousand of each at most."""
    distances = squared_distances(queries, keys)
    typical = float(np.median(distances.min(axis=1))) + 1e-6
    covered = distances.min(axis=0)
    found = np.argmin(distances / (alpha * typical + covered), axis=1)
    return found, distances[np.arange(len(found)), found]


def squared_distances(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Every query's squared distance to every key (one patch per row), exactly."""
    return np.maximum(
        np.sum(queries**2, axis=1)[:, None]
        + np.sum(keys**2, axis=1)[None, :]
        - 2.0 * queries @ keys.T,
        0.0,
    )
