"""invert and predict against a direct Fourier sum, their adjointness, and the pixel ↔ sky convention."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

from sdpflow.radio.datamodels import SPEED_OF_LIGHT
from sdpflow.radio.fits import image_wcs, write_fits_image
from sdpflow.radio.imaging import ImageSum, dirty_image, invert, invert_psf, pixel_direction_cosines, predict
from sdpflow.radio.sky import predict_components
from sdpflow.radio.small_inversion import downsample, small_grid, upsample, uvw_max_wavelengths, vis_bandwidth

from radio_testdata import PHASE_CENTRE, point_sky

NPIX = 64
CELL = np.radians(0.1)  # a 6.4 degree field, so the w term matters


def direct_image(vis, data, weights, npix, cell):
    """D(l, m) = sum w V exp(-2j pi (u l + v m + w (n - 1))) at every pixel, [y, x]."""
    l, m = pixel_direction_cosines(npix, npix, cell)
    ll, mm = np.meshgrid(l, m)  # [y, x]
    nn = np.sqrt(1 - ll**2 - mm**2) - 1
    image = np.zeros((npix, npix))
    for chan, freq in enumerate(vis.frequency):
        u_, v_, w_ = (vis.uvw * freq / SPEED_OF_LIGHT).T
        phase = np.exp(-2j * np.pi * (np.multiply.outer(u_, ll) + np.multiply.outer(v_, mm) + np.multiply.outer(w_, nn)))
        image += np.real(np.tensordot(weights[:, chan] * data[:, chan], phase, axes=(0, 0)))
    return image


def direct_predict(vis, model, cell):
    npix = model.shape[-1]
    l, m = pixel_direction_cosines(npix, npix, cell)
    ys, xs = np.nonzero(model)
    ll, mm = l[xs], m[ys]
    nn = np.sqrt(1 - ll**2 - mm**2) - 1
    out = np.zeros((vis.n_rows, vis.n_channels), complex)
    for chan, freq in enumerate(vis.frequency):
        u_, v_, w_ = (vis.uvw * freq / SPEED_OF_LIGHT).T
        out[:, chan] = np.exp(2j * np.pi * (np.outer(u_, ll) + np.outer(v_, mm) + np.outer(w_, nn))) @ model[ys, xs]
    return out


@pytest.mark.parametrize("epsilon", [1e-5, 1e-8])
def test_invert_matches_direct_fourier_sum(small_vis, epsilon):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(small_vis.n_rows, 2)) + 1j * rng.normal(size=(small_vis.n_rows, 2))
    weights = rng.uniform(0.5, 2.0, (small_vis.n_rows, 2))
    vis = small_vis.with_vis(data)
    result = invert(vis, npix_x=NPIX, npix_y=NPIX, cell_rad=CELL, weights=weights, epsilon=epsilon)
    expected = direct_image(vis, data, weights, NPIX, CELL)
    error = np.max(np.abs(result.image[0] - expected)) / np.max(np.abs(expected))
    assert error < epsilon
    assert result.weight_sum[0] == pytest.approx(weights.sum())


def test_predict_matches_direct_fourier_sum(small_vis):
    rng = np.random.default_rng(2)
    model = np.zeros((NPIX, NPIX))
    model[rng.integers(0, NPIX, 10), rng.integers(0, NPIX, 10)] = rng.uniform(0.1, 2, 10)
    predicted = predict(small_vis, model, cell_rad=CELL, epsilon=1e-7)
    expected = direct_predict(small_vis, model, CELL)
    assert np.max(np.abs(predicted - expected)) / np.max(np.abs(expected)) < 1e-7


def test_predict_is_the_adjoint_of_invert(small_vis):
    rng = np.random.default_rng(3)
    image = rng.normal(size=(1, NPIX, NPIX))
    data = rng.normal(size=(small_vis.n_rows, 2)) + 1j * rng.normal(size=(small_vis.n_rows, 2))
    predicted = predict(small_vis, image, cell_rad=CELL, epsilon=1e-5)
    left = np.real(np.vdot(predicted, data))
    dirty = invert(small_vis.with_vis(data), npix_x=NPIX, npix_y=NPIX, cell_rad=CELL,
                   weights=np.ones((small_vis.n_rows, 2)), epsilon=1e-5).image
    right = np.sum(image * dirty)
    assert abs(left - right) / abs(left) < 1e-6


def test_pixel_of_a_model_is_the_direction_the_wcs_gives(small_vis):
    """predict(model with 1 Jy at pixel (y, x)) == DFT of a source at the WCS's RA/Dec of that pixel."""
    npix, cell = 128, np.radians(0.05)
    model = np.zeros((npix, npix))
    y, x = 90, 23  # north and east of the centre
    model[y, x] = 1.0
    wcs = image_wcs(npix, npix, phase_centre=PHASE_CENTRE, cell_rad=cell, frequency=[1e8]).celestial
    world = wcs.pixel_to_world(x, y)
    assert world.ra.deg > np.degrees(PHASE_CENTRE[0]) and world.dec.deg > np.degrees(PHASE_CENTRE[1])
    sky = point_sky([world.ra.deg], [world.dec.deg], [1.0])
    expected = predict_components(small_vis, sky)
    predicted = predict(small_vis, model, cell_rad=cell, epsilon=1e-9)
    assert np.max(np.abs(predicted - expected)) < 1e-8


