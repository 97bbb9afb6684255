"""--fit-spectral-pol: joined-channel components fitted by a polynomial in frequency (WSClean's -fit-spectral-pol)."""

from __future__ import annotations

import numpy as np
import pytest

from sdpflow.radio.joined_clean import deconvolve_joined, spectral_projection
from sdpflow.radio.restore import gaussian_beam_image

FREQUENCY = np.linspace(800e6, 1100e6, 8)
CELL = np.radians(10 / 3600)


def test_projection_is_the_weighted_least_squares_polynomial():
    rng = np.random.default_rng(1)
    values, weights = rng.normal(size=8), rng.uniform(0.5, 2, size=8)
    fitted = spectral_projection(FREQUENCY, 3, weights) @ values
    reference = np.polyval(np.polyfit(FREQUENCY / 1e9, values, 2, w=np.sqrt(weights)), FREQUENCY / 1e9)
    assert fitted == pytest.approx(reference, abs=1e-10)
    cubic = np.polyval([0.3, -1, 2, 0.5], FREQUENCY / 1e9)
    assert spectral_projection(FREQUENCY, 4) @ cubic == pytest.approx(cubic, abs=1e-10)  # a polynomial is kept
    assert np.array_equal(spectral_projection(FREQUENCY, 8), np.eye(8))


def noisy_power_law_cube(seed: int, noise: float):
    """Per-channel residual images [chan, y, x] of a 1 Jy (at 800 MHz), α = −0.8 point source at (30, 34) and a
    0.5 Jy, α = +0.5 one at (12, 50), each channel with its own PSF (width ∝ 1/ν) and noise (Jy/beam);
    the PSFs and the true fluxes [source, chan]."""
    psfs = np.stack([gaussian_beam_image((64, 64), (np.radians(40 / 3600) * 800e6 / f, np.radians(30 / 3600) * 800e6 / f,
                                                     0.4), CELL) for f in FREQUENCY])
    sources = {(30, 34): (1.0, -0.8), (12, 50): (0.5, 0.5)}
    fluxes = np.array([s0 * (FREQUENCY / 800e6) ** alpha for s0, alpha in sources.values()])
    cube = np.random.default_rng(seed).normal(0, noise, (len(FREQUENCY), 64, 64))
    for ((y, x), _), flux in zip(sources.items(), fluxes):
        cube += flux[:, None, None] * np.roll(np.roll(psfs, y - 32, axis=1), x - 32, axis=2)
    return cube, psfs, list(sources), fluxes


def test_fitted_components_follow_the_power_law_better_than_raw_values():
    errors = {None: [], 3: []}
    for seed in range(4):
        cube, psfs, positions, fluxes = noisy_power_law_cube(seed, noise=0.05)
        for terms in errors:
            spectral = None if terms is None else spectral_projection(FREQUENCY, terms)
            result = deconvolve_joined(cube, psfs, gain=0.1, niter=2000, auto_threshold=2.0,
                                       groups=[list(range(len(FREQUENCY)))], spectral=spectral)
            found = np.array([result.model_delta[:, y - 3:y + 4, x - 3:x + 4].sum(axis=(1, 2)) for y, x in positions])
            errors[terms].append(found - fluxes)
            if terms is not None:
                # every pixel's model spectrum is a polynomial of `terms` terms: smooth across the channels
                model = result.model_delta.reshape(len(FREQUENCY), -1)
                off_fit = model - spectral_projection(FREQUENCY, terms) @ model
                assert np.max(np.abs(off_fit)) < 1e-12 * np.max(np.abs(model))
    raw, fitted = (np.sqrt(np.mean(np.square(errors[k]))) for k in (None, 3))
    print(f"rms flux error: raw {raw:.4f} Jy, fitted {fitted:.4f} Jy")
    assert fitted < 0.6 * raw
    assert fitted < 0.03  # Jy, against 0.5-1.2 Jy sources


def test_fit_needs_joined_channels_and_enough_of_them():
    from pydantic import ValidationError

    from sdpflow.config.imaging import ContinuumConfig, DeconvolutionConfig, ImagingConfig

    with pytest.raises(ValidationError, match="add --join-channels"):
        DeconvolutionConfig(fit_spectral_pol=2)
    with pytest.raises(ValidationError, match="needs at least 3 output channels"):
        ContinuumConfig(imaging=ImagingConfig(channels_out=2),
                        deconvolution=DeconvolutionConfig(fit_spectral_pol=3, join_channels=True))


def test_minor_cycle_fits_each_stokes_parameters_channels():
    from sdpflow.pipelines.imaging.products import minor_cycle

    cube, psfs, _, _ = noisy_power_law_cube(7, noise=0.05)
    residual = np.concatenate([cube, 0.3 * cube[::-1]])  # [stokes (I, Q) × chan, y, x]
    settings = dict(gain=0.1, mgain=0.9, threshold=0.0, auto_threshold=3.0, multiscale=False, join_channels=True)
    spectral = spectral_projection(FREQUENCY, 2)
    model, metrics = minor_cycle(residual, psfs, None, settings, 2000, joined=(0, 1), spectral=spectral)
    assert metrics["components"] > 0
    for stokes in (model[:8], model[8:]):
        flat = stokes.reshape(8, -1)
        assert np.max(np.abs(flat - spectral @ flat)) < 1e-12 * np.max(np.abs(flat))  # linear in frequency
