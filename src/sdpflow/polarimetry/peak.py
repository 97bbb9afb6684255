"""The peak of a Faraday dispersion function and what RM-Tools derives from it, for a batch.

The peak is the largest |FDF| away from the two edge samples, refined by the parabola through
it and its two neighbours (RM-Tools' ``phiPeakPIfit`` and ``ampPeakPIfit``). From it, with σ
the FDF's noise per real and imaginary part (Jy) and FWHM the RMSF's (rad/m²):

* rm_err = FWHM σ / (2 P) (Brentjens & de Bruyn 2005; ``dPhiPeakPIfit_rm2``), polint_err = σ;
* polint = √(P² − 2.3 σ²) where P/σ ≥ 5, else P (George et al. 2012; ``ampPeakPIfitEff``);
* polangle = ½ arg FDF(rm) mod 180°, FDF linearly interpolated at rm, error σ/(2P) rad
  (B&dB eq. A.12); the angle is the one at λ₀²;
* derot_polangle = polangle − rm λ₀² mod 180°, error from B&dB eq. A.20:
  σ_χ₀² = σ² N / (4 (N − 2) P²) × ((N − 1)/N + λ₀⁴ / var(λ²)), N the channels used.

A peak fitted beyond the axis (|rm| > φ_max) gives NaN for rm and polint, as in RM-Tools.
Angles are in degrees, as RMTable has them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Polarised signal-to-noise above which polint is corrected for the Ricean bias.
BIAS_CORRECTION_SNR = 5.0


@dataclass(frozen=True)
class FDFPeak:
    """Peak measurements of a batch, each [n_components], float64.

    rm, rm_err: rad/m²; polint (bias-corrected), polint_fit (the parabola's peak), polint_err:
    Jy; snr_polint = polint_fit / polint_err; stokesQ, stokesU: the FDF at rm (Jy, the real and
    imaginary parts RM-Tools calls ``peakFDFrealFit``/``peakFDFimagFit``); polangle, polangle_err, derot_polangle,
    derot_polangle_err: degrees; peak_index: the FDF sample of the peak (int64).
    """

    rm: np.ndarray
    rm_err: np.ndarray
    polint: np.ndarray
    polint_fit: np.ndarray
    polint_err: np.ndarray
    snr_polint: np.ndarray
    stokesQ: np.ndarray
    stokesU: np.ndarray
    polangle: np.ndarray
    polangle_err: np.ndarray
    derot_polangle: np.ndarray
    derot_polangle_err: np.ndarray
    peak_index: np.ndarray


def measure_peak(*, fdf: np.ndarray, phi_radm2: np.ndarray, rmsf_fwhm: float, fdf_noise: np.ndarray,
                 lambda0_sq_m2: np.ndarray, n_channels: np.ndarray, var_lambda2_m4: float) -> FDFPeak:
    """Measure the peak of each FDF (module docstring).

    fdf: Jy, complex [n_components, n_phi] on the uniform axis ``phi_radm2`` [n_phi] (rad/m²);
    rmsf_fwhm: rad/m²; fdf_noise: σ, Jy [n]; lambda0_sq_m2: λ₀², m² [n]; n_channels: channels
    used, [n] (or a scalar); var_lambda2_m4: the sample variance of the band's λ², m⁴.
    """
    fdf = np.asarray(fdf)
    n, n_phi = fdf.shape
    amp = np.abs(fdf).astype(np.float64)
    rows = np.arange(n)
    k = np.argmax(amp[:, 1:-1], axis=1) + 1
    left, mid, right = amp[rows, k - 1], amp[rows, k], amp[rows, k + 1]
    curvature = left - 2.0 * mid + right
    dphi = float(phi_radm2[1] - phi_radm2[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curvature != 0, 0.5 * (left - right) / curvature, 0.0)
        peak = mid - 0.125 * (left - right) ** 2 / np.where(curvature != 0, curvature, np.inf)
    rm = phi_radm2[k] + offset * dphi
    outside = np.abs(rm) > np.max(np.abs(phi_radm2))
    rm = np.where(outside, np.nan, rm)
    peak = np.where(outside, np.nan, peak)
    sigma = np.asarray(fdf_noise, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = peak / sigma
        rm_err = rmsf_fwhm * sigma / (2.0 * peak)
        polint = np.where(snr >= BIAS_CORRECTION_SNR, np.sqrt(peak**2 - 2.3 * sigma**2), peak)
    # FDF at rm by linear interpolation between the two samples around it.
    position = np.clip(np.nan_to_num((rm - phi_radm2[0]) / dphi, nan=0.0), 0, n_phi - 1)
    lower = np.minimum(np.floor(position).astype(np.int64), n_phi - 2)
    frac = position - lower
    value = fdf[rows, lower] * (1.0 - frac) + fdf[rows, lower + 1] * frac
    polangle_rad = 0.5 * np.arctan2(value.imag, value.real)
    polangle = np.degrees(polangle_rad) % 180.0
    lambda0_sq = np.asarray(lambda0_sq_m2, dtype=np.float64)
    derot = np.degrees(np.radians(polangle) - rm * lambda0_sq) % 180.0
    n_chan = np.asarray(n_channels, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        polangle_err = np.degrees(sigma / (2.0 * peak))
        derot_err = np.degrees(np.sqrt(sigma**2 * n_chan / (4.0 * (n_chan - 2.0) * peak**2)
                                       * ((n_chan - 1.0) / n_chan + lambda0_sq**2 / var_lambda2_m4)))
    nan_rm = np.isnan(rm)
    polangle = np.where(nan_rm, np.nan, polangle)
    derot = np.where(nan_rm, np.nan, derot)
    return FDFPeak(rm=rm, rm_err=rm_err, polint=polint, polint_fit=peak, polint_err=sigma, snr_polint=snr,
                   stokesQ=np.where(nan_rm, np.nan, value.real), stokesU=np.where(nan_rm, np.nan, value.imag),
                   polangle=polangle, polangle_err=polangle_err, derot_polangle=derot,
                   derot_polangle_err=derot_err, peak_index=k)