def test_simulated_source_peaks_at_its_wcs_pixel(small_vis, tmp_path):
    """A source at a known RA/Dec, imaged and written to FITS, peaks where astropy's WCS puts it."""
    npix, cell = 256, np.radians(1 / 60)
    ra, dec = 15.9, -44.3  # about 0.7 deg east and north of the centre, off any pixel centre
    vis = small_vis.with_vis(predict_components(small_vis, point_sky([ra], [dec], [2.0])))
    dirty, _ = dirty_image(vis, npix_x=npix, npix_y=npix, cell_rad=cell, epsilon=1e-7)
    path = write_fits_image(tmp_path / "dirty.fits", dirty, phase_centre=PHASE_CENTRE, cell_rad=cell,
                            frequency=[vis.frequency.mean()])
    from astropy.io import fits

    with fits.open(path) as hdus:
        wcs = WCS(hdus[0].header).celestial
        image = hdus[0].data[0, 0]
    x, y = wcs.world_to_pixel(SkyCoord(ra * u.deg, dec * u.deg, frame="fk5"))
    peak_y, peak_x = np.unravel_index(np.argmax(image), image.shape)
    assert (peak_x, peak_y) == (int(np.round(x)), int(np.round(y)))
    # Sub-pixel: a parabola through the peak and its neighbours lands within 0.15 pixel of the WCS position.
    def vertex(a, b, c):
        return 0.5 * (a - c) / (a - 2 * b + c)
    fit_x = peak_x + vertex(*image[peak_y, peak_x - 1:peak_x + 2])
    fit_y = peak_y + vertex(*image[peak_y - 1:peak_y + 2, peak_x])
    assert abs(fit_x - x) < 0.15 and abs(fit_y - y) < 0.15
    assert image[peak_y, peak_x] == pytest.approx(2.0, rel=0.02)


