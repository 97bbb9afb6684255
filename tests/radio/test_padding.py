"""WSClean's -padding in invert and predict: the same images to about epsilon, and still adjoint."""

from __future__ import annotations

import numpy as np
import pytest

from sdpflow.radio.datamodels import SkyModel
from sdpflow.radio.imaging import invert, padded_size, predict
from sdpflow.radio.layouts import low_like_configuration
from sdpflow.radio.simulate import make_visibility
from sdpflow.radio.sky import directions_from_cosines, predict_components

CENTRE = (np.radians(30.0), np.radians(-45.0))
CELL = np.radians(1.5 / 60)


@pytest.fixture(scope="module")
def observed():
    """Five sources, two of them outside the 64-pixel field (where padding would keep their aliases out)."""
    vis = make_visibility(low_like_configuration(16), phase_centre=CENTRE, times=5.0e9 + 120.0 * np.arange(8),
                          interval=120.0, frequency=np.array([1.0e8, 1.2e8]), channel_width=np.full(2, 1e6))
    l = np.array([0.0, 10.0, -20.0, 40.0, -37.0]) * CELL
    m = np.array([0.0, -5.0, 25.0, 3.0, -45.0]) * CELL
    ra, dec = directions_from_cosines(l, m, CENTRE)
    sky = SkyModel(ra=ra, dec=dec, flux=np.array([1.0, 0.5, 0.3, 2.0, 1.5]), ref_frequency=np.full(5, 1e8),
                   spectral_index=np.zeros(5))
    return vis.with_vis(predict_components(vis, sky)[:, :, None])


def test_padded_sides_are_rounded_up_to_even():
    assert [padded_size(512, 1.2), padded_size(100, 1.0), padded_size(64, 1.5), padded_size(33 * 2, 1.01)] == \
        [616, 100, 96, 68]


@pytest.mark.parametrize("small_inversion", [False, True])
def test_padding_changes_the_dirty_image_by_about_epsilon(observed, small_inversion):
    options = dict(npix_x=64, npix_y=64, cell_rad=CELL, epsilon=1e-5, small_inversion=small_inversion)
    plain = invert(observed, **options).normalised()
    padded = invert(observed, padding=1.2, **options).normalised()
    assert padded.shape == plain.shape == (1, 64, 64)
    assert plain[0, 32, 32] == pytest.approx(padded[0, 32, 32], rel=1e-4)
    assert np.abs(padded - plain).max() < 1e-5 * np.abs(plain).max()  # below epsilon (measured 3e-6)


def test_padded_predict_is_the_adjoint_of_padded_invert(observed):
    rng = np.random.default_rng(7)
    model = np.zeros((64, 64))
    model[rng.integers(8, 56, 12), rng.integers(8, 56, 12)] = rng.uniform(0.1, 1.0, 12)
    options = dict(cell_rad=CELL, epsilon=1e-6, padding=1.3, small_inversion=False)
    model_vis = predict(observed, model, **options)
    dirty = invert(observed, npix_x=64, npix_y=64, **options).image[0]
    assert np.vdot(model_vis, observed.vis[:, :, 0]).real == pytest.approx(float(np.sum(model * dirty)), rel=1e-5)
    assert np.abs(model_vis - predict(observed, model, cell_rad=CELL, epsilon=1e-6,
                                      small_inversion=False)).max() < 1e-5 * np.abs(model_vis).max()
