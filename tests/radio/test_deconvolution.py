"""Hogbom and multi-scale CLEAN recover the fluxes of simulated point sources; stopping rules; beam fit; restore."""

from __future__ import annotations


import numpy as np
import pytest
from radio_testdata import PHASE_CENTRE, observation, point_sky

from sdpflow.radio.deconvolution import deconvolve, mad_sigma
from sdpflow.radio.imaging import invert, invert_psf
from sdpflow.radio.restore import fit_restoring_beam, gaussian_beam_image, restore
from sdpflow.radio.sky import directions_from_cosines, predict_components

NPIX = 128
CELL = np.radians(0.5 / 60)  # a 1 degree field: the PSF is nearly shift-invariant (small w term)
SOURCES = [(64 + 20, 64 - 25, 3.0), (64 - 30, 64 + 10, 1.0), (64 + 5, 64 + 33, 0.5), (64 - 12, 64 - 40, 0.2)]


@pytest.fixture(scope="module")
def dirty_and_psf():
    """Noiseless dirty image of point sources at pixel centres, and a PSF twice the image size.

    w is set to 0 (a snapshot-like coplanar array), so the PSF is exactly shift-invariant and
    CLEAN can be held to a tight threshold; the w term is tested in test_imaging.
    """
    vis = observation(n_stations=32, n_times=8, frequency=(3.0e8,), radius_m=800.0, seed=5)
    vis.uvw[:, 2] = 0.0
    ys, xs, fluxes = (np.array(column, dtype=float) for column in zip(*SOURCES))
    l = -CELL * (xs - NPIX // 2)
    m = CELL * (ys - NPIX // 2)
    ra, dec = directions_from_cosines(l, m, PHASE_CENTRE)
    vis = vis.with_vis(predict_components(vis, point_sky(np.degrees(ra), np.degrees(dec), fluxes)))
    dirty = invert(vis, npix_x=NPIX, npix_y=NPIX, cell_rad=CELL, epsilon=1e-7).normalised()[0]
    psf = invert_psf(vis, npix_x=2 * NPIX, npix_y=2 * NPIX, cell_rad=CELL, epsilon=1e-7).normalised()[0]
    return dirty, psf


def recovered_fluxes(model):
    return [model[y - 1:y + 2, x - 1:x + 2].sum() for y, x, _ in SOURCES]


@pytest.mark.parametrize("algorithm,options", [("hogbom", {}), ("multiscale", {"scales": (0, 4, 8)})])
def test_clean_recovers_point_source_fluxes_to_one_percent(dirty_and_psf, algorithm, options):
    dirty, psf = dirty_and_psf
    result = deconvolve(dirty, psf, algorithm=algorithm, gain=0.1, niter=5000, threshold=1e-3, **options)
    assert result.stop_reason == "threshold"
    for (y, x, flux), found in zip(SOURCES, recovered_fluxes(result.model_delta)):
        assert found == pytest.approx(flux, rel=0.01), (y, x)
    assert np.abs(result.residual).max() <= 1e-3 + 1e-6
    # almost all model flux sits on the sources
    assert result.model_delta.sum() == pytest.approx(sum(f for *_, f in SOURCES), rel=0.01)


def test_mgain_stops_at_a_fraction_of_the_starting_peak(dirty_and_psf):
    dirty, psf = dirty_and_psf
    result = deconvolve(dirty, psf, gain=0.1, niter=10000, mgain=0.8)
    assert result.stop_reason == "mgain"
    peak = np.abs(dirty).max()
    assert 0.18 * peak < np.abs(result.residual).max() <= 0.2 * peak


def test_niter_stops_after_that_many_components(dirty_and_psf):
    dirty, psf = dirty_and_psf
    result = deconvolve(dirty, psf, gain=0.1, niter=37)
    assert result.n_components == 37 and result.stop_reason == "niter"
    assert np.count_nonzero(result.model_delta) <= 37


def test_auto_threshold_uses_the_mad_noise(dirty_and_psf):
    dirty, psf = dirty_and_psf
    rng = np.random.default_rng(0)
    noisy = dirty + rng.normal(0, 0.01, dirty.shape)
    result = deconvolve(noisy, psf, gain=0.1, niter=10000, auto_threshold=5.0)
    assert result.stop_reason == "auto-threshold"
    sigma = mad_sigma(noisy)
    assert sigma > 0.009  # the noise, plus the sources' sidelobes (WSClean measures the same way)
    assert np.abs(result.residual).max() <= 5 * sigma + 1e-6
    assert result.model_delta[SOURCES[0][0], SOURCES[0][1]] > 2.5


def test_mask_keeps_components_inside(dirty_and_psf):
    dirty, psf = dirty_and_psf
    mask = np.zeros(dirty.shape, bool)
    y, x, flux = SOURCES[0]
    mask[y - 3:y + 4, x - 3:x + 4] = True
    result = deconvolve(dirty, psf, gain=0.1, niter=2000, threshold=0.05, mask=mask)
    assert np.all(result.model_delta[~mask] == 0)
    assert result.model_delta[mask].sum() == pytest.approx(flux, rel=0.05)


def test_hogbom_1000_components_on_1024_squared_cleans_the_crowded_field():
    """Its speed is measured in bench/ (never in a timed test): here the same 1024^2 case is checked for what
    it finds: 1000 components, the peak brought down, and the flux taken out equal to the model's."""
    n = 1024
    y, x = np.mgrid[:2 * n, :2 * n] - n
    psf = np.exp(-(x**2 + y**2) / (2 * 2.0**2)) + 0.05 * np.cos(x / 7.0) * np.exp(-(x**2 + y**2) / (2 * 300.0**2))
    psf /= psf.max()
    rng = np.random.default_rng(0)
    residual = rng.normal(0, 1e-4, (n, n))
    for _ in range(300):
        cy, cx = rng.integers(0, n, 2)
        residual += rng.uniform(0.01, 1) * psf[n - cy:2 * n - cy, n - cx:2 * n - cx]
    result = deconvolve(residual, psf, gain=0.1, niter=1000)
    assert result.n_components == 1000
    assert np.abs(result.residual).max() < 0.5 * np.abs(residual).max()
    # what the residual lost is the model convolved with the PSF (centred at pixel n of the 2n PSF)
    from scipy.signal import fftconvolve

    taken = fftconvolve(result.model_delta, psf)[n:2 * n, n:2 * n]
    assert np.abs((residual - result.residual) - taken).max() < 1e-6 * np.abs(residual).max()


def test_beam_fit_recovers_a_gaussian():
    cell = np.radians(10 / 3600)
    beam = (np.radians(60 / 3600), np.radians(35 / 3600), np.radians(30.0))
    psf = gaussian_beam_image((128, 128), beam, cell)
    bmaj, bmin, bpa = fit_restoring_beam(psf, cell)
    assert bmaj == pytest.approx(beam[0], rel=1e-3)
    assert bmin == pytest.approx(beam[1], rel=1e-3)
    assert bpa == pytest.approx(beam[2], abs=1e-3)


def test_beam_position_angle_is_east_of_north():
    """A beam elongated towards the east (PA 90 deg) lies along the image's x axis."""
    cell = np.radians(10 / 3600)
    image = gaussian_beam_image((65, 65), (np.radians(100 / 3600), np.radians(30 / 3600), np.radians(90.0)), cell)
    assert image[32, 32 + 4] > 0.5 and image[32 + 4, 32] < 0.1
    image = gaussian_beam_image((65, 65), (np.radians(100 / 3600), np.radians(30 / 3600), np.radians(45.0)), cell)
    # north-east is up (+y) and left (-x)
    assert image[32 + 3, 32 - 3] > 0.5 and image[32 + 3, 32 + 3] < 0.1


def test_restore_puts_the_flux_at_the_beam_peak(dirty_and_psf):
    _, psf = dirty_and_psf
    beam = fit_restoring_beam(psf, CELL)
    assert beam[0] >= beam[1] > 2 * CELL
    model = np.zeros((NPIX, NPIX))
    model[40, 70] = 2.5
    residual = np.zeros_like(model)
    residual[10, 10] = 0.25
    restored = restore(model, residual, beam, CELL)
    assert restored[40, 70] == pytest.approx(2.5, rel=1e-9)
    assert restored[10, 10] == pytest.approx(0.25, abs=1e-9)


def test_multiscale_models_an_extended_source_with_fewer_components(dirty_and_psf):
    """A Gaussian blob: multi-scale recovers its total flux to 2% with less than half the components of Hogbom."""
    _, psf = dirty_and_psf
    y, x = np.mgrid[:NPIX, :NPIX]
    blob = np.exp(-((x - 60) ** 2 + (y - 70) ** 2) / (2 * 3.0**2))
    blob *= 2.0 / blob.sum()  # 2 Jy in total
    from scipy.signal import fftconvolve

    dirty = fftconvolve(blob, psf, mode="same")
    ms = deconvolve(dirty, psf, algorithm="multiscale", scales=(0, 4, 8, 16), gain=0.1, niter=5000, threshold=2e-3)
    hogbom = deconvolve(dirty, psf, algorithm="hogbom", gain=0.1, niter=5000, threshold=2e-3)
    assert ms.model_delta.sum() == pytest.approx(2.0, rel=0.02)
    assert ms.n_components < hogbom.n_components / 2


def test_cube_channels_are_cleaned_each_with_its_psf(dirty_and_psf):
    dirty, psf = dirty_and_psf
    cube = np.stack([dirty, 0.5 * dirty])
    result = deconvolve(cube, psf, gain=0.1, niter=5000, threshold=1e-3)
    assert result.model_delta.shape == cube.shape
    assert result.model_delta[1].sum() == pytest.approx(0.5 * result.model_delta[0].sum(), rel=0.01)


def test_beam_fit_ignores_a_sidelobe_island_above_the_level():
    """Only the pixels connected to the peak are fitted: a separate bright sidelobe changes nothing."""
    cell = np.radians(10 / 3600)
    beam = (np.radians(50 / 3600), np.radians(30 / 3600), np.radians(120.0))
    psf = gaussian_beam_image((96, 96), beam, cell)
    with_island = psf.copy()
    with_island[10:14, 10:14] = 0.6
    assert fit_restoring_beam(with_island, cell) == pytest.approx(fit_restoring_beam(psf, cell), rel=1e-9)
    assert fit_restoring_beam(psf, cell) == pytest.approx(beam, rel=1e-6)


def test_a_psf_narrower_than_a_pixel_is_one_clear_error():
    from sdpflow.errors import DataError

    psf = np.zeros((32, 32))
    psf[16, 16], psf[16, 17] = 1.0, 0.2  # the main lobe is one pixel: the cell is far too large
    with pytest.raises(DataError, match="choose a smaller --scale"):
        fit_restoring_beam(psf, np.radians(60 / 3600))
