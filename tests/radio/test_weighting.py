"""Natural, uniform and Briggs weights on WSClean's weighting grid, with a density summed across chunks.

The parity with WSClean itself is tested in tests/radio/test_weighting_wsclean.py; these are the
properties of the definitions (and the WSClean rules that a small case shows directly).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from sdpflow.radio.stokes import stokes_weight
from sdpflow.radio.weighting import WeightingOptions, imaging_weights, weight_density, weight_factors, weight_grid_shape

NPIX, CELL = 64, np.radians(0.04)  # the grid reaches 1 / (2 CELL) = 716 wavelengths: every sample is on it


def rows(vis, a, b):
    return replace(vis, uvw=vis.uvw[a:b], time=vis.time[a:b], interval=vis.interval[a:b], antenna1=vis.antenna1[a:b],
                   antenna2=vis.antenna2[a:b], vis=vis.vis[a:b], weight=vis.weight[a:b], flag=vis.flag[a:b])


def test_the_grid_is_the_padded_image_in_multiples_of_four():
    assert weight_grid_shape(256, 256) == (308, 308)      # ceil(307.2) = 308
    assert weight_grid_shape(64, 100) == (80, 120)
    assert weight_grid_shape(30, 30) == (36, 36)          # 36 = ceil(36.0)
    assert weight_grid_shape(34, 34) == (44, 44)          # ceil(40.8) = 41 -> 44


def test_density_of_chunks_sums_to_the_whole_and_each_sample_counts_once(small_vis):
    whole = weight_density(small_vis, npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
    assert whole.shape == (1, 40, 80)  # the half plane v >= 0 of the 80 x 80 padded grid
    half = small_vis.n_rows // 2
    parts = sum(weight_density(rows(small_vis, a, b), npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
                for a, b in ((0, half), (half, small_vis.n_rows)))
    assert np.array_equal(parts, whole)
    assert whole.sum() == pytest.approx(float(small_vis.weight.sum()))
    # (u, v) and (-u, -v) fall in the same cell
    mirrored = replace(small_vis, uvw=-small_vis.uvw)
    assert np.array_equal(weight_density(mirrored, npix_x=NPIX, npix_y=NPIX, cell_rad=CELL), whole)


def test_samples_beyond_the_grid_get_no_weight(small_vis):
    coarse = np.radians(0.1)  # the grid reaches 286 wavelengths, the longest baselines 519
    density = weight_density(small_vis, npix_x=NPIX, npix_y=NPIX, cell_rad=coarse)
    weights = imaging_weights(small_vis, density=density, weighting="uniform", npix_x=NPIX, npix_y=NPIX, cell_rad=coarse)
    uv = np.hypot(small_vis.uvw[:, 0:1], small_vis.uvw[:, 1:2]) * small_vis.frequency[None, :] / 299792458.0
    assert np.all(weights[uv > 1 / (2 * coarse) * math.sqrt(2)] == 0)
    assert np.all(weights[uv < 1 / (2 * coarse) * 0.9] > 0)
    assert density.sum() == pytest.approx(float(np.count_nonzero(weights)))


def test_uniform_weights_fill_each_occupied_cell_equally(small_vis):
    density = weight_density(small_vis, npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
    weights = imaging_weights(small_vis, density=density, npix_x=NPIX, npix_y=NPIX, cell_rad=CELL,
                              options=WeightingOptions("uniform", rank_filter=0))
    # The uniform weights re-gridded give 1 in every occupied cell.
    regridded = weight_density(small_vis.with_vis(small_vis.vis, weight=weights[:, :, None].astype(np.float32)),
                               npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
    occupied = density > 0
    assert np.allclose(regridded[occupied], 1.0, rtol=1e-5)


def test_briggs_robust_limits_are_uniform_and_natural(small_vis):
    density = weight_density(small_vis, npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
    options = dict(density=density, npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
    weights = {name: imaging_weights(small_vis, options=WeightingOptions(mode, robust, rank_filter=0), **options)
               for name, mode, robust in (("uniform", "uniform", 0), ("natural", "natural", 0), ("low", "briggs", -5),
                                          ("high", "briggs", 5), ("zero", "briggs", 0))}
    ratio_low = weights["low"] / weights["uniform"]
    ratio_high = weights["high"] / weights["natural"]
    assert np.std(ratio_low) / np.mean(ratio_low) < 1e-3
    assert np.std(ratio_high) / np.mean(ratio_high) < 1e-3
    ratio_zero = weights["zero"] / weights["natural"]
    assert np.std(ratio_zero) / np.mean(ratio_zero) > 0.05  # robust 0 is neither


def test_briggs_normalisation_is_briggs_1995():
    """f2 = (5 10^-R)^2 / (sum D^2 / sum D): a cell of the mean weight density gets 1 / (1 + 25) at robust 0."""
    density = np.zeros((1, 4, 8))
    density[0, 1, 2], density[0, 2, 5] = 3.0, 3.0
    factors = weight_factors(density, WeightingOptions("briggs", 0.0, rank_filter=0), CELL)
    assert factors[0, 1, 2] == pytest.approx(1 / 26)
    assert factors[0, 0, 0] == 1.0  # an empty cell (no sample takes it)
    factors = weight_factors(density, WeightingOptions("briggs", 1.0, rank_filter=0), CELL)
    assert factors[0, 1, 2] == pytest.approx(1 / 1.25)


def test_rank_filter_clips_a_cell_far_above_its_window_mean():
    """WSClean's -weighting-rank-filter 3: a cell above 3x the mean of the occupied cells of its 16 x 16 window
    is set to that level; the others are left alone."""
    density = np.ones((1, 20, 40))
    density[0, 10, 20] = 1.0 / 50  # nearly empty cell: uniform weighting gives it factor 50
    factors = weight_factors(density, WeightingOptions("uniform", rank_filter=3.0), CELL)
    window_mean = (255 * 1.0 + 50.0) / 256  # [y-8, y+8) x [x-8, x+8): 256 occupied cells
    assert factors[0, 10, 20] == pytest.approx(3 * window_mean)
    assert np.all(np.delete(factors.ravel(), 10 * 40 + 20) == 1.0)
    unfiltered = weight_factors(density, WeightingOptions("uniform", rank_filter=0), CELL)
    assert unfiltered[0, 10, 20] == pytest.approx(50.0)


def test_gaussian_taper_and_uv_range_act_at_the_cell_corners():
    density = np.ones((1, 50, 100))
    cell = np.radians(30 / 3600)
    taper = np.radians(300 / 3600)  # FWHM of the image-plane Gaussian
    factors = weight_factors(density, WeightingOptions("natural", taper_gaussian_rad=taper, rank_filter=0), cell)
    u = (70 - 50) / (100 * cell)
    v = 10 / (100 * cell)
    sigma_uv = math.sqrt(8 * math.log(2)) / (2 * math.pi * taper)
    assert factors[0, 10, 70] == pytest.approx(math.exp(-(u * u + v * v) / (2 * sigma_uv**2)))
    ranged = weight_factors(density, WeightingOptions("natural", minuv_l=200, maxuv_l=1500, rank_filter=0), cell)
    uv = np.hypot(*np.meshgrid((np.arange(100) - 50) / (100 * cell), np.arange(50) / (100 * cell)))
    assert np.array_equal(ranged[0] > 0, (uv >= 200) & (uv <= 1500))


def test_flagged_samples_get_zero_weight(small_vis):
    vis = small_vis.with_vis(small_vis.vis.copy(), flag=small_vis.flag.copy())
    vis.flag[:10] = True
    density = weight_density(vis, npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
    weights = imaging_weights(vis, density=density, weighting="briggs", npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
    assert np.all(weights[:10] == 0) and np.all(weights[10:] > 0)


def test_stokes_weight_is_twice_the_smaller_correlation_weight():
    """WSClean weighs I = (XX + YY)/2 by 4 min(w_XX, w_YY); the common factor 2 keeps equal weights' inverse variance."""
    assert stokes_weight(np.float32(1.0), np.float32(3.0)) == 2.0
    assert stokes_weight(np.float32(2.0), np.float32(2.0)) == pytest.approx(4 / (1 / 2 + 1 / 2))
    assert stokes_weight(np.array([0.0, 5.0]), np.array([4.0, 0.0])).tolist() == [0.0, 0.0]
