"""Clean masks and WSClean's deconvolution options on analytic images: a Gaussian PSF, correlated noise.

Each test counts components where the truth has none (or the sign the option forbids), so a
mask that leaks, a local RMS that is not local or a negative component fails it.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import fftconvolve

from sdpflow.errors import DataError
from sdpflow.radio import fits
from sdpflow.radio.deconvolution import deconvolve
from sdpflow.radio.masks import component_mask, local_rms, read_fits_mask
from sdpflow.radio.source_list import read_source_list, write_source_list

N = 128          # image side (pixels)
FWHM = 4.0       # PSF FWHM (pixels)
SIGMA = FWHM / (2 * np.sqrt(2 * np.log(2)))


def gaussian_psf(size: int = 2 * N) -> np.ndarray:
    """[size, size] unit-peak Gaussian PSF centred at size // 2."""
    y, x = np.mgrid[-size // 2:size // 2, -size // 2:size // 2]
    return np.exp(-(x**2 + y**2) / (2 * SIGMA**2))


def point(y: int, x: int) -> np.ndarray:
    """The image [N, N] of a 1 Jy point source at pixel (y, x), convolved with the PSF."""
    psf = gaussian_psf()
    return psf[N - y:2 * N - y, N - x:2 * N - x]


def unit_noise(seed: int = 1) -> np.ndarray:
    """[N, N] noise with σ = 1 correlated over a beam, as an image's noise is."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[-8:9, -8:9]
    noise = fftconvolve(rng.normal(size=(N, N)), np.exp(-(x**2 + y**2) / (2 * SIGMA**2)), mode="same")
    return noise / noise.std()


def distance_from(y: int, x: int) -> np.ndarray:
    yy, xx = np.mgrid[0:N, 0:N]
    return np.hypot(yy - y, xx - x)


def test_auto_mask_stops_false_components_in_the_noise():
    image = unit_noise() + 50.0 * point(64, 64)
    far = distance_from(64, 64) > 3 * FWHM  # no flux here in the truth
    plain = deconvolve(image, gaussian_psf(), niter=5000, auto_threshold=1.0)
    # WSClean's -auto-mask 5 -auto-threshold 1: to 5σ everywhere, then within the components found
    first = deconvolve(image, gaussian_psf(), niter=5000, auto_threshold=1.0, auto_mask=5.0)
    assert first.stop_reason == "auto-mask"
    second = deconvolve(first.residual, gaussian_psf(), niter=5000, auto_threshold=1.0,
                        mask=component_mask(first.model_delta))
    masked = first.model_delta + second.model_delta
    assert second.n_components > 0 and second.stop_reason == "auto-threshold"
    assert np.count_nonzero(plain.model_delta[far]) > 500      # cleaning to 1σ everywhere cleans the noise
    assert np.count_nonzero(masked[far]) == 0                  # the mask holds the components at the source
    assert masked.sum() == pytest.approx(50.0, rel=0.05)
    assert abs(plain.model_delta.sum() - 50.0) > 10.0          # the noise's components bias the flux


def test_local_rms_thresholds_follow_a_noise_gradient():
    gradient = np.linspace(1.0, 10.0, N)[None, :]             # σ from 1 (left) to 10 (right)
    image = unit_noise(2) * gradient + 30.0 * point(64, 20)   # a source where σ ≈ 2.4: ~12 local σ
    source = distance_from(64, 20) <= 2
    noisy_half = np.s_[:, N // 2:]                             # σ 5.5..10: no source there
    one_sigma = deconvolve(image, gaussian_psf(), niter=5000, auto_threshold=5.0)
    local = deconvolve(image, gaussian_psf(), niter=5000, auto_threshold=5.0, local_rms_window=10 * FWHM)
    assert np.count_nonzero(one_sigma.model_delta[noisy_half]) >= 5  # 5 global σ is ~2 σ on the right
    assert np.count_nonzero(local.model_delta[noisy_half]) == 0
    assert local.model_delta[source].sum() > 5.0
    assert local.model_delta[source].sum() > 1.5 * one_sigma.model_delta[source].sum()  # deeper where quiet


def test_local_rms_map_measures_a_known_noise():
    rng = np.random.default_rng(3)
    noise = rng.normal(size=(N, N)) * np.where(np.arange(N) < N // 2, 1.0, 4.0)[None, :]
    rms = local_rms(noise, 16)
    assert np.median(rms[:, 10:50]) == pytest.approx(1.0, rel=0.05)
    assert np.median(rms[:, 78:118]) == pytest.approx(4.0, rel=0.05)


def test_no_negative_gives_no_negative_components():
    image = unit_noise(4) + 40.0 * point(40, 40) - 20.0 * point(90, 90)
    plain = deconvolve(image, gaussian_psf(), niter=3000, auto_threshold=2.0)
    positive = deconvolve(image, gaussian_psf(), niter=3000, auto_threshold=2.0, no_negative=True)
    assert plain.model_delta.min() < -15.0                      # the negative source is cleaned without it
    assert positive.model_delta.min() == 0.0
    assert positive.model_delta[distance_from(40, 40) <= 2].sum() == pytest.approx(40.0, rel=0.1)


@pytest.fixture
def grid():
    return dict(npix_x=N, npix_y=N, cell_rad=np.radians(20 / 3600), phase_centre=(np.radians(150.0), np.radians(-30.0)))


def write_mask(path, values, grid, **changes):
    grid = {**grid, **changes}
    fits.write_fits_image(path, values.astype(float), phase_centre=grid["phase_centre"], cell_rad=grid["cell_rad"],
                          frequency=1e8, unit="")
    return path


def test_fits_mask_restricts_components_to_the_mask(tmp_path, grid):
    box = np.zeros((N, N), bool)
    box[30:50, 30:50] = True
    mask = read_fits_mask(write_mask(tmp_path / "mask.fits", box, grid), **grid)
    assert np.array_equal(mask, box)
    image = unit_noise(5) + 30.0 * point(40, 40) + 30.0 * point(90, 90)
    result = deconvolve(image, gaussian_psf(), niter=3000, auto_threshold=2.0, mask=mask)
    assert result.n_components > 10
    assert np.count_nonzero(result.model_delta[~box]) == 0
    assert result.model_delta[box].sum() == pytest.approx(30.0, rel=0.1)
    assert abs(result.residual[90, 90]) > 25.0                  # the source outside the mask stays
    weighted = deconvolve(image, gaussian_psf(), niter=3000, auto_threshold=2.0, mask=mask, no_negative=True,
                          local_rms_window=40)                  # the weighted loop, whole rows masked out
    assert weighted.n_components > 10 and np.count_nonzero(weighted.model_delta[~box]) == 0
    assert weighted.model_delta.min() == 0.0


@pytest.mark.parametrize("changes, message", [
    (dict(npix_x=64, npix_y=64), "give a mask of the image's --size"),
    (dict(cell_rad=np.radians(30 / 3600)), "--scale"),
    (dict(phase_centre=(np.radians(150.1), np.radians(-30.0))), "phase centre"),
])
def test_fits_mask_of_another_grid_is_refused(tmp_path, grid, changes, message):
    shape = (changes.get("npix_y", N), changes.get("npix_x", N))
    path = write_mask(tmp_path / "mask.fits", np.ones(shape), grid, **changes)
    with pytest.raises(DataError, match=message):
        read_fits_mask(path, **grid)


def test_fits_mask_that_is_not_an_image_is_refused(tmp_path, grid):
    (tmp_path / "mask.fits").write_text("not a FITS file\n")
    with pytest.raises(DataError, match="mask.fits"):
        read_fits_mask(tmp_path / "mask.fits", **grid)
    with pytest.raises(DataError, match="selects no pixel"):
        read_fits_mask(write_mask(tmp_path / "zero.fits", np.zeros((N, N)), grid), **grid)


def test_source_list_positions_and_fluxes(tmp_path, grid):
    model = np.zeros((2, N, N))
    model[:, 64, 64] = [1.0, 0.5]      # at the phase centre, I falling with frequency
    model[:, 10, 100] = [0.25, 0.25]
    count = write_source_list(tmp_path / "sources.txt", model, phase_centre=grid["phase_centre"],
                              cell_rad=grid["cell_rad"], frequency=[1.0e8, 2.0e8], terms=2)
    text = (tmp_path / "sources.txt").read_text()
    assert text.startswith("Format = Name, Type, Ra, Dec, I, SpectralIndex, LogarithmicSI, ReferenceFrequency='")
    components = read_source_list(tmp_path / "sources.txt")
    assert count == len(components) == 2
    centre = min(components, key=lambda c: abs(c.flux - 0.75))
    assert centre.reference_hz == pytest.approx(1.5e8)
    assert centre.flux == pytest.approx(0.75) and centre.spectral == pytest.approx((-0.75,))  # 0.75 - 0.75 (ν/ν0 - 1)
    assert np.degrees(centre.ra) == pytest.approx(150.0, abs=1e-6) and np.degrees(centre.dec) == pytest.approx(-30.0)
    assert sum(c.flux for c in components) == pytest.approx(model.mean(axis=0).sum())
    assert text.splitlines()[1].split(",")[1] == "POINT" and ",false," in text
