"""RM synthesis of whole cubes, pixel by pixel: peak polarised intensity and peak Faraday depth maps.

As RM-Tools' ``rmsynth3d`` without a Stokes I model: the FDF of Q + iU itself (Jy/beam per
RMSF), every pixel with the same channel weights 1/σ², σ the channel's robust noise (the mean
of Q's and U's 1.4826 × MAD over the plane). The peak is refined by the parabola through its
three samples (:func:`sdpflow.polarimetry.peak.measure_peak`); a pixel whose channels are all
non-finite, or whose peak lies beyond the axis, is NaN.
"""

from __future__ import annotations

import numpy as np

from sdpflow.polarimetry.peak import measure_peak
from sdpflow.polarimetry.rmsynth import FaradayGrid, rm_synthesis

#: Pixels per matrix product (bounds memory: an FDF is n_phi complex64 samples per pixel).
PIXELS_PER_CHUNK = 1024


def channel_noise(*, stokes_q: np.ndarray, stokes_u: np.ndarray) -> np.ndarray:
    """Robust noise per channel (Jy/beam), [chan], of Q and U planes [chan, ny, nx] (NaN ignored)."""
    def mad(cube):
        flat = cube.reshape(cube.shape[0], -1)
        median = np.nanmedian(flat, axis=1, keepdims=True)
        return 1.4826 * np.nanmedian(np.abs(flat - median), axis=1)

    return 0.5 * (mad(np.asarray(stokes_q, dtype=np.float64)) + mad(np.asarray(stokes_u, dtype=np.float64)))


def peak_maps(*, stokes_q: np.ndarray, stokes_u: np.ndarray, noise: np.ndarray,
              grid: FaradayGrid) -> tuple[np.ndarray, np.ndarray]:
    """(peak polarised intensity Jy/beam, its Faraday depth rad/m²), each [ny, nx], of Q and U
    [chan, ny, nx] (Jy/beam) on the channels of ``grid``, with per-channel σ ``noise`` [chan]."""
    n_chan, ny, nx = np.shape(stokes_q)
    q = np.asarray(stokes_q, dtype=np.float64).reshape(n_chan, -1).T
    u = np.asarray(stokes_u, dtype=np.float64).reshape(n_chan, -1).T
    sigma = np.broadcast_to(np.asarray(noise, dtype=np.float64), (1, n_chan))
    peak_pi = np.full(q.shape[0], np.nan)
    peak_rm = np.full(q.shape[0], np.nan)
    var_lambda2 = float(np.var(grid.lambda2_m2, ddof=1))
    for start in range(0, q.shape[0], PIXELS_PER_CHUNK):
        rows = slice(start, min(start + PIXELS_PER_CHUNK, q.shape[0]))
        n = rows.stop - rows.start
        ones = np.ones((n, n_chan))
        synth = rm_synthesis(stokes_q=q[rows], stokes_u=u[rows], stokes_q_err=np.broadcast_to(sigma, (n, n_chan)),
                             stokes_u_err=np.broadcast_to(sigma, (n, n_chan)), stokes_i_model=ones,
                             i_model_at=lambda frequency, n=n: np.ones(n), grid=grid, with_rmsf=False)
        used = synth.n_good > 2
        if not used.any():
            continue
        peak = measure_peak(fdf=synth.fdf[used], phi_radm2=grid.phi_radm2, rmsf_fwhm=grid.rmsf_fwhm,
                            fdf_noise=synth.fdf_noise[used], lambda0_sq_m2=synth.lambda0_sq_m2[used],
                            n_channels=synth.n_good[used], var_lambda2_m4=var_lambda2)
        index = np.arange(rows.start, rows.stop)[used]
        peak_pi[index] = peak.polint_fit
        peak_rm[index] = peak.rm
    return peak_pi.reshape(ny, nx), peak_rm.reshape(ny, nx)
