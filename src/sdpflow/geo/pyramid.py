"""A parent tile from its 2×2 children: each parent pixel summarises a 2×2 block of child pixels.

Tiles are float arrays ``(bands, height, width)``, row 0 at the top. A missing child (no
polygons there) counts as zeros: zero polygons, zero coverage, so the parent stays exact:
sums of counts are conserved and the mean of the children's coverage fractions is the
parent pixel's coverage fraction. Images use ``nanmean``: blank (NaN) pixels and absent
children drop out, and a parent pixel of four blank ones is blank.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np



def _nanmean(blocks: np.ndarray, axis) -> np.ndarray:
    finite = np.isfinite(blocks)
    count = finite.sum(axis=axis)
    total = np.where(finite, blocks, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


#: How each statistic combines a 2×2 block: counts add, fractions average, images average their non-blank pixels.
REDUCERS = {"sum": np.sum, "mean": np.mean, "nanmean": _nanmean}
#: What an absent child holds, per reducer.
ABSENT = {"sum": 0.0, "mean": 0.0, "nanmean": np.nan}


def mosaic(children: Sequence[np.ndarray | None], bands: int, size: int, fill: Sequence[float] | float = 0.0) -> np.ndarray:
    """The four children (top-left, top-right, bottom-left, bottom-right; None: absent, ``fill`` per band) as one
    ``(bands, 2·size, 2·size)`` array."""
    whole = np.empty((bands, 2 * size, 2 * size), dtype=np.float64)
    whole[:] = np.reshape(np.broadcast_to(np.asarray(fill, dtype=np.float64), (bands,)), (bands, 1, 1))
    for index, child in enumerate(children):
        if child is None:
            continue
        if child.shape != (bands, size, size):
            raise ValueError(f"child {index} has shape {child.shape}, expected {(bands, size, size)}")
        row, column = divmod(index, 2)
        whole[:, row * size:(row + 1) * size, column * size:(column + 1) * size] = child
    return whole


def parent_from_children(children: Sequence[np.ndarray | None], reducers: Sequence[str], size: int) -> np.ndarray:
    """The parent tile ``(bands, size, size)`` (float32) of four children; ``reducers[b]`` ("sum" or "mean") per band."""
    whole = mosaic(children, len(reducers), size, [ABSENT[reducer] for reducer in reducers])
    blocks = whole.reshape(len(reducers), size, 2, size, 2)
    bands = [REDUCERS[reducer](blocks[band], axis=(1, 3)) for band, reducer in enumerate(reducers)]
    return np.stack(bands).astype(np.float32)
