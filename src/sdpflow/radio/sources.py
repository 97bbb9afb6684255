"""A source list from a clean model: components merged within a beam.

The model image holds clean components (Jy per pixel). Components are taken brightest first;
each joins the source whose brightest component lies within a beam (FWHM) of it, or starts a
new source. A source's flux is the sum of its components and its position their flux-weighted
centroid. Joining to the brightest component (not to any neighbour) keeps a chain of faint
components from linking two bright sources.
"""

from __future__ import annotations

import numpy as np


def merge_components(model: np.ndarray, radius_pixels: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sources from a model image [y, x] (Jy/pixel): (x [source] pixels, y [source] pixels, flux [source] Jy).

    radius_pixels: how far (pixels) a component may lie from its source's brightest
    component, e.g. the restoring beam's FWHM. Sources come brightest first.

    >>> model = np.zeros((32, 32)); model[10, 10] = 1.0; model[10, 12] = 0.5; model[25, 5] = 0.2
    >>> x, y, flux = merge_components(model, radius_pixels=3.0)
    >>> [round(float(v), 3) for v in flux], [round(float(v), 3) for v in x]
    ([1.5, 0.2], [10.667, 5.0])
    """
    row, column = np.nonzero(np.isfinite(model) & (model != 0))
    value = model[row, column].astype(np.float64)
    order = np.argsort(-value)
    row, column, value = row[order], column[order], value[order]
    seeds_x: list[float] = []
    seeds_y: list[float] = []
    owner = np.empty(len(value), dtype=np.int64)
    for index, (y, x) in enumerate(zip(row, column)):
        if seeds_x:
            distance = np.hypot(np.asarray(seeds_x) - x, np.asarray(seeds_y) - y)
            nearest = int(np.argmin(distance))
            if distance[nearest] <= radius_pixels:
                owner[index] = nearest
                continue
        owner[index] = len(seeds_x)
        seeds_x.append(float(x))
        seeds_y.append(float(y))
    count = len(seeds_x)
    flux = np.bincount(owner, weights=value, minlength=count)
    safe = np.where(flux == 0, 1.0, flux)
    x = np.bincount(owner, weights=value * column, minlength=count) / safe
    y = np.bincount(owner, weights=value * row, minlength=count) / safe
    brightest = np.argsort(-flux)
    return x[brightest], y[brightest], flux[brightest]
