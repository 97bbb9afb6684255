"""Cubes opened once per process, cubelets with a valid WCS, and spectra: background, noise and flags."""

from __future__ import annotations

import os

import numpy as np
import pytest

from sdpflow.errors import DataError
from sdpflow.polarimetry.cubes import island_box, open_cube, read_cubelet, write_cubelet
from sdpflow.polarimetry.simulate import point_source_cubes
from sdpflow.polarimetry.spectra import clipped_stats, extract_spectra
from sdpflow.radio.fits import write_fits_image

FREQUENCY = 900e6 + 4e6 * np.arange(32)
CELL = np.radians(3.0 / 3600)


def _write_cubes(folder, cubes, fwhm_px):
    beams = [(f * CELL, f * CELL, 0.0) for f in fwhm_px]
    paths = []
    for plane, stokes in enumerate("IQU"):
        path = folder / f"restored-{stokes}.fits"
        write_fits_image(path, cubes[plane][:, None], phase_centre=(np.radians(20.0), np.radians(-45.0)), cell_rad=CELL,
                         frequency=FREQUENCY, beams=beams, polarisation=(stokes,))
        paths.append(path)
    return paths


def _memory_mapped(array) -> bool:
    import mmap

    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False


def test_cube_opened_once_per_process_and_again_when_rewritten(tmp_path):
    cubes, fwhm = point_source_cubes(frequency_hz=FREQUENCY, shape=(64, 64), positions_px=np.array([[32.0, 32.0]]),
                                     i_ref=np.array([0.1]), alpha=np.array([-0.7]), reference_hz=1e9,
                                     fracpol=np.array([0.1]), polangle=np.array([0.2]), rm=np.array([30.0]),
                                     beam_fwhm_px_at_ref=4.0, noise_jy=1e-3, seed=1)
    path = _write_cubes(tmp_path, cubes, fwhm)[0]
    first = open_cube(path)
    assert open_cube(path) is first
    assert _memory_mapped(first.data)
    np.testing.assert_allclose(first.frequency_hz, FREQUENCY)
    np.testing.assert_allclose(np.degrees(first.beams[:, 0]) * 3600, 3.0 * fwhm, rtol=1e-5)
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert open_cube(path) is not first


def test_cubelet_keeps_the_sky_and_the_spectrum(tmp_path):
    cubes, fwhm = point_source_cubes(frequency_hz=FREQUENCY, shape=(80, 96), positions_px=np.array([[61.0, 23.0]]),
                                     i_ref=np.array([0.2]), alpha=np.array([-0.5]), reference_hz=1e9,
                                     fracpol=np.array([0.2]), polangle=np.array([0.4]), rm=np.array([-60.0]),
                                     beam_fwhm_px_at_ref=4.0, noise_jy=0.0, seed=1)
    opened = [open_cube(path) for path in _write_cubes(tmp_path, cubes, fwhm)]
    ra, dec = opened[0].celestial.pixel_to_world_values(61.0, 23.0)
    box = island_box(opened[0], np.array([ra]), np.array([dec]), np.array([np.nan]), 3.0)
    write_cubelet(tmp_path / "cut.fits", opened, box)
    cut = read_cubelet(tmp_path / "cut.fits")
    x, y = cut.celestial.world_to_pixel_values(ra, dec)
    y0, _, x0, _ = box
    assert (x, y) == pytest.approx((61.0 - x0, 23.0 - y0), abs=1e-6)
    np.testing.assert_allclose(cut.data[:, :, int(np.round(y)), int(np.round(x))], cubes[:, :, 23, 61], rtol=1e-6)
    np.testing.assert_allclose(cut.frequency_hz, FREQUENCY)
    with pytest.raises(DataError, match="outside the cube"):
        far = opened[0].celestial.pixel_to_world_values(200.0, 23.0)
        island_box(opened[0], np.array([far[0]]), np.array([far[1]]), np.array([np.nan]), 3.0)


def test_spectra_subtract_background_measure_noise_and_flag_a_noisy_channel():
    rng = np.random.default_rng(5)
    n_chan, size = 40, 61
    sigma = 2e-3 * (1 + 0.3 * np.sin(np.arange(n_chan)))  # per channel
    sigma[17] *= 10  # a bad channel in Q only
    data = np.zeros((3, n_chan, size, size))
    data += rng.standard_normal(data.shape) * sigma[None, :, None, None]
    data[2, :, :, :] *= np.where(np.arange(n_chan) == 17, 0.1, 1.0)[:, None, None]  # U keeps the normal noise there
    data += np.array([0.05, -0.01, 0.02])[:, None, None, None]  # a background level per Stokes parameter
    data[:, :, 30, 30] += np.array([1.0, 0.1, -0.05])[:, None]
    spectra = extract_spectra(data=data, pixel_xy=np.array([[30.2, 29.8]]), bmaj_pixels=4.0)
    assert tuple(spectra.peak_pixel[0]) == (30, 30)
    assert np.flatnonzero(spectra.flagged[0]).tolist() == [17]
    good = ~spectra.flagged[0]
    ratio = spectra.noise[0, 0, good] / sigma[good]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.04)
    expected = np.array([1.0, 0.1, -0.05])
    residual = (spectra.values[0][:, good] - expected[:, None]) / sigma[good]
    assert np.all(np.abs(residual) < 5) and abs(np.mean(residual)) < 0.5
    assert np.all(np.isnan(spectra.values[0][:, 17]))


def test_clipped_stats_ignore_outliers_and_nan():
    rng = np.random.default_rng(1)
    samples = rng.standard_normal((4, 5000))
    samples[:, :50] = 100.0
    samples[:, 50:60] = np.nan
    centre, std = clipped_stats(samples)
    assert np.all(np.abs(centre) < 0.05)
    assert np.all(np.abs(std - 0.987) < 0.03)  # a Gaussian cut at 3σ
