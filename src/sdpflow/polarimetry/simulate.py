"""Simulated polarised spectra for tests and benchmarks: Faraday-thin sources and Burn slabs.

Every source has a power-law Stokes I spectrum I(ν) = I₀ (ν/ν_ref)^α (Jy) and a polarised
fraction p₀ that does not change with frequency, so q + iu = (Q + iU)/I depends on λ² only.

* Faraday-thin: Q + iU = p₀ I(ν) exp(2i(χ₀ + RM λ²)).
* Burn slab (a uniform emitting and rotating layer of total Faraday depth φ_s, Burn 1966):
  Q + iU = p₀ I(ν) exp(2iχ₀) sinc(φ_s λ²) exp(i φ_s λ²), with sinc(x) = sin(x)/x.

Noise is Gaussian, drawn independently for I, Q and U in each channel with the channel's σ (Jy).
Arrays are [n_components, n_channels]; frequencies in Hz, angles in radians, RM in rad/m².
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdpflow.polarimetry.rmsynth import lambda2_from_frequency

#: The default band: 288 channels of 1 MHz from 800 MHz (ASKAP band 1 at RACS-low-like resolution).
DEFAULT_FIRST_HZ = 800e6
DEFAULT_WIDTH_HZ = 1e6
DEFAULT_N_CHANNELS = 288


def default_frequencies(*, first_hz: float = DEFAULT_FIRST_HZ, width_hz: float = DEFAULT_WIDTH_HZ,
                        n_channels: int = DEFAULT_N_CHANNELS) -> np.ndarray:
    """Channel centres, Hz, float64, shape [n_channels]: first_hz + k × width_hz."""
    return first_hz + width_hz * np.arange(n_channels, dtype=np.float64)


@dataclass(frozen=True)
class SimulatedSpectra:
    """Noisy Stokes spectra and the truth they were drawn from.

    stokes_i, stokes_q, stokes_u, noise: Jy, float64, [n_components, n_channels] (noise is the
    per-channel σ, the same for I, Q and U). The truth, each [n_components]: i_ref (Jy at
    ``reference_hz``), alpha, fracpol (p₀), polangle (χ₀, rad, in [0, π)), rm (rad/m²: the
    Faraday depth of a thin source, the total depth φ_s of a slab), thickness (True for a slab).
    """

    frequency_hz: np.ndarray
    stokes_i: np.ndarray
    stokes_q: np.ndarray
    stokes_u: np.ndarray
    noise: np.ndarray
    reference_hz: float
    i_ref: np.ndarray
    alpha: np.ndarray
    fracpol: np.ndarray
    polangle: np.ndarray
    rm: np.ndarray
    slab: np.ndarray

    @property
    def n_components(self) -> int:
        return self.stokes_i.shape[0]

    def true_stokes_i(self, frequency_hz: np.ndarray | float) -> np.ndarray:
        """Noise-free Stokes I (Jy) of each source at the given frequencies: [n_components, n]."""
        f = np.atleast_1d(np.asarray(frequency_hz, dtype=np.float64))
        return self.i_ref[:, None] * (f[None, :] / self.reference_hz) ** self.alpha[:, None]


def polarised_spectra(*, frequency_hz: np.ndarray, stokes_i: np.ndarray, fracpol: np.ndarray,
                      polangle: np.ndarray, rm: np.ndarray, slab: np.ndarray | None = None
                      ) -> np.ndarray:
    """Noise-free Q + iU, Jy, complex128 [n_components, n_channels].

    stokes_i: Jy [n_components, n_channels]; fracpol, polangle (rad), rm (rad/m²), slab (bool):
    [n_components]. A slab's ``rm`` is its total Faraday depth φ_s.
    """
    lam2 = lambda2_from_frequency(frequency_hz=frequency_hz)[None, :]
    n = stokes_i.shape[0]
    slab = np.zeros(n, dtype=bool) if slab is None else np.asarray(slab, dtype=bool)
    fracpol, polangle, rm = (np.asarray(v, dtype=np.float64)[:, None] for v in (fracpol, polangle, rm))
    thin = np.exp(2j * (polangle + rm * lam2))
    x = rm * lam2
    burn = np.exp(2j * polangle) * np.sinc(x / np.pi) * np.exp(1j * x)
    return fracpol * stokes_i * np.where(slab[:, None], burn, thin)


def simulate_sources(*, n_components: int, frequency_hz: np.ndarray | None = None,
                     rm_range: tuple[float, float] = (-300.0, 300.0),
                     snr_range: tuple[float, float] = (10.0, 100.0),
                     alpha_range: tuple[float, float] = (-1.2, 0.2),
                     fracpol_range: tuple[float, float] = (0.02, 0.3),
                     slab_fraction: float = 0.0, slab_depth_range: tuple[float, float] = (20.0, 60.0),
                     noise_jy: float = 1e-3, noise_spread: float = 0.2,
                     seed: int = 0) -> SimulatedSpectra:
    """Draw ``n_components`` sources with Gaussian noise in every channel.

    The polarised signal-to-noise in the Faraday spectrum (P at the band's centre over
    σ_ch/√n_channels) is drawn log-uniformly in ``snr_range``; I₀ follows from it and the
    fractional polarisation. Each channel's σ is ``noise_jy`` × (1 ± ``noise_spread``), drawn
    once per channel (the same for every source, as a cube's channel noise). A fraction
    ``slab_fraction`` of the sources are Burn slabs with depth in ``slab_depth_range``.
    """
    rng = np.random.default_rng(seed)
    f = default_frequencies() if frequency_hz is None else np.asarray(frequency_hz, dtype=np.float64)
    n_chan = f.size
    reference_hz = float(np.sqrt(f.min() * f.max()))
    noise = noise_jy * (1.0 + noise_spread * rng.uniform(-1.0, 1.0, n_chan))
    sigma_fdf = 1.0 / np.sqrt(np.sum(1.0 / noise**2))
    snr = np.exp(rng.uniform(np.log(snr_range[0]), np.log(snr_range[1]), n_components))
    fracpol = rng.uniform(*fracpol_range, n_components)
    alpha = rng.uniform(*alpha_range, n_components)
    i_ref = snr * sigma_fdf / fracpol
    polangle = rng.uniform(0.0, np.pi, n_components)
    slab = rng.uniform(size=n_components) < slab_fraction
    rm = np.where(slab, rng.uniform(*slab_depth_range, n_components), rng.uniform(*rm_range, n_components))
    stokes_i = i_ref[:, None] * (f[None, :] / reference_hz) ** alpha[:, None]
    p = polarised_spectra(frequency_hz=f, stokes_i=stokes_i, fracpol=fracpol, polangle=polangle,
                          rm=rm, slab=slab)
    shape = (n_components, n_chan)
    sigma = np.broadcast_to(noise, shape).copy()
    return SimulatedSpectra(
        frequency_hz=f,
        stokes_i=stokes_i + sigma * rng.standard_normal(shape),
        stokes_q=p.real + sigma * rng.standard_normal(shape),
        stokes_u=p.imag + sigma * rng.standard_normal(shape),
        noise=sigma, reference_hz=reference_hz, i_ref=i_ref, alpha=alpha, fracpol=fracpol,
        polangle=polangle, rm=rm, slab=slab)


def point_source_cubes(*, frequency_hz: np.ndarray, shape: tuple[int, int], positions_px: np.ndarray,
                       i_ref: np.ndarray, alpha: np.ndarray, reference_hz: float, fracpol: np.ndarray,
                       polangle: np.ndarray, rm: np.ndarray, beam_fwhm_px_at_ref: float, noise_jy: float,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stokes I, Q, U cubes (Jy/beam) of Faraday-thin point sources restored with a circular Gaussian
    beam whose FWHM scales as 1/ν, plus white Gaussian noise ``noise_jy`` per pixel and channel.

    frequency_hz: [chan]; shape: (ny, nx); positions_px: [n, 2] (x, y) pixel of each source (its peak
    is i_ref (ν/reference_hz)^α there, in Jy/beam); fracpol, polangle (rad), rm (rad/m²): [n].
    Returns (cubes [3, chan, ny, nx] float32, beam FWHM in pixels per channel [chan]).
    """
    rng = np.random.default_rng(seed)
    f = np.asarray(frequency_hz, dtype=np.float64)
    ny, nx = shape
    fwhm = beam_fwhm_px_at_ref * reference_hz / f
    sigma = fwhm / np.sqrt(8.0 * np.log(2.0))
    cubes = (noise_jy * rng.standard_normal((3, f.size, ny, nx))).astype(np.float32)
    stokes_i = np.asarray(i_ref)[:, None] * (f[None, :] / reference_hz) ** np.asarray(alpha)[:, None]
    p = polarised_spectra(frequency_hz=f, stokes_i=stokes_i, fracpol=fracpol, polangle=polangle, rm=rm)
    half = int(np.ceil(4 * sigma.max()))
    for (x, y), s_i, s_p in zip(np.asarray(positions_px, dtype=float), stokes_i, p):
        x0, x1 = max(0, int(round(x)) - half), min(nx, int(round(x)) + half + 1)
        y0, y1 = max(0, int(round(y)) - half), min(ny, int(round(y)) + half + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        profile = np.exp(-((xx - x) ** 2 + (yy - y) ** 2)[None] / (2.0 * sigma[:, None, None] ** 2))
        for plane, spectrum in enumerate((s_i, s_p.real, s_p.imag)):
            cubes[plane, :, y0:y1, x0:x1] += (spectrum[:, None, None] * profile).astype(np.float32)
    return cubes, fwhm
