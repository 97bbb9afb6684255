"""Natural, uniform and Briggs weights, with a weight density summed across chunks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sdpflow.radio.weighting import imaging_weights, weight_density

NPIX, CELL = 64, np.radians(0.1)


def rows(vis, a, b):
    return replace(vis, uvw=vis.uvw[a:b], time=vis.time[a:b], interval=vis.interval[a:b], antenna1=vis.antenna1[a:b],
                   antenna2=vis.antenna2[a:b], vis=vis.vis[a:b], weight=vis.weight[a:b], flag=vis.flag[a:b])


def test_density_of_chunks_sums_to_the_whole(small_vis):
    whole = weight_density(small_vis, npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
    half = small_vis.n_rows // 2
    parts = sum(weight_density(rows(small_vis, a, b), npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
                for a, b in ((0, half), (half, small_vis.n_rows)))
    assert np.array_equal(parts, whole)
    # every sample counts twice (at (u, v) and (-u, -v)) with its weight
    assert whole.sum() == 2 * small_vis.weight.sum()


def test_uniform_weights_fill_each_occupied_cell_equally(small_vis):
    density = weight_density(small_vis, npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
    weights = imaging_weights(small_vis, density=density, weighting="uniform", npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
    # The uniform weights re-gridded give 1 in every occupied cell.
    regridded = weight_density(small_vis.with_vis(small_vis.vis, weight=weights[:, :, None].astype(np.float32)),
                               npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
    occupied = density > 0
    assert np.allclose(regridded[occupied], 1.0, rtol=1e-5)


def test_briggs_robust_limits_are_uniform_and_natural(small_vis):
    density = weight_density(small_vis, npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
    options = dict(density=density, npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
    uniform = imaging_weights(small_vis, weighting="uniform", **options)
    natural = imaging_weights(small_vis, weighting="natural")
    robust_low = imaging_weights(small_vis, weighting="briggs", robust=-5, **options)
    robust_high = imaging_weights(small_vis, weighting="briggs", robust=5, **options)
    robust_zero = imaging_weights(small_vis, weighting="briggs", robust=0, **options)
    ratio_low = robust_low / uniform
    ratio_high = robust_high / natural
    assert np.std(ratio_low) / np.mean(ratio_low) < 1e-3
    assert np.std(ratio_high) / np.mean(ratio_high) < 1e-3
    ratio_zero = robust_zero / natural
    assert np.std(ratio_zero) / np.mean(ratio_zero) > 0.05  # robust 0 is neither


def test_flagged_samples_get_zero_weight(small_vis):
    vis = small_vis.with_vis(small_vis.vis.copy(), flag=small_vis.flag.copy())
    vis.flag[:10] = True
    density = weight_density(vis, npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
    weights = imaging_weights(vis, density=density, weighting="briggs", npix_x=NPIX, npix_y=NPIX, cell_rad=CELL)
    assert np.all(weights[:10] == 0) and np.all(weights[10:] > 0)