def test_chunks_sum_to_the_whole(small_vis):
    rng = np.random.default_rng(4)
    vis = small_vis.with_vis(rng.normal(size=(small_vis.n_rows, 2)) + 0j)
    whole = invert(vis, npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
    ranges = vis.time_row_ranges()
    split = ranges[3][0]
    from dataclasses import replace

    def rows(a, b):
        return replace(vis, uvw=vis.uvw[a:b], time=vis.time[a:b], interval=vis.interval[a:b],
                       antenna1=vis.antenna1[a:b], antenna2=vis.antenna2[a:b], vis=vis.vis[a:b],
                       weight=vis.weight[a:b], flag=vis.flag[a:b])

    parts = invert(rows(0, split), npix_x=NPIX, npix_y=NPIX, cell_rad=CELL) + \
        invert(rows(split, vis.n_rows), npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
    assert isinstance(parts, ImageSum)
    expected = whole.normalised()
    # Each chunk is gridded to the default epsilon (1e-5), so they agree to that.
    assert np.max(np.abs(parts.normalised() - expected)) / np.max(np.abs(expected)) < 1e-5
    assert parts.weight_sum[0] == whole.weight_sum[0]


def test_psf_peaks_at_one_in_the_centre_per_channel(small_vis):
    psf = invert_psf(small_vis, npix_x=NPIX, npix_y=NPIX, cell_rad=CELL, channels_out=2).normalised()
    assert psf.shape == (2, NPIX, NPIX)
    for plane in psf:
        assert np.unravel_index(np.argmax(plane), plane.shape) == (NPIX // 2, NPIX // 2)
        assert plane.max() == pytest.approx(1.0, abs=1e-6)


def test_flagged_samples_do_not_reach_the_image(small_vis):
    vis = small_vis.with_vis(np.ones((small_vis.n_rows, 2), complex))
    vis.flag[:100] = True
    vis.vis[:100] = 1e6  # would dominate if it leaked through
    result = invert(vis, npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
    assert result.weight_sum[0] == pytest.approx(2 * (small_vis.n_rows - 100))
    assert result.normalised().max() == pytest.approx(1.0, abs=1e-5)


def test_single_precision_gridding_agrees_with_double(small_vis):
    rng = np.random.default_rng(3)
    data = rng.normal(size=(small_vis.n_rows, 2)) + 1j * rng.normal(size=(small_vis.n_rows, 2))
    small_vis = small_vis.with_vis(data)
    npix, cell = NPIX, CELL
    single = invert(small_vis, npix_x=npix, npix_y=npix, cell_rad=cell, epsilon=1e-4, precision="single").normalised()
    double = invert(small_vis, npix_x=npix, npix_y=npix, cell_rad=cell, epsilon=1e-4, precision="double").normalised()
    exact = invert(small_vis, npix_x=npix, npix_y=npix, cell_rad=cell, epsilon=1e-9, precision="single").normalised()
    assert 0 < np.max(np.abs(single - double)) / np.max(np.abs(double)) < 1e-5  # single really ran, and agrees
    assert np.max(np.abs(single - exact)) / np.max(np.abs(exact)) < 1e-4  # within the requested accuracy


# -- small inversion -------------------------------------------------------------------------
SMALL_NPIX = 256  # 8 pixels per finest fringe: small inversion grids on ~96² instead


def small_inversion_cell(vis):
    return 1.0 / (8.0 * uvw_max_wavelengths(vis)[0])


def test_small_grid_is_smaller_even_and_only_when_it_pays(small_vis):
    cell = small_inversion_cell(small_vis)
    bandwidth = vis_bandwidth(small_vis, SMALL_NPIX, SMALL_NPIX, cell)
    assert bandwidth > uvw_max_wavelengths(small_vis)[0]  # the w term widens the band
    grid = small_grid(SMALL_NPIX, SMALL_NPIX, cell, bandwidth)
    assert grid is not None and all(side % 2 == 0 and side < SMALL_NPIX for side in grid.small)
    assert grid.padded[0] > SMALL_NPIX and grid.padded[0] % 2 == 0  # a guard band around the field
    # the small grid still Nyquist-samples the longest baseline over its field
    assert grid.small[0] >= 2 * bandwidth * grid.padded[0] * cell
    assert small_grid(NPIX, NPIX, CELL, vis_bandwidth(small_vis, NPIX, NPIX, CELL)) is None  # 64 pixels: plain path


def test_resampling_is_an_adjoint_pair_and_keeps_the_flux():
    rng = np.random.default_rng(5)
    small, big = rng.normal(size=(48, 40)), rng.normal(size=(128, 96))
    passband = (17.0, 14.0)
    left = np.vdot(upsample(small, big.shape, passband), big)
    right = np.vdot(small, downsample(big, small.shape, passband))
    assert abs(left - right) < 1e-12 * abs(left)
    assert downsample(big, small.shape, passband).sum() == pytest.approx(big.sum(), rel=1e-12)


def _small_and_full(function, vis, **options):
    cell = small_inversion_cell(vis)
    common = dict(npix_x=SMALL_NPIX, npix_y=SMALL_NPIX, cell_rad=cell, epsilon=1e-7)
    return (function(vis, small_inversion=True, **common, **options).normalised()[0],
            function(vis, small_inversion=False, **common, **options).normalised()[0])


def test_small_inversion_dirty_image_matches_the_full_size_grid(small_vis):
    """Random visibilities (a flat spectrum out to the longest baseline: the hardest case for
    the resampling) imaged on the small grid and on the requested one."""
    rng = np.random.default_rng(6)
    vis = small_vis.with_vis(rng.normal(size=(small_vis.n_rows, 2)) + 1j * rng.normal(size=(small_vis.n_rows, 2)))
    small, full = _small_and_full(invert, vis)
    error = np.abs(small - full) / np.max(np.abs(full))
    inner = slice(SMALL_NPIX // 10, SMALL_NPIX - SMALL_NPIX // 10)
    assert error[inner, inner].max() < 2e-4  # inner 80% (measured 9.2e-5)
    assert error.max() < 5e-4  # edges included (measured 1.8e-4)


def test_small_inversion_psf_peaks_at_one_in_the_centre(small_vis):
    small, full = _small_and_full(invert_psf, small_vis)
    centre = (SMALL_NPIX // 2, SMALL_NPIX // 2)
    assert np.unravel_index(np.argmax(small), small.shape) == centre
    assert small[centre] == pytest.approx(1.0, abs=1e-6)  # measured 2e-7
    assert np.max(np.abs(small - full)) < 3e-5  # measured 1.2e-5


@pytest.mark.parametrize(("y", "x", "tolerance"), [
    (SMALL_NPIX // 2 + 37, SMALL_NPIX // 2 - 53, 3e-4),  # measured 1.1e-4
    (5, SMALL_NPIX - 7, 1e-3),  # 5 pixels from the corner: measured 5.4e-4
])
def test_small_inversion_predicts_an_off_grid_point_source(small_vis, y, x, tolerance):
    """1 Jy on a requested pixel that is no pixel of the small grid (its pixels are ~2 requested ones)."""
    model = np.zeros((SMALL_NPIX, SMALL_NPIX))
    model[y, x] = 1.0
    options = dict(cell_rad=small_inversion_cell(small_vis), epsilon=1e-7)
    small = predict(small_vis, model, small_inversion=True, **options)
    full = predict(small_vis, model, small_inversion=False, **options)
    assert np.max(np.abs(small - full)) < tolerance


def test_small_inversion_keeps_invert_the_adjoint_of_predict(small_vis):
    rng = np.random.default_rng(7)
    cell = small_inversion_cell(small_vis)
    image = rng.normal(size=(SMALL_NPIX, SMALL_NPIX))
    data = rng.normal(size=(small_vis.n_rows, 2)) + 1j * rng.normal(size=(small_vis.n_rows, 2))
    predicted = predict(small_vis, image, cell_rad=cell, epsilon=1e-7)
    dirty = invert(small_vis.with_vis(data), npix_x=SMALL_NPIX, npix_y=SMALL_NPIX, cell_rad=cell, epsilon=1e-7,
                   weights=np.ones((small_vis.n_rows, 2))).image[0]
    left, right = np.real(np.vdot(predicted, data)), np.sum(image * dirty)
    assert abs(left - right) < 1e-6 * abs(left)


def test_small_inversion_chunks_sum_to_the_whole_on_the_observations_grid(small_vis):
    """Chunks pass the observation's bandwidth, so they grid on one small grid and add up."""
    rng = np.random.default_rng(8)
    vis = small_vis.with_vis(rng.normal(size=(small_vis.n_rows, 2)) + 0j)
    cell = small_inversion_cell(vis)
    options = dict(npix_x=SMALL_NPIX, npix_y=SMALL_NPIX, cell_rad=cell, epsilon=1e-7,
                   bandwidth=vis_bandwidth(vis, SMALL_NPIX, SMALL_NPIX, cell))
    half = vis.time_row_ranges()[3][0]
    from dataclasses import replace

    def rows(a, b):
        return replace(vis, uvw=vis.uvw[a:b], time=vis.time[a:b], interval=vis.interval[a:b],
                       antenna1=vis.antenna1[a:b], antenna2=vis.antenna2[a:b], vis=vis.vis[a:b],
                       weight=vis.weight[a:b], flag=vis.flag[a:b])

    parts = invert(rows(0, half), **options) + invert(rows(half, vis.n_rows), **options)
    whole = invert(vis, **options).normalised()
    assert np.max(np.abs(parts.normalised() - whole)) / np.max(np.abs(whole)) < 1e-6
