"""Joined Hogbom CLEAN (WSClean's ``-join-polarizations`` and ``-join-channels``).

The planes are split into groups (e.g. one group per Stokes parameter, holding its channels);
the peaks are searched in the joined image J = sqrt(Σ_groups (mean of the group's planes)²),
and each component is subtracted from every plane with that plane's own value at the peak:
all planes get components at the same pixels. With one plane per group (joined polarisations)
J is the root sum of squares, so a source faint in each of Q and U but bright in polarised
intensity is found and the signs of Q and U are kept; with one group of channels (joined
channels) J is the absolute multi-frequency mean, as WSClean's. Images are [plane, y, x]
Jy/beam; the PSF [plane, y, x] (or [y, x] for all) has its peak at its centre and may be any
size; the model is Jy/pixel.
"""

from __future__ import annotations

import numpy as np

from sdpflow.radio.deconvolution import DeconvolutionResult, mad_sigma


def _group_means(residual: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    """[group, y, x]: the mean of each group's planes."""
    return np.stack([residual[group].mean(axis=0) for group in groups])


def joined_stop_level(residual: np.ndarray, *, threshold: float, auto_threshold: float | None,
                      mgain: float | None, groups: list[list[int]] | None = None,
                      auto_mask: float | None = None) -> tuple[float, str]:
    """The level of the joined image (see the module) at which cleaning stops, and which criterion set it.

    threshold: Jy/beam; auto_threshold: in units of sqrt(Σ_g σ_g²), σ_g the MAD noise of each
    group's mean; mgain: stop at (1 - mgain) × the joined starting peak; auto_mask: as
    auto_threshold (WSClean's -auto-mask level).
    """
    means = _group_means(residual, groups or [[p] for p in range(len(residual))])
    joined = np.sqrt(np.sum(means**2, axis=0))
    levels = {"threshold": float(threshold)}
    sigma = float(np.sqrt(sum(mad_sigma(m) ** 2 for m in means)))
    if auto_threshold:
        levels["auto-threshold"] = float(auto_threshold) * sigma
    if auto_mask:
        levels["auto-mask"] = float(auto_mask) * sigma
    if mgain is not None and mgain < 1:
        levels["mgain"] = float(joined.max()) * (1.0 - float(mgain))
    reason = max(levels, key=levels.get)
    return levels[reason], reason


def spectral_projection(frequency: np.ndarray, terms: int, weights: np.ndarray | None = None) -> np.ndarray:
    """The [chan, chan] matrix that replaces values at ``frequency`` (Hz, [chan]) by the weighted least-squares
    polynomial of ``terms`` terms in frequency through them (WSClean's ``-fit-spectral-pol``).

    The polynomial is in ν/ν_mean − 1 (the same fit as in ν, better conditioned); weights
    [chan] (summed imaging weights; default equal) weight each channel in the fit. With
    ``terms`` ≥ the number of channels the values are kept as they are (the identity).
    """
    frequency = np.asarray(frequency, dtype=np.float64)
    if terms >= len(frequency):
        return np.eye(len(frequency))
    weights = np.ones_like(frequency) if weights is None else np.asarray(weights, dtype=np.float64)
    basis = np.vander(frequency / frequency.mean() - 1.0, terms, increasing=True)  # [chan, terms]
    weighted = basis * weights[:, None]
    return basis @ np.linalg.solve(basis.T @ weighted, weighted.T)


def deconvolve_joined(residual: np.ndarray, psf: np.ndarray, *, gain: float = 0.1, niter: int = 1000,
                      threshold: float = 0.0, auto_threshold: float | None = None,
                      mgain: float | None = None, groups: list[list[int]] | None = None,
                      spectral: np.ndarray | None = None, mask: np.ndarray | None = None,
                      auto_mask: float | None = None) -> DeconvolutionResult:
    """Joined Hogbom CLEAN of the planes of ``residual`` [plane, y, x] (see the module).

    groups: plane indices of each group (default: each plane its own). Each iteration takes
    the pixel where the joined image peaks and adds gain × r_p there to
    plane p's model, subtracting it times plane p's unit-peak PSF. Stops after ``niter``
    components or when the joined peak falls to the stop level (:func:`joined_stop_level`).
    spectral: a [group size, group size] matrix (:func:`spectral_projection`) applied to each
    group's values at the peak before they are added: the component's spectrum is then the
    fitted polynomial, not the channels' raw values (groups of equal size, e.g. channels). mask:
    [y, x] bool, components only where true; auto_mask: see :func:`joined_stop_level`. Returns the model added (Jy/pixel), the residual, the number of components and the reason.
    """
    residual = np.array(residual, dtype=np.float64)
    n_planes, ny, nx = residual.shape
    psf = np.asarray(psf, dtype=np.float64)
    if psf.ndim == 2:
        psf = np.broadcast_to(psf, (n_planes,) + psf.shape)
    unit_psf = psf / psf.reshape(n_planes, -1).max(axis=1)[:, None, None]
    psf_cy, psf_cx = np.unravel_index(np.argmax(unit_psf[0]), unit_psf.shape[1:])
    groups = groups or [[p] for p in range(n_planes)]
    level, reason = joined_stop_level(residual, threshold=threshold, auto_threshold=auto_threshold, mgain=mgain,
                                      groups=groups, auto_mask=auto_mask)
    model = np.zeros_like(residual)
    squares = np.sum(_group_means(residual, groups) ** 2, axis=0)
    outside = None if mask is None else ~np.asarray(mask, bool)
    if outside is not None:
        squares[outside] = -1.0
    count = 0
    while count < niter:
        where = int(np.argmax(squares))
        y, x = divmod(where, nx)
        if squares[y, x] < 0 or np.sqrt(squares[y, x]) <= level:  # < 0: the mask excludes every pixel
            break
        amount = gain * residual[:, y, x]
        if spectral is not None:
            for group in groups:
                amount[group] = spectral @ amount[group]
        model[:, y, x] += amount
        # the overlap of the PSF centred on (y, x) with the image
        y0, y1 = max(0, y - psf_cy), min(ny, y - psf_cy + unit_psf.shape[1])
        x0, x1 = max(0, x - psf_cx), min(nx, x - psf_cx + unit_psf.shape[2])
        window = unit_psf[:, y0 - y + psf_cy:y1 - y + psf_cy, x0 - x + psf_cx:x1 - x + psf_cx]
        residual[:, y0:y1, x0:x1] -= amount[:, None, None] * window
        squares[y0:y1, x0:x1] = np.sum(_group_means(residual[:, y0:y1, x0:x1], groups) ** 2, axis=0)
        if outside is not None:
            squares[y0:y1, x0:x1][outside[y0:y1, x0:x1]] = -1.0
        count += 1
    return DeconvolutionResult(model, residual, count, "niter" if count >= niter else reason)
