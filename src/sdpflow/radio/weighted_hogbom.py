"""Hogbom CLEAN whose peak search is weighted by local-noise factors and may take positive peaks only.

WSClean's -local-rms (the residual times σ_min / σ_local is searched, so thresholds are relative to
the local noise) and -no-negative (only positive components). The search keeps an upper bound per
row, as :mod:`sdpflow.radio.deconvolution` does, so few rows are rescanned per component.
"""

from __future__ import annotations

import numba
import numpy as np

from sdpflow.radio.deconvolution import _subtract_shifted

#: the bound of a row the mask excludes: finite, as _subtract_shifted (fastmath) adds to it
_EXCLUDED = -1.0e300


@numba.njit(cache=True, nogil=True)
def _row_best(image, weight, mask, row, use_mask, positive_only):
    """(largest weighted value, its column) of a row: |value| × weight, or value × weight when
    positive_only; (_EXCLUDED, -1) when the mask excludes the whole row."""
    best, where = _EXCLUDED, -1
    for x in range(image.shape[1]):
        if use_mask and not mask[row, x]:
            continue
        value = image[row, x] * weight[row, x]
        if not positive_only:
            value = abs(value)
        if value > best:
            best, where = value, x
    return best, where


@numba.njit(cache=True, nogil=True)
def _peak_row(image, weight, row_bound, mask, use_mask, positive_only):
    """The row holding the largest weighted value (row_bound: upper bounds, made exact where rescanned)."""
    while True:
        row = np.argmax(row_bound)
        exact = _row_best(image, weight, mask, row, use_mask, positive_only)[0]
        row_bound[row] = exact
        if np.argmax(row_bound) == row or exact <= _EXCLUDED:
            return row


@numba.njit(cache=True, nogil=True)
def _weighted_hogbom_loop(residual, weight, psf, psf_row_bound, model, mask, use_mask, positive_only, gain, niter,
                          stop_level, psf_cy, psf_cx):
    row_bound = np.empty(residual.shape[0])
    for row in range(residual.shape[0]):
        row_bound[row] = _row_best(residual, weight, mask, row, use_mask, positive_only)[0]
    for n in range(niter):
        y = _peak_row(residual, weight, row_bound, mask, use_mask, positive_only)
        if row_bound[y] <= stop_level:
            return n
        x = _row_best(residual, weight, mask, y, use_mask, positive_only)[1]
        amount = gain * residual[y, x]
        model[y, x] += amount
        _subtract_shifted(residual, psf, psf_row_bound, amount, y, x, psf_cy, psf_cx, row_bound)
    return niter


def weighted_hogbom(residual: np.ndarray, psf: np.ndarray, model: np.ndarray, mask: np.ndarray | None, *,
                    weight: np.ndarray | None, positive_only: bool, gain: float, niter: int,
                    stop_level: float) -> int:
    """Clean ``residual`` [y, x] (Jy/beam, in place) into ``model`` [y, x] (Jy/pixel, added to in place).

    psf: [y, x] with its peak at its centre pixel; mask: [y, x] bool or None; weight: [y, x] factors
    in (0, 1] by which the residual is multiplied for the peak search and the stop (None: 1);
    positive_only: only positive peaks become components; stop_level: in weighted Jy/beam.
    Each component is gain × the residual at the peak (not weighted). Returns the number of components.
    """
    peak = psf.max()
    psf_cy, psf_cx = np.unravel_index(np.argmax(psf), psf.shape)
    use_mask = mask is not None
    mask_array = np.ascontiguousarray(mask) if use_mask else np.ones((1, 1), bool)
    weight = np.ones(residual.shape) if weight is None else np.asarray(weight, dtype=np.float64)
    work = residual.astype(np.float32)
    delta = np.zeros(residual.shape, np.float32)
    unit_psf = np.ascontiguousarray(psf / peak, dtype=np.float32)
    # a component changes a weighted row by at most |amount| × the PSF row peak × the largest weight
    psf_row_bound = np.abs(unit_psf).max(axis=1).astype(np.float64) * float(weight.max()) * (1 + 1e-6)
    count = int(_weighted_hogbom_loop(work, np.ascontiguousarray(weight, dtype=np.float32), unit_psf, psf_row_bound,
                                      delta, mask_array, use_mask, bool(positive_only), np.float32(gain), int(niter),
                                      float(stop_level), int(psf_cy), int(psf_cx)))
    model += delta
    residual[...] = work
    return count
