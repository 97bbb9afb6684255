"""Minor-cycle deconvolution: Hogbom and multi-scale CLEAN (Cornwell 2008), with numba loops.

Images are [y, x] or [chan, y, x] (each channel is cleaned on its own) in Jy/beam; the PSF
has the same pixel size, its peak at its centre pixel, and any size (twice the image's lets
a component subtract over the whole image); it is normalised to its peak. The model is in Jy per pixel. Stopping follows WSClean: a fixed threshold (Jy/beam),
an auto-threshold in units of the residual's noise σ = 1.4826 * MAD, a major-cycle gain
(stop at peak * (1 - mgain)), a mask, and niter.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numba
import numpy as np


class DeconvolutionResult(NamedTuple):
    """model_delta: Jy/pixel added this minor cycle; residual: what is left (Jy/beam); plane_components and
    plane_stop_reasons: each channel's own count and reason (of a [chan, y, x] residual)."""

    model_delta: np.ndarray
    residual: np.ndarray
    n_components: int
    stop_reason: str
    plane_components: tuple[int, ...] = ()
    plane_stop_reasons: tuple[str, ...] = ()


def mad_sigma(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Robust noise estimate 1.4826 × median(|x - median(x)|) of an image (within a mask)."""
    values = image[mask] if mask is not None else image.ravel()
    if values.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


@numba.njit(cache=True, nogil=True)
def _row_max(image, mask, row, use_mask):
    """Largest |value| in a row (within the mask); -1 when the mask excludes the whole row."""
    best = -1.0
    for x in range(image.shape[1]):
        if use_mask and not mask[row, x]:
            continue
        value = abs(image[row, x])
        if value > best:
            best = value
    return best


@numba.njit(cache=True, nogil=True)
def _row_argmax(image, mask, row, use_mask):
    best, where = -1.0, -1
    for x in range(image.shape[1]):
        if use_mask and not mask[row, x]:
            continue
        value = abs(image[row, x])
        if value > best:
            best, where = value, x
    return where


@numba.njit(cache=True, nogil=True)
def _refresh_rows(image, mask, use_mask, row_bound):
    for row in range(image.shape[0]):
        row_bound[row] = _row_max(image, mask, row, use_mask)


@numba.njit(cache=True, nogil=True)
def _find_peak(image, row_bound, mask, use_mask):
    """The row holding the largest |value|: rescan the row with the largest bound until it stays largest.

    row_bound[r] is an upper bound of max |image[r]|, exact for rows rescanned here; so the
    row returned holds the exact global peak, and only a few rows are scanned per call.
    """
    while True:
        row = np.argmax(row_bound)
        exact = _row_max(image, mask, row, use_mask)
        row_bound[row] = exact
        if np.argmax(row_bound) == row or exact < 0:
            return row


@numba.njit(cache=True, nogil=True, fastmath=True)
def _subtract_shifted(image, psf, psf_row_peak, amount, y, x, psf_cy, psf_cx, row_bound):
    """image -= amount * psf centred on (y, x); loosen the row bounds by |amount| × the PSF row peak.

    The inner loop is a plain multiply-add over contiguous rows, which LLVM vectorises; no
    reduction runs here (reductions do not vectorise), the bounds keep the peak search exact.
    """
    ny, nx = image.shape
    py, px = psf.shape
    y0 = max(0, y - psf_cy)
    y1 = min(ny, y - psf_cy + py)
    x0 = max(0, x - psf_cx)
    x1 = min(nx, x - psf_cx + px)
    shift = psf_cx - x
    size = abs(amount)
    for row in range(y0, y1):
        prow = row - y + psf_cy
        target = image[row, x0:x1]
        source = psf[prow, x0 + shift:x1 + shift]
        for col in range(x1 - x0):
            target[col] -= amount * source[col]
        row_bound[row] += size * psf_row_peak[prow]


@numba.njit(cache=True, nogil=True)
def _hogbom_loop(residual, psf, psf_row_peak, model, mask, use_mask, gain, niter, stop_level, psf_cy, psf_cx):
    row_bound = np.empty(residual.shape[0])
    _refresh_rows(residual, mask, use_mask, row_bound)
    for n in range(niter):
        y = _find_peak(residual, row_bound, mask, use_mask)
        if row_bound[y] <= stop_level:
            return n
        x = _row_argmax(residual, mask, y, use_mask)
        amount = gain * residual[y, x]
        model[y, x] += amount
        _subtract_shifted(residual, psf, psf_row_peak, amount, y, x, psf_cy, psf_cx, row_bound)
    return niter


def _stop_level(residual, mask, *, threshold, auto_threshold, mgain, auto_mask=None, weight=None, sigma=None,
                positive_only=False) -> tuple[float, str]:
    """The level (Jy/beam; weighted by ``weight`` when given) at which the peak search stops, and why.

    sigma: the noise the auto levels scale (default: the MAD σ of the residual); positive_only:
    the peak is the largest value, not the largest |value| (with -no-negative).
    """
    searched = residual if weight is None else residual * weight
    if mask is not None and mask.any():
        searched = searched[mask]
    peak = float(np.max(searched) if positive_only else np.max(np.abs(searched)))
    sigma = mad_sigma(residual) if sigma is None else sigma
    levels = {"threshold": float(threshold)}
    if auto_threshold:
        levels["auto-threshold"] = float(auto_threshold) * sigma
    if auto_mask:
        levels["auto-mask"] = float(auto_mask) * sigma
    if mgain is not None and mgain < 1:
        levels["mgain"] = peak * (1.0 - float(mgain))
    reason = max(levels, key=levels.get)
    return levels[reason], reason


def _prepare(residual: np.ndarray, psf: np.ndarray, mask: np.ndarray | None):
    residual = np.asarray(residual, dtype=np.float64)
    psf = np.asarray(psf, dtype=np.float64)
    squeeze = residual.ndim == 2
    if squeeze:
        residual, psf = residual[None], psf[None] if psf.ndim == 2 else psf
    if psf.ndim == 2:
        psf = np.broadcast_to(psf, (residual.shape[0],) + psf.shape)
    if mask is not None:
        mask = np.broadcast_to(np.asarray(mask, bool), residual.shape[-2:])
    return residual, psf, mask, squeeze


def deconvolve(residual: np.ndarray, psf: np.ndarray, *, algorithm: str = "hogbom", gain: float = 0.1,
               niter: int | Sequence[int] = 1000, threshold: float = 0.0, auto_threshold: float | None = None,
               mgain: float | None = None, scales: Sequence[float] = (0, 4, 8, 16), scale_bias: float = 0.6,
               mask: np.ndarray | None = None, auto_mask: float | None = None,
               local_rms_window: float | None = None, no_negative: bool = False) -> DeconvolutionResult:
    """Clean a residual image with its PSF until niter, the threshold, auto-threshold or mgain stops it.

    residual: [y, x] or [chan, y, x] Jy/beam; psf: [y, x] (for all channels) or [chan, y, x];
    gain: loop gain; niter: most components per channel (or one count per channel); threshold:
    Jy/beam; auto_threshold: stop at this many σ (σ = 1.4826 × MAD of the residual); mgain: stop at (1 - mgain) × the
    starting peak (major-cycle gain); algorithm: "hogbom" or "multiscale" (scales in pixels,
    0 = a point; a bias 1 - scale_bias * s / max(s) favours small scales); mask: [y, x] bool,
    components only where true; auto_mask: stop at this many σ as well (WSClean's -auto-mask: the
    caller cleans again within :func:`sdpflow.radio.masks.component_mask` once this level stops a
    minor cycle); local_rms_window: search the residual times σ_min / σ_local, σ_local the RMS in a
    window this many pixels wide, so the auto levels are relative to the local noise (-local-rms);
    no_negative: only positive components (-no-negative). The last two are Hogbom only. Returns the
    model added (Jy/pixel), the residual left, the number of components and why it stopped
    ("niter", "threshold", "auto-threshold", "auto-mask", "mgain").
    Arrays come back float64, in the shape of ``residual``.

    A 0.5 Jy source at the centre of a dirty image is found there, to the threshold:

    >>> import numpy as np
    >>> from sdpflow.radio.layouts import low_like_configuration
    >>> from sdpflow.radio.simulate import make_visibility
    >>> vis = make_visibility(low_like_configuration(8), phase_centre=(0.26, -0.79),  # 8 stations: 28 baselines
    ...                       times=5.0e9 + 60.0 * np.arange(4), interval=60.0,       # 4 integrations (MJD s)
    ...                       frequency=np.array([1.0e8]), channel_width=np.array([1.0e6]))  # 1 channel (Hz)
    >>> vis.vis.shape, vis.vis.dtype                                   # [row, chan, pol], Jy
    ((112, 1, 1), dtype('complex128'))
    >>> cell = np.radians(60 / 3600)                                   # 60 arcsec pixels, in radians
    >>> from sdpflow.radio.imaging import invert_psf
    >>> psf = invert_psf(vis, npix_x=64, npix_y=64, cell_rad=cell).normalised()[0]   # [y, x], peak 1
    >>> result = deconvolve(0.5 * psf, psf, gain=0.5, niter=50, threshold=1e-3)
    >>> result.model_delta.shape, result.stop_reason, result.n_components
    ((64, 64), 'threshold', 9)
    >>> round(float(result.model_delta.sum()), 3), [int(i) for i in np.unravel_index(result.model_delta.argmax(), (64, 64))]
    (0.499, [32, 32])
    """
    if algorithm not in ("hogbom", "multiscale"):
        raise ValueError(f"unknown algorithm {algorithm!r}: choose hogbom or multiscale")
    weighted = local_rms_window is not None or no_negative
    if weighted and algorithm != "hogbom":
        raise ValueError("local RMS and no-negative cleaning are Hogbom only")
    residual, psf, mask, squeeze = _prepare(residual, psf, mask)
    residual = residual.copy()
    model = np.zeros_like(residual)
    budgets = np.broadcast_to(np.asarray(niter, dtype=np.int64), residual.shape[:1])
    counts, reasons = [], []
    for chan, budget in enumerate(budgets.tolist()):
        weight = sigma = None
        if local_rms_window is not None:
            from sdpflow.radio.masks import local_rms_weights

            weight, sigma = local_rms_weights(residual[chan], local_rms_window)
        level, reason = _stop_level(residual[chan], mask, threshold=threshold, auto_threshold=auto_threshold,
                                    mgain=mgain, auto_mask=auto_mask, weight=weight, sigma=sigma,
                                    positive_only=no_negative)
        if weighted:
            from sdpflow.radio.weighted_hogbom import weighted_hogbom

            count = weighted_hogbom(residual[chan], psf[chan], model[chan], mask, weight=weight,
                                    positive_only=no_negative, gain=gain, niter=budget, stop_level=level)
        elif algorithm == "hogbom":
            count = _hogbom(residual[chan], psf[chan], model[chan], mask, gain=gain, niter=budget, stop_level=level)
        else:
            count = _multiscale(residual[chan], psf[chan], model[chan], mask, gain=gain, niter=budget,
                                stop_level=level, scales=scales, scale_bias=scale_bias)
        counts.append(count)
        reasons.append("niter" if count >= budget else reason)
    stop_reason = "niter" if "niter" in reasons else reasons[0]
    if squeeze:
        model, residual = model[0], residual[0]
    return DeconvolutionResult(model, residual, sum(counts), stop_reason, tuple(counts), tuple(reasons))


def _hogbom(residual, psf, model, mask, *, gain, niter, stop_level) -> int:
    peak = psf.max()
    psf_cy, psf_cx = np.unravel_index(np.argmax(psf), psf.shape)
    use_mask = mask is not None
    mask_array = np.ascontiguousarray(mask) if use_mask else np.ones((1, 1), bool)
    # float32 halves the memory traffic of the loop; fluxes stay good to ~1e-6 of the peak.
    work = residual.astype(np.float32)
    delta = np.zeros(residual.shape, np.float32)
    unit_psf = np.ascontiguousarray(psf / peak, dtype=np.float32)
    psf_row_peak = np.abs(unit_psf).max(axis=1).astype(np.float64) * (1 + 1e-6)
    count = int(_hogbom_loop(work, unit_psf, psf_row_peak, delta, mask_array, use_mask, np.float32(gain), int(niter),
                             float(stop_level), int(psf_cy), int(psf_cx)))
    model += delta
    residual[...] = work
    return count


def scale_kernel(scale: float) -> np.ndarray:
    """The multi-scale basis function of a scale (pixels): a unit-sum tapered paraboloid of that diameter."""
    if scale <= 0:
        return np.ones((1, 1))
    radius = scale / 2.0
    half = int(np.ceil(radius))
    y, x = np.mgrid[-half:half + 1, -half:half + 1]
    kernel = np.clip(1.0 - (x**2 + y**2) / radius**2, 0.0, None)
    return kernel / kernel.sum()


def _convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    if kernel.size == 1:
        return image * kernel[0, 0]
    from scipy.signal import fftconvolve  # only multi-scale needs it: keeps worker start-up short

    return fftconvolve(image, kernel, mode="same")


def _multiscale(residual, psf, model, mask, *, gain, niter, stop_level, scales, scale_bias) -> int:
    psf = psf / psf.max()
    psf_cy, psf_cx = np.unravel_index(np.argmax(psf), psf.shape)
    scales = sorted(float(s) for s in scales)
    kernels = [scale_kernel(s) for s in scales]
    n_scales = len(scales)
    largest = max(scales) if max(scales) > 0 else 1.0
    bias = np.array([1.0 - scale_bias * s / largest for s in scales])
    scaled_residuals = np.array([_convolve(residual, k) for k in kernels])
    cross_psf = np.empty((n_scales, n_scales) + psf.shape)
    for s in range(n_scales):
        psf_s = _convolve(psf, kernels[s])
        for t in range(s, n_scales):
            cross_psf[s, t] = cross_psf[t, s] = _convolve(psf_s, kernels[t])
    peak_response = np.array([cross_psf[s, s, psf_cy, psf_cx] for s in range(n_scales)])
    # Each scale searches only where its whole kernel fits in the image (and the mask), so the
    # model and the residual updates stay consistent at the edges.
    base_mask = np.ones(residual.shape, bool) if mask is None else np.asarray(mask, bool)
    scale_masks = []
    for kernel in kernels:
        half = kernel.shape[0] // 2
        inside = np.zeros(residual.shape, bool)
        inside[half:residual.shape[0] - half, half:residual.shape[1] - half] = True
        scale_masks.append(np.ascontiguousarray(base_mask & inside))
    cross_row_peak = np.abs(cross_psf).max(axis=3) * (1 + 1e-9)
    row_bound = np.empty((n_scales, residual.shape[0]))
    for s in range(n_scales):
        _refresh_rows(scaled_residuals[s], scale_masks[s], True, row_bound[s])
    scale_index = scales.index(0.0) if 0.0 in scales else 0
    count = 0
    while count < niter:
        rows = np.array([_find_peak(scaled_residuals[t], row_bound[t], scale_masks[t], True) for t in range(n_scales)])
        if row_bound[scale_index, rows[scale_index]] <= stop_level:
            break
        # Cornwell (2008): each scale's peak, as the flux of a component of that scale, times the
        # small-scale bias.
        strength = row_bound[np.arange(n_scales), rows] / peak_response * bias
        s = int(np.argmax(strength))
        y = int(rows[s])
        x = int(_row_argmax(scaled_residuals[s], scale_masks[s], y, True))
        if x < 0:
            break
        amount = gain * scaled_residuals[s, y, x] / peak_response[s]
        _add_kernel(model, kernels[s], amount, y, x)
        for t in range(n_scales):
            _subtract_shifted(scaled_residuals[t], cross_psf[s, t], cross_row_peak[s, t], amount, y, x, psf_cy,
                              psf_cx, row_bound[t])
        count += 1
    residual[...] = _convolve_back(scaled_residuals, scales, residual, model, psf)
    return count


def _convolve_back(scaled_residuals, scales, residual, model, psf):
    """The point-scale residual (exact); used when scale 0 is absent, else it is tracked directly."""
    return scaled_residuals[scales.index(0.0)] if 0.0 in scales else residual - _convolve(model, psf)


def _add_kernel(model, kernel, amount, y, x):
    half_y, half_x = kernel.shape[0] // 2, kernel.shape[1] // 2
    y0, y1 = max(0, y - half_y), min(model.shape[0], y + half_y + 1)
    x0, x1 = max(0, x - half_x), min(model.shape[1], x + half_x + 1)
    model[y0:y1, x0:x1] += amount * kernel[y0 - y + half_y:y1 - y + half_y, x0 - x + half_x:x1 - x + half_x]
