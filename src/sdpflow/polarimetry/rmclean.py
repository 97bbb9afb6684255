"""Högbom RM-CLEAN (Heald et al. 2009) of a batch of Faraday dispersion functions, with numba.

Each component is cleaned on its own (in parallel over components): while the largest
|residual| is at least the cutoff (Jy) and fewer than ``max_iter`` components were taken, a
clean component ``gain × residual(φ_k)`` is added at φ_k and the RMSF, centred on φ_k,
times it is subtracted from the residual. The clean FDF is the clean components restored
with a Gaussian of the RMSF's FWHM (real, peak 1) plus the residual, as RM-Tools'
``do_rmclean_hogbom`` makes it (without its optional second, windowed pass). RM-Tools' cutoff
of −3 is 3 × the FDF's theoretical noise (``dFDFth``); pass that product in Jy here.

The RMSF axis must be the FDF axis extended to 2 n_phi + 1 samples with the same step (as
:func:`sdpflow.polarimetry.rmsynth.faraday_grid` makes it), so every shift is covered.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _clean_one(fdf, rmsf, cutoff, gain, max_iter, residual, components):
    """Clean one FDF in place into ``residual`` and ``components``; returns the iterations."""
    n_phi = fdf.shape[0]
    centre = rmsf.shape[0] // 2
    for j in range(n_phi):
        residual[j] = fdf[j]
        components[j] = 0.0
    cutoff2 = cutoff * cutoff
    # The largest |residual|² and where, found again while each subtraction passes over it.
    best, where = -1.0, -1
    for j in range(n_phi):
        value = residual[j].real * residual[j].real + residual[j].imag * residual[j].imag
        if value > best:
            best, where = value, j
    iterations = 0
    while iterations < max_iter and where >= 0 and best >= cutoff2:
        cc = gain * residual[where]
        components[where] += cc
        offset = centre - where
        best, where = -1.0, -1
        for j in range(n_phi):
            residual[j] -= cc * rmsf[j + offset]
            value = residual[j].real * residual[j].real + residual[j].imag * residual[j].imag
            if value > best:
                best, where = value, j
        iterations += 1
    return iterations


@numba.njit(cache=True, nogil=True)
def _restore_one(components, residual, gaussian, clean):
    """clean = residual + components convolved with the (truncated, symmetric) Gaussian."""
    n_phi = residual.shape[0]
    half = gaussian.shape[0] // 2
    for j in range(n_phi):
        clean[j] = residual[j]
    for k in range(n_phi):
        cc = components[k]
        if cc.real == 0.0 and cc.imag == 0.0:
            continue
        for d in range(-half, half + 1):
            j = k + d
            if 0 <= j < n_phi:
                clean[j] += cc * gaussian[d + half]


@numba.njit(cache=True, nogil=True)
def _second_moment(components, phi):
    """√(Σ|cc| (φ − φ̄)² / Σ|cc|), φ̄ the |cc|-weighted mean; NaN without components."""
    total, first = 0.0, 0.0
    for j in range(phi.shape[0]):
        a = abs(components[j])
        total += a
        first += a * phi[j]
    if total == 0.0:
        return np.nan
    mean = first / total
    second = 0.0
    for j in range(phi.shape[0]):
        second += abs(components[j]) * (phi[j] - mean) ** 2
    return np.sqrt(second / total)


@numba.njit(cache=True, nogil=True, parallel=True)
def _clean_batch_parallel(fdf, rmsf, cutoff, gain, max_iter, gaussian, phi, residual, components, clean,
                          iterations, mom2):
    for c in numba.prange(fdf.shape[0]):
        iterations[c] = _clean_one(fdf[c], rmsf[c], cutoff[c], gain, max_iter, residual[c], components[c])
        _restore_one(components[c], residual[c], gaussian, clean[c])
        mom2[c] = _second_moment(components[c], phi)


@numba.njit(cache=True, nogil=True)
def _clean_batch_serial(fdf, rmsf, cutoff, gain, max_iter, gaussian, phi, residual, components, clean,
                        iterations, mom2):
    for c in range(fdf.shape[0]):
        iterations[c] = _clean_one(fdf[c], rmsf[c], cutoff[c], gain, max_iter, residual[c], components[c])
        _restore_one(components[c], residual[c], gaussian, clean[c])
        mom2[c] = _second_moment(components[c], phi)


@dataclass(frozen=True)
class CleanResult:
    """RM-CLEAN of a batch. clean_fdf, residual_fdf, components: Jy, [n_components, n_phi];
    n_iter: iterations [n]; mom2_cc: second moment of the clean components, rad/m² [n]
    (RM-Tools' ``mom2CCFDF``; NaN where nothing was above the cutoff)."""

    clean_fdf: np.ndarray
    residual_fdf: np.ndarray
    components: np.ndarray
    n_iter: np.ndarray
    mom2_cc: np.ndarray


def restoring_gaussian(*, fwhm_radm2: float, dphi_radm2: float, extent_fwhm: float = 4.0) -> np.ndarray:
    """The restoring Gaussian (peak 1, FWHM ``fwhm_radm2``) sampled every ``dphi_radm2`` over
    ±``extent_fwhm`` FWHM (beyond 3.2 FWHM it is below 1e-12), float64 [2 h + 1]."""
    half = int(np.ceil(extent_fwhm * fwhm_radm2 / dphi_radm2))
    offsets = dphi_radm2 * np.arange(-half, half + 1)
    sigma = fwhm_radm2 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    return np.exp(-0.5 * (offsets / sigma) ** 2)


def rm_clean(*, fdf: np.ndarray, rmsf: np.ndarray, phi_radm2: np.ndarray, rmsf_fwhm: float,
             cutoff: np.ndarray | float, gain: float = 0.1, max_iter: int = 1000,
             parallel: bool | None = None) -> CleanResult:
    """RM-CLEAN each FDF of a batch (module docstring).

    fdf: Jy, complex [n_components, n_phi]; rmsf: complex [n_components, 2 n_phi + 1] (peak 1
    at its centre); phi_radm2: [n_phi], uniform, rad/m²; rmsf_fwhm: rad/m²; cutoff: Jy, scalar
    or [n_components]. The outputs have the precision of ``fdf`` (complex64 or complex128).
    ``parallel``: clean the components on numba's threads; by default only when called from
    the main thread — a Dask worker's threads already run batches side by side, and numba's
    fallback threading layer (workqueue) must not be entered from several threads at once.
    """
    fdf = np.ascontiguousarray(fdf)
    n, n_phi = fdf.shape
    if rmsf.shape != (n, 2 * n_phi + 1):
        raise ValueError(f"rmsf must be [{n}, {2 * n_phi + 1}] for an FDF of {fdf.shape}; got {rmsf.shape}")
    rmsf = np.ascontiguousarray(rmsf, dtype=fdf.dtype)
    cutoff = np.broadcast_to(np.asarray(cutoff, dtype=np.float64), (n,)).copy()
    phi = np.asarray(phi_radm2, dtype=np.float64)
    gaussian = restoring_gaussian(fwhm_radm2=rmsf_fwhm, dphi_radm2=float(phi[1] - phi[0]))
    residual = np.empty_like(fdf)
    components = np.empty_like(fdf)
    clean = np.empty_like(fdf)
    iterations = np.zeros(n, dtype=np.int64)
    mom2 = np.empty(n, dtype=np.float64)
    if parallel is None:
        parallel = threading.current_thread() is threading.main_thread()
    kernel = _clean_batch_parallel if parallel else _clean_batch_serial
    kernel(fdf, rmsf, cutoff, float(gain), int(max_iter), gaussian.astype(fdf.real.dtype), phi,
           residual, components, clean, iterations, mom2)
    return CleanResult(clean_fdf=clean, residual_fdf=residual, components=components, n_iter=iterations,
                       mom2_cc=mom2)


def significant_second_moment(*, components: np.ndarray, phi_radm2: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """The second moment (rad/m²) of the clean components whose |amplitude| reaches ``threshold``
    (Jy, [n]), [n]: as ``mom2_cc`` but without the small components a 3σ clean takes from noise
    peaks anywhere on the axis (those make ``mom2_cc`` several FWHM wide even for a Faraday-thin
    source). 0 for a single significant sample, NaN when none is significant.

    components: [n, n_phi]; phi_radm2: [n_phi].
    """
    amplitude = np.abs(components)
    weight = np.where(amplitude >= np.asarray(threshold, dtype=np.float64)[:, None], amplitude, 0.0)
    total = weight.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (weight @ phi_radm2) / total
        return np.sqrt(np.sum(weight * (phi_radm2[None, :] - mean[:, None]) ** 2, axis=1) / total)
