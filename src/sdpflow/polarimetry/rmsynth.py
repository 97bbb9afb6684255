"""RM synthesis (Brentjens & de Bruyn 2005) for a batch of components, on RM-Tools' grid.

Spectra are [n_components, n_channels]: frequencies in Hz, flux densities in Jy, λ² in m²,
Faraday depth in rad/m². The Faraday depth grid follows RM-Tools' ``run_rmsynth`` defaults,
so that both give the same axis for the same band:

* FWHM of the RMSF = 3.8 / (λ²_max − λ²_min) (Dickey et al. 2019, RM-Tools' ``fwhmRMSF``);
* dφ = FWHM / n_samples (n_samples = 10);
* φ_max = max(√3 / δλ²_max, 10 × FWHM), δλ²_max the largest step in λ² between adjacent
  channels (the widest channel spacing sets where the sensitivity to a Faraday depth falls);
* φ = k dφ for k = −N … N with N = round(φ_max / dφ); the RMSF axis runs over −2N−1 … 2N+1
  so that it covers every shift of the FDF axis (RM-CLEAN needs that).

The FDF of component c is ``I_ref[c] · K[c] Σ w[c, ch] p[c, ch] exp(−2iφ(λ²_ch − λ₀²[c]))``
with p = (Q + iU) / I_model (fractional spectra), w = 1/σ_qu² per channel (σ_qu the mean of
the q and u errors), K = 1/Σw, λ₀² = K Σ w λ² (the weighted mean, B&dB eq. 32) and I_ref the
Stokes I model at ν₀ = c/λ₀: so the FDF is in Jy (per RMSF beam). Channels whose q, u or
weight is not finite get weight 0. The FDF's theoretical noise counts the channels used only;
RM-Tools 1.5 also counts the weights of flagged (NaN) channels in its ``dFDFth``, so with
flagged channels its noise and the errors built on it are smaller than these by about
√(Σw_used / Σw_all). Both the FDF and the RMSF come from one matrix product per
batch against the shared kernel exp(−2iφλ²); only the weights and λ₀² differ per component.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Speed of light, m/s.
SPEED_OF_LIGHT = 299_792_458.0


def lambda2_from_frequency(*, frequency_hz: np.ndarray) -> np.ndarray:
    """λ² = (c/ν)², m², float64, the shape of ``frequency_hz`` (Hz)."""
    return (SPEED_OF_LIGHT / np.asarray(frequency_hz, dtype=np.float64)) ** 2


@dataclass(frozen=True)
class FaradayGrid:
    """A Faraday depth axis and its RMSF axis (rad/m², float64).

    phi_radm2: [n_phi] (n_phi = 2N + 1, zero at the centre); phi2_radm2: [2 n_phi + 1];
    dphi_radm2 the step; rmsf_fwhm the RMSF's theoretical FWHM (rad/m²); lambda2_m2 the
    band's λ² [n_channels].
    """

    phi_radm2: np.ndarray
    phi2_radm2: np.ndarray
    dphi_radm2: float
    rmsf_fwhm: float
    lambda2_m2: np.ndarray
    _kernels: dict = field(default_factory=dict, compare=False, repr=False)

    def __getstate__(self) -> dict:
        # The kernels (MBs) are not shipped with the grid (to Dask workers): made again there.
        return {name: value for name, value in self.__dict__.items() if name != "_kernels"}

    def __setstate__(self, state: dict) -> None:
        for name, value in {**state, "_kernels": {}}.items():
            object.__setattr__(self, name, value)

    @property
    def lambda2_centre_m2(self) -> float:
        """The band's mean λ² (m²): the kernels' phases are taken about it, to keep them small."""
        return float(np.mean(self.lambda2_m2))

    def fdf_kernel(self, dtype) -> np.ndarray:
        """exp(−2iφ(λ² − centre)), ``dtype`` [n_channels, n_phi]; computed once per dtype."""
        key = ("fdf", np.dtype(dtype))
        if key not in self._kernels:
            angle = -2.0 * np.outer(self.lambda2_m2 - self.lambda2_centre_m2, self.phi_radm2)
            self._kernels[key] = np.exp(1j * angle).astype(dtype)
        return self._kernels[key]

    def rmsf_kernel(self, dtype) -> np.ndarray:
        """[cos | sin](2φ(λ² − centre)) for φ ≥ 0 of the RMSF axis, real ``dtype``
        [n_channels, 2 (n_phi + 1)]; computed once per dtype."""
        key = ("rmsf", np.dtype(dtype))
        if key not in self._kernels:
            half = self.phi2_radm2[self.phi2_radm2.size // 2:]
            angle = 2.0 * np.outer(self.lambda2_m2 - self.lambda2_centre_m2, half)
            self._kernels[key] = np.concatenate([np.cos(angle), np.sin(angle)], axis=1).astype(dtype)
        return self._kernels[key]

    @property
    def n_phi(self) -> int:
        return self.phi_radm2.size

    @property
    def phi_max_radm2(self) -> float:
        return float(self.phi_radm2[-1])


def faraday_grid(*, frequency_hz: np.ndarray, n_samples: float = 10.0,
                 phi_max_radm2: float | None = None, dphi_radm2: float | None = None) -> FaradayGrid:
    """RM-Tools' default Faraday depth grid for a band (module docstring).

    frequency_hz: [n_channels], Hz. ``dphi_radm2`` and ``phi_max_radm2`` (rad/m²) replace the
    defaults when given, as RM-Tools' ``dPhi_radm2`` and ``phiMax_radm2`` do.
    """
    lam2 = lambda2_from_frequency(frequency_hz=frequency_hz)
    if lam2.ndim != 1 or lam2.size < 2:
        raise ValueError("frequency_hz must be a 1-D array of at least two channels")
    fwhm = 3.8 / (np.nanmax(lam2) - np.nanmin(lam2))
    dphi = fwhm / n_samples if dphi_radm2 is None else float(dphi_radm2)
    if phi_max_radm2 is None:
        phi_max_radm2 = max(np.sqrt(3.0) / np.nanmax(np.abs(np.diff(lam2))), 10.0 * fwhm)
    half = int(round(abs(phi_max_radm2 / dphi)))
    n_phi = 2 * half + 1
    n_phi2 = 2 * n_phi + 1
    phi = dphi * (np.arange(n_phi) - n_phi // 2)
    phi2 = dphi * (np.arange(n_phi2) - n_phi2 // 2)
    return FaradayGrid(phi_radm2=phi, phi2_radm2=phi2, dphi_radm2=float(dphi), rmsf_fwhm=float(fwhm),
                       lambda2_m2=lam2)


def channel_weights(*, stokes_q_err: np.ndarray, stokes_u_err: np.ndarray, stokes_i_model: np.ndarray,
                    valid: np.ndarray | None = None) -> np.ndarray:
    """Inverse-variance weights of the fractional spectra, 1/σ_qu², float64 [n_components, n_channels].

    σ_qu = |σ_Q + σ_U| / (2 I_model) (RM-Tools' ``dquArr``); σ_Q, σ_U and I_model in Jy.
    Channels where σ_qu is not finite and positive, or ``valid`` is False, get weight 0.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sigma_qu = np.abs((stokes_q_err + stokes_u_err) / stokes_i_model) / 2.0
        weights = 1.0 / sigma_qu**2
    good = np.isfinite(weights) & (sigma_qu > 0)
    if valid is not None:
        good &= valid
    return np.where(good, weights, 0.0)


def _phase_ramp(phi_radm2: np.ndarray, shift_m2: np.ndarray, dtype) -> np.ndarray:
    """exp(2iφ·shift) per component, ``dtype`` [n_components, n_phi], φ a uniform axis (rad/m²)
    and shift in m² [n_components].

    φ_k = φ_0 + k dφ with k = a B + b, so the ramp is the outer product of exp(2i(φ_0 + b dφ)s)
    (b < B) and exp(2i a B dφ s) (a < A): (A + B) ≈ 2√n exact exponentials per component
    instead of n, and no error accumulates.
    """
    n = phi_radm2.size
    dphi = float(phi_radm2[1] - phi_radm2[0]) if n > 1 else 0.0
    block = max(1, int(np.ceil(np.sqrt(n))))
    blocks = -(-n // block)
    s = np.asarray(shift_m2, dtype=np.float64)[:, None]
    fine = np.exp(2j * s * (phi_radm2[0] + dphi * np.arange(block)))
    coarse = np.exp(2j * s * (dphi * block * np.arange(blocks)))
    ramp = (coarse[:, :, None] * fine[:, None, :]).reshape(s.shape[0], blocks * block)[:, :n]
    return ramp.astype(dtype)


@dataclass(frozen=True)
class FDFResult:
    """RM synthesis of a batch.

    fdf: Jy, [n_components, n_phi]; rmsf: dimensionless, 1 at φ = 0, [n_components, n_phi2]
    (None unless asked for); lambda0_sq_m2: λ₀², m² [n]; frequency0_hz: ν₀ = c/λ₀, Hz [n];
    i_ref: the Stokes I model at ν₀, Jy [n]; fdf_noise: the FDF's theoretical noise per real
    and imaginary part, Jy [n] (RM-Tools' ``dFDFth``); n_good: channels with weight > 0 [n];
    weights: the channel weights used, 1/σ_qu² [n, n_channels] (for :func:`rmsf` later).
    """

    fdf: np.ndarray
    rmsf: np.ndarray | None
    lambda0_sq_m2: np.ndarray
    frequency0_hz: np.ndarray
    i_ref: np.ndarray
    fdf_noise: np.ndarray
    n_good: np.ndarray
    weights: np.ndarray


def rm_synthesis(*, stokes_q: np.ndarray, stokes_u: np.ndarray, stokes_q_err: np.ndarray,
                 stokes_u_err: np.ndarray, stokes_i_model: np.ndarray, i_model_at, grid: FaradayGrid,
                 with_rmsf: bool = True, dtype=np.complex64) -> FDFResult:
    """The Faraday dispersion functions (and RMSFs) of a batch of components.

    stokes_q, stokes_u, their errors and stokes_i_model: Jy, [n_components, n_channels] on
    the channels of ``grid`` (NaN marks a flagged channel). ``i_model_at(frequency_hz)``
    returns the Stokes I model (Jy) of each component at one frequency per component
    ([n_components] Hz in, [n_components] Jy out). ``dtype`` (complex64 or complex128) is
    the precision of the transforms and of the returned arrays; the kernel's phases are
    computed in float64 whatever it is. Returns an :class:`FDFResult`: ``fdf`` [n_components, n_phi]
    (Jy per RMSF beam), ``rmsf`` [n_components, 2 n_phi + 1], and per component λ₀² (m²), ν₀ (Hz),
    I at ν₀ (Jy), the FDF's theoretical noise (Jy) and the channels used.

    >>> import numpy as np
    >>> f = np.linspace(0.8e9, 1.088e9, 288)                           # Hz, 288 channels
    >>> lam2 = lambda2_from_frequency(frequency_hz=f)                  # m²
    >>> p = 0.1 * np.exp(2j * (50.0 * lam2 + 0.3))[None]               # 1 component: 10% polarised, RM 50 rad/m²
    >>> ones = np.ones_like(p.real)                                    # Stokes I = 1 Jy; σ_Q = σ_U = 0.01 Jy
    >>> grid = faraday_grid(frequency_hz=f)
    >>> round(grid.rmsf_fwhm, 1), round(grid.dphi_radm2, 2), grid.n_phi    # rad/m², rad/m², samples
    (58.9, 5.89, 1673)
    >>> result = rm_synthesis(stokes_q=p.real, stokes_u=p.imag, stokes_q_err=0.01 * ones,
    ...                       stokes_u_err=0.01 * ones, stokes_i_model=ones, i_model_at=np.ones_like, grid=grid)
    >>> result.fdf.shape, result.fdf.dtype
    ((1, 1673), dtype('complex64'))
    >>> peak = int(np.abs(result.fdf[0]).argmax())                     # the nearest sample to 50 rad/m²
    >>> round(float(grid.phi_radm2[peak]), 1), round(float(np.abs(result.fdf[0, peak])), 3)
    (47.1, 0.099)
    """
    q = np.asarray(stokes_q, dtype=np.float64)
    u = np.asarray(stokes_u, dtype=np.float64)
    i_model = np.asarray(stokes_i_model, dtype=np.float64)
    if q.ndim != 2 or q.shape != u.shape or q.shape != i_model.shape or q.shape[1] != grid.lambda2_m2.size:
        raise ValueError(f"spectra must be [n_components, {grid.lambda2_m2.size}] and alike; got Q {q.shape}, "
                         f"U {u.shape}, I model {i_model.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = (q + 1j * u) / i_model
    valid = np.isfinite(frac)
    weights = channel_weights(stokes_q_err=np.asarray(stokes_q_err, dtype=np.float64),
                              stokes_u_err=np.asarray(stokes_u_err, dtype=np.float64),
                              stokes_i_model=i_model, valid=valid)
    frac = np.where(weights > 0, frac, 0.0)
    lam2 = grid.lambda2_m2
    weight_sum = weights.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = 1.0 / weight_sum
        lambda0_sq = norm * (weights @ lam2)
        frequency0 = SPEED_OF_LIGHT / np.sqrt(lambda0_sq)
    i_ref = np.asarray(i_model_at(frequency0), dtype=np.float64)
    # Sum about the band's mean λ² (small phases in the shared kernel), then turn each
    # component to its own λ₀² with one phase ramp.
    shift = lambda0_sq - grid.lambda2_centre_m2
    fdf = (weights * frac).astype(dtype) @ grid.fdf_kernel(dtype)
    fdf *= _phase_ramp(grid.phi_radm2, shift, dtype)
    fdf *= (norm * i_ref).astype(fdf.real.dtype)[:, None]
    rmsf_values = _rmsf(weights, norm, shift, grid, dtype) if with_rmsf else None
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma_qu2 = np.where(weights > 0, 1.0 / weights, 0.0)
        fdf_noise = np.abs(i_ref) * np.sqrt(np.sum(weights**2 * sigma_qu2, axis=1)) * norm
    return FDFResult(fdf=fdf, rmsf=rmsf_values, lambda0_sq_m2=lambda0_sq, frequency0_hz=frequency0, i_ref=i_ref,
                     fdf_noise=fdf_noise, n_good=np.count_nonzero(weights > 0, axis=1), weights=weights)


def rmsf(*, weights: np.ndarray, lambda0_sq_m2: np.ndarray, grid: FaradayGrid, dtype=np.complex64) -> np.ndarray:
    """RMSFs, ``dtype`` [n_components, n_phi2] (1 at φ = 0), of channel weights [n_components,
    n_channels] about each component's λ₀² (m², [n_components]) — e.g. for just the
    components that RM-CLEAN will clean (``FDFResult.weights``, ``FDFResult.lambda0_sq_m2``)."""
    weights = np.asarray(weights, dtype=np.float64)
    with np.errstate(divide="ignore"):
        norm = 1.0 / weights.sum(axis=1)
    shift = np.asarray(lambda0_sq_m2, dtype=np.float64) - grid.lambda2_centre_m2
    return _rmsf(weights, norm, shift, grid, dtype)


def _rmsf(weights: np.ndarray, norm: np.ndarray, shift: np.ndarray, grid: FaradayGrid, dtype) -> np.ndarray:
    """RMSF [n_components, n_phi2] of real weights: Hermitian, R(−φ) = conj R(φ), so only φ ≥ 0
    is summed (one real matrix product against cos and sin) and the rest mirrored."""
    real = np.dtype(dtype).type(0).real.dtype
    half_n = grid.phi2_radm2.size // 2 + 1
    sums = weights.astype(real) @ grid.rmsf_kernel(real)
    half = np.empty((weights.shape[0], half_n), dtype=dtype)
    half.real = sums[:, :half_n]
    half.imag = -sums[:, half_n:]
    half *= _phase_ramp(grid.phi2_radm2[half_n - 1:], shift, dtype)
    half *= norm.astype(real)[:, None]
    rmsf = np.empty((weights.shape[0], grid.phi2_radm2.size), dtype=dtype)
    rmsf[:, half_n - 1:] = half
    rmsf[:, : half_n - 1] = np.conj(half[:, :0:-1])
    return rmsf
