"""Each image plane cleaned on its own keeps its own niter count and stops for good at its threshold, as
WSClean cleans each polarisation and output channel; finished Stokes planes are not gridded again."""

from __future__ import annotations

import numpy as np
import pytest

from sdpflow.pipelines.imaging.flow import plane_budgets
from sdpflow.pipelines.imaging.products import minor_cycle

SETTINGS = dict(gain=0.1, mgain=0.8, threshold=0.0, auto_threshold=3.0, multiscale=False)


def psf_and_planes(n=96):
    """A Gaussian PSF [1, y, x] and [I, Q, U, V] planes: I holds a 2 Jy source, Q, U, V noise seen through the PSF."""
    from sdpflow.radio.restore import gaussian_beam_image

    cell = np.radians(10 / 3600)
    psf = gaussian_beam_image((n, n), (np.radians(40 / 3600), np.radians(30 / 3600), 0.5), cell)  # peak 1
    rng = np.random.default_rng(7)
    spectrum = np.fft.rfft2(np.fft.ifftshift(psf))
    noise = np.array([np.fft.irfft2(np.fft.rfft2(rng.normal(0, 1e-3, (n, n))) * spectrum, s=(n, n)) for _ in range(3)])
    source = 2.0 * np.roll(np.roll(psf, -12, axis=0), 8, axis=1)
    return psf[None], np.concatenate([source[None] + noise[0] * 0.1, noise])


def test_each_plane_has_its_own_count_and_a_plane_with_none_left_is_not_cleaned():
    psf, residual = psf_and_planes()
    model, metrics = minor_cycle(residual, psf, None, SETTINGS, [1000, 0, 1000, 5])
    counts, reasons = metrics["plane_components"], metrics["plane_stop_reasons"]
    assert reasons == ["mgain", "", "auto-threshold", "niter"]
    assert counts[1] == 0 and not model[1].any()  # no components left: untouched
    assert counts[3] == 5 and np.count_nonzero(model[3]) <= 5
    assert 0 < counts[2] < 1000  # noise stops at 3 sigma of its own plane, long before niter
    assert model[0].sum() == pytest.approx(2.0 * 0.8, rel=0.05)  # mgain 0.8 of the 2 Jy peak
    assert metrics["components"] == sum(counts)
    assert metrics["stop_reason"] == "niter"


def test_budgets_count_each_plane_over_its_cycles_and_finished_planes_stay_finished():
    after_first = {"components_total": 930, "plane_components_total": [60, 450, 420, 0],
                   "plane_finished": [False, True, True, False]}
    assert plane_budgets(None, 1000, 4, finished_stay=True) == [1000] * 4
    assert plane_budgets(after_first, 1000, 4, finished_stay=True) == [940, 0, 0, 1000]
    # self-calibration changes the residuals: every plane goes on while it has components left
    assert plane_budgets(after_first, 1000, 4, finished_stay=False) == [940, 550, 580, 1000]
    # a run recorded before per-plane counts: the cycle's total for every plane
    assert plane_budgets({"components_total": 930}, 1000, 2, finished_stay=True) == [70, 70]


def test_planes_cleaned_on_every_core_give_the_result_of_one_thread(monkeypatch):
    from sdpflow.pipelines.imaging import products

    psf, residual = psf_and_planes(64)
    results = []
    for cores in (1, 3):
        monkeypatch.setattr(products.os, "sched_getaffinity", lambda pid, n=cores: set(range(n)))
        results.append(minor_cycle(residual, psf, None, SETTINGS, [300, 200, 100, 50]))
    (one_model, one), (threads_model, threaded) = results
    assert np.array_equal(one_model, threads_model)
    assert one["plane_components"] == threaded["plane_components"] and one["stop_reason"] == threaded["stop_reason"]
    assert one["peak_after_minor_jy"] == threaded["peak_after_minor_jy"]


def test_a_major_cycle_leaves_out_finished_stokes_parameters(tmp_path):
    from sdpflow.config.simulate import SimulateConfig
    from sdpflow.pipelines.imaging.chunks import ImageGrid, major_cycle, read_chunk
    from sdpflow.pipelines.imaging.partition import Chunk
    from sdpflow.pipelines.simulate import simulate_observation
    from sdpflow.radio.ms import read_ms_metadata

    config = SimulateConfig(preset="small", stations=8, times=4, channels=2, n_faint=2, pol_fraction=(0.2, 0.2),
                            rm_radm2=(10.0, 10.0))
    ms = simulate_observation(config, tmp_path / "obs.ms").ms
    metadata = read_ms_metadata(ms)
    grid = ImageGrid(64, 64, np.radians(120 / 3600), channels_out=2, stokes=("I", "Q", "U", "V"))
    data = read_chunk(ms, Chunk(0, (0, metadata.n_rows), (0, 2), 2), "DATA", metadata, grid.stokes)
    full, _ = major_cycle(data, None, grid)
    some, _ = major_cycle(data, None, grid, stokes=(2,))  # I and U: Q and V have finished
    assert some.image.shape == full.image.shape == (8, 64, 64) and some.weight_sum.shape == full.weight_sum.shape
    for plane in (0, 1, 4, 5):  # I and U, both channels
        assert np.array_equal(some.image[plane], full.image[plane]) and full.image[plane].any()
    assert not some.image[[2, 3, 6, 7]].any() and not some.weight_sum[[2, 3, 6, 7]].any()
