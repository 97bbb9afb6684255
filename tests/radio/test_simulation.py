"""Layouts, uvw from earth rotation, sky statistics and the simulate pipeline's products."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from sdpflow.config.simulate import SimulateConfig
from sdpflow.errors import DataError
from sdpflow.pipelines.simulate import simulate_observation
from sdpflow.radio.calibration import apply_gains
from sdpflow.radio.hdf5 import read_gaintable_hdf5
from sdpflow.radio.layouts import (
    LOW_SITE,
    configuration_from_csv,
    configuration_from_ms,
    enu_to_itrf,
    itrf_to_enu,
    low_like_layout,
)
from sdpflow.radio.ms import read_ms_metadata, read_visibility
from sdpflow.radio.simulate import antenna_uvw, observation_times, random_sky
from sdpflow.radio.sky import predict_components, read_sky_csv, survey_fluxes

PHASE_CENTRE = (np.radians(15.0), np.radians(-45.0))


def test_low_like_layout_is_seedable_condensed_and_separated():
    first = low_like_layout(64, radius_m=1000, min_separation_m=40, seed=7)
    assert np.array_equal(first, low_like_layout(64, radius_m=1000, min_separation_m=40, seed=7))
    assert not np.array_equal(first, low_like_layout(64, radius_m=1000, min_separation_m=40, seed=8))
    radius = np.hypot(first[:, 0], first[:, 1])
    assert radius.max() <= 1000 and np.median(radius) < 0.6 * 1000  # a uniform disc would give 0.71
    distances = np.hypot(*(first[:, None, :2] - first[None, :, :2]).transpose(2, 0, 1))
    assert distances[np.triu_indices(64, 1)].min() >= 40


def test_layout_from_csv_in_enu_and_itrf(tmp_path):
    enu = np.array([[0.0, 0.0, 0.0], [100.0, 0.0, 0.0], [0.0, 250.0, 1.0]])
    with open(tmp_path / "enu.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["name", "east_m", "north_m", "up_m"])
        writer.writerows([[f"A{i}", *row] for i, row in enumerate(enu)])
    array = configuration_from_csv(tmp_path / "enu.csv")
    assert array.names == ["A0", "A1", "A2"]
    assert np.allclose(itrf_to_enu(array.positions), enu, atol=1e-6)
    xyz = enu_to_itrf(enu)
    with open(tmp_path / "xyz.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["x_m", "y_m", "z_m"])
        writer.writerows(xyz)
    assert np.allclose(configuration_from_csv(tmp_path / "xyz.csv").positions, xyz)
    with pytest.raises(DataError, match="missing.csv"):
        configuration_from_csv(tmp_path / "missing.csv")


def test_uvw_geometry_at_transit():
    """At transit a north-south baseline has u ≈ 0 and v, w from the zenith angle; lengths are kept."""
    positions = enu_to_itrf(np.array([[0.0, 0.0, 0.0], [0.0, 1000.0, 0.0], [1000.0, 0.0, 0.0]]))
    times, _ = observation_times(PHASE_CENTRE, n_times=1, hour_angle_start_h=-0.001, hour_angle_stop_h=0.001)
    uvw = antenna_uvw(positions, times, PHASE_CENTRE)[0]
    north, east = uvw[1] - uvw[0], uvw[2] - uvw[0]
    zenith_angle = PHASE_CENTRE[1] - LOW_SITE[1]  # source south of the zenith
    assert abs(north[0]) < 5.0  # precession since J2000 tilts it by a few metres in 1 km
    assert north[1] == pytest.approx(1000 * np.cos(zenith_angle), rel=1e-3)
    assert north[2] == pytest.approx(1000 * np.sin(zenith_angle), rel=2e-2)
    assert east[0] == pytest.approx(1000, rel=1e-4)
    assert np.linalg.norm(north) == pytest.approx(1000, rel=1e-9)


def test_uvw_rotates_with_hour_angle():
    positions = enu_to_itrf(np.array([[0.0, 0.0, 0.0], [1000.0, 0.0, 0.0]]))
    times, interval = observation_times(PHASE_CENTRE, n_times=2, hour_angle_start_h=-3, hour_angle_stop_h=3)
    assert interval == pytest.approx(3 * 3600 / 1.0027379, rel=1e-6)
    uvw = antenna_uvw(positions, times, PHASE_CENTRE)
    east = uvw[:, 1] - uvw[:, 0]
    # symmetric hour angles: u equal, v opposite (up to precession)
    assert east[0, 0] == pytest.approx(east[1, 0], rel=1e-2)
    assert east[0, 1] == pytest.approx(-east[1, 1], abs=20.0)


def test_survey_fluxes_many_faint_few_bright():
    fluxes = survey_fluxes(20000, flux_min_jy=0.001, flux_max_jy=1.0, rng=np.random.default_rng(0))
    assert fluxes.min() >= 0.001 and fluxes.max() <= 1.0
    assert np.mean(fluxes < 0.01) > 0.7 and np.mean(fluxes > 0.1) < 0.05


def test_primary_beam_attenuates_off_axis_sources():
    rng = np.random.default_rng(1)
    options = dict(phase_centre=PHASE_CENTRE, field_radius_rad=np.radians(3.0), n_faint=0, n_bright=50,
                   faint_flux_jy=(0.01, 0.1), bright_flux_jy=(1.0, 1.0), ref_frequency_hz=1e8)
    sky = random_sky(rng=rng, primary_beam_diameter_m=38.0, **options)
    assert sky.flux.max() <= 1.0 and sky.flux.min() < 0.5


def test_simulate_small_writes_ms_and_truth(tmp_path):
    config = SimulateConfig(preset="small")
    products = simulate_observation(config, tmp_path / "obs.ms")
    meta = read_ms_metadata(products.ms)
    assert meta.n_antennas == 16 and meta.n_channels == 4 and len(meta.times) == 10
    assert meta.n_rows == 16 * 15 // 2 * 10 and meta.polarisation == ("XX", "YY")
    assert products.truth_sky == tmp_path / "truth_sky.csv" and products.true_gains == tmp_path / "true_gains.h5"
    with open(products.truth_sky) as stream:
        assert stream.readline().strip() == "ra_deg,dec_deg,flux_jy,ref_freq_hz,spectral_index"
    sky = read_sky_csv(products.truth_sky)
    assert len(sky) == 23 and np.sum(sky.flux > 0.5) >= 1
    gains = read_gaintable_hdf5(products.true_gains)
    assert gains.gain.shape == (10, 16, 1, 1)
    phases = np.angle(gains.gain)
    assert 0.7 < np.std(phases) < 1.3  # 1 rad RMS by default


def test_simulated_data_are_the_corrupted_truth(tmp_path):
    """Without noise, DATA == true gains applied to the DFT of truth_sky.csv."""
    config = SimulateConfig(preset="small", noise_jy=0.0, stations=8, times=4, channels=3)
    products = simulate_observation(config, tmp_path / "exact.ms")
    vis = read_visibility(products.ms)
    sky = read_sky_csv(products.truth_sky)
    gains = read_gaintable_hdf5(products.true_gains)
    expected = apply_gains(predict_components(vis, sky), gains, vis.antenna1, vis.antenna2, vis.time, inverse=False)
    assert np.max(np.abs(vis.vis[:, :, 0] - expected)) < 1e-5 * np.abs(expected).max()


def test_layout_from_an_existing_ms(tmp_path):
    first = simulate_observation(SimulateConfig(preset="small", stations=7), tmp_path / "a.ms")
    array = configuration_from_ms(first.ms)
    assert array.n_antennas == 7 and array.positions.shape == (7, 3)
    (tmp_path / "b").mkdir()
    again = simulate_observation(SimulateConfig(preset="small", layout=str(first.ms)), tmp_path / "b" / "b.ms")
    assert np.allclose(read_ms_metadata(again.ms).antenna_positions, array.positions)
