"""Joined-polarisation Hogbom CLEAN (WSClean's ``-join-polarizations``).

The peaks are searched in the root of the sum of squares of the planes (e.g. the Stokes
parameters of one channel), and each component is subtracted from every plane with that
plane's own value at the peak: all planes get components at the same pixels, so a source
faint in each of Q and U but bright in polarised intensity is found, and the signs of Q and U
are kept. Images are [plane, y, x] Jy/beam; the PSF [plane, y, x] (or [y, x] for all) has its
peak at its centre and may be any size; the model is Jy/pixel.
"""

from __future__ import annotations

import numpy as np

from sdpflow.radio.deconvolution import DeconvolutionResult, mad_sigma


def joined_stop_level(residual: np.ndarray, *, threshold: float, auto_threshold: float | None,
                      mgain: float | None) -> tuple[float, str]:
    """The level of the joined image sqrt(Σ_p r_p²) at which cleaning stops, and which criterion set it.

    threshold: Jy/beam; auto_threshold: in units of sqrt(Σ_p σ_p²), σ_p the MAD noise of each
    plane; mgain: stop at (1 - mgain) × the joined starting peak.
    """
    joined = np.sqrt(np.sum(residual**2, axis=0))
    levels = {"threshold": float(threshold)}
    if auto_threshold:
        levels["auto-threshold"] = float(auto_threshold) * float(np.sqrt(sum(mad_sigma(p) ** 2 for p in residual)))
    if mgain is not None and mgain < 1:
        levels["mgain"] = float(joined.max()) * (1.0 - float(mgain))
    reason = max(levels, key=levels.get)
    return levels[reason], reason


def deconvolve_joined(residual: np.ndarray, psf: np.ndarray, *, gain: float = 0.1, niter: int = 1000,
                      threshold: float = 0.0, auto_threshold: float | None = None,
                      mgain: float | None = None) -> DeconvolutionResult:
    """Joined Hogbom CLEAN of the planes of ``residual`` [plane, y, x] (see the module).

    Each iteration takes the pixel where sqrt(Σ_p r_p²) peaks and adds gain × r_p there to
    plane p's model, subtracting it times plane p's unit-peak PSF. Stops after ``niter``
    components or when the joined peak falls to the stop level (:func:`joined_stop_level`).
    Returns the model added (Jy/pixel), the residual, the number of components and the reason.
    """
    residual = np.array(residual, dtype=np.float64)
    n_planes, ny, nx = residual.shape
    psf = np.asarray(psf, dtype=np.float64)
    if psf.ndim == 2:
        psf = np.broadcast_to(psf, (n_planes,) + psf.shape)
    unit_psf = psf / psf.reshape(n_planes, -1).max(axis=1)[:, None, None]
    psf_cy, psf_cx = np.unravel_index(np.argmax(unit_psf[0]), unit_psf.shape[1:])
    level, reason = joined_stop_level(residual, threshold=threshold, auto_threshold=auto_threshold, mgain=mgain)
    model = np.zeros_like(residual)
    squares = np.sum(residual**2, axis=0)
    count = 0
    while count < niter:
        where = int(np.argmax(squares))
        y, x = divmod(where, nx)
        if np.sqrt(squares[y, x]) <= level:
            break
        amount = gain * residual[:, y, x]
        model[:, y, x] += amount
        # the overlap of the PSF centred on (y, x) with the image
        y0, y1 = max(0, y - psf_cy), min(ny, y - psf_cy + unit_psf.shape[1])
        x0, x1 = max(0, x - psf_cx), min(nx, x - psf_cx + unit_psf.shape[2])
        window = unit_psf[:, y0 - y + psf_cy:y1 - y + psf_cy, x0 - x + psf_cx:x1 - x + psf_cx]
        residual[:, y0:y1, x0:x1] -= amount[:, None, None] * window
        squares[y0:y1, x0:x1] = np.sum(residual[:, y0:y1, x0:x1] ** 2, axis=0)
        count += 1
    return DeconvolutionResult(model, residual, count, "niter" if count >= niter else reason)
