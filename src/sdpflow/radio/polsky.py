"""Linearly polarised point sources: Faraday rotation, Burn slabs, and their Stokes spectra.

A component's linear polarisation P = Q + iU at wavelength λ (metres) is

    P(λ²) = p · I(λ) · exp(2i (χ₀ + φ λ²)) · sinc(Δφ λ²)        sinc(x) = sin(x) / x

with p the fractional polarisation, χ₀ the intrinsic angle (radians, east of north, as the
IAU convention and RM-Tools), φ the rotation measure (rad m⁻²) and Δφ the full Faraday depth
of a Burn (1966) slab (rad m⁻²; 0 = Faraday-thin, the angle then grows exactly as χ₀ + φ λ²).
The slab is a uniform emitting and rotating layer spanning φ ± Δφ/2. Stokes V is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdpflow.radio.datamodels import SPEED_OF_LIGHT, SkyModel


@dataclass
class Polarisation:
    """Per-component linear polarisation, each [component] float64.

    fraction: p (0..1) at λ → 0; angle_rad: χ₀ radians; rm_radm2: φ rad m⁻²; rm_width_radm2:
    Δφ rad m⁻² (0 = Faraday-thin).
    """

    fraction: np.ndarray
    angle_rad: np.ndarray
    rm_radm2: np.ndarray
    rm_width_radm2: np.ndarray

    def select(self, keep: np.ndarray) -> "Polarisation":
        return Polarisation(self.fraction[keep], self.angle_rad[keep], self.rm_radm2[keep], self.rm_width_radm2[keep])

    @classmethod
    def unpolarised(cls, n: int) -> "Polarisation":
        return cls(np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n))


def stokes_spectra(sky: SkyModel, polarisation: Polarisation, frequency: np.ndarray) -> np.ndarray:
    """Stokes (I, Q, U, V) fluxes [component, chan, 4] float64 Jy at ``frequency`` (Hz) by the module's model."""
    frequency = np.asarray(frequency, float)
    stokes_i = sky.flux_at(frequency)  # [comp, chan]
    lambda_sq = (SPEED_OF_LIGHT / frequency) ** 2  # [chan] m²
    angle = polarisation.angle_rad[:, None] + polarisation.rm_radm2[:, None] * lambda_sq[None, :]
    depth = polarisation.rm_width_radm2[:, None] * lambda_sq[None, :]
    # np.sinc(x) = sin(pi x)/(pi x)
    amplitude = polarisation.fraction[:, None] * stokes_i * np.sinc(depth / np.pi)
    result = np.zeros(stokes_i.shape + (4,))
    result[..., 0] = stokes_i
    result[..., 1] = amplitude * np.cos(2 * angle)
    result[..., 2] = amplitude * np.sin(2 * angle)
    return result


def random_polarisation(n: int, *, fraction: tuple[float, float], rm_radm2: tuple[float, float],
                        slab_fraction: float, slab_depth_radm2: tuple[float, float],
                        rng: np.random.Generator) -> Polarisation:
    """Random polarisation for ``n`` components: p ~ U(fraction), χ₀ ~ U(0, π), φ ~ U(rm_radm2); a random
    ``slab_fraction`` of them are Burn slabs of depth Δφ ~ U(slab_depth_radm2), the rest Faraday-thin."""
    p = rng.uniform(*fraction, n)
    angle = rng.uniform(0.0, np.pi, n)
    rm = rng.uniform(*rm_radm2, n)
    slab = rng.random(n) < slab_fraction
    width = np.where(slab, rng.uniform(*slab_depth_radm2, n), 0.0)
    return Polarisation(p, angle, rm, width)
