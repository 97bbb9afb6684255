"""The gain solver recovers known gains: exactly (1e-6) without noise, to the expected level with it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from radio_testdata import observation, point_sky

from sdpflow.radio.calibration import apply_gains, invert_gains, solve_gains, unsolved_samples
from sdpflow.radio.datamodels import GainTable, concatenate_gaintables
from sdpflow.radio.sky import predict_components

N_STATIONS = 16


@pytest.fixture(scope="module")
def model_vis():
    """Model visibilities of a few sources: 16 stations, 6 integrations, 3 channels."""
    vis = observation(n_stations=N_STATIONS, n_times=6, frequency=(1.0e8, 1.02e8, 1.04e8), seed=8)
    sky = point_sky([15.2, 14.7, 15.0], [-44.8, -45.3, -45.0], [3.0, 1.5, 1.0], spectral_index=[-0.7, 0.0, -1.0])
    return vis.with_vis(predict_components(vis, sky))


def true_gains(vis, *, rng, per_channel=False, phase_only=False, per_slot=1) -> GainTable:
    times = vis.unique_times()
    n_slots = int(np.ceil(len(times) / per_slot))
    n_chan = vis.n_channels if per_channel else 1
    shape = (n_slots, N_STATIONS, n_chan, 1)
    amplitude = np.ones(shape) if phase_only else rng.uniform(0.7, 1.3, shape)
    gain = amplitude * np.exp(1j * rng.normal(0, 1.0, shape))
    interval = vis.interval[0]
    slot_times = np.array([times[i:i + per_slot].mean() for i in range(0, len(times), per_slot)])
    return GainTable(gain=gain, weight=np.ones(shape), time=slot_times,
                     interval=np.array([len(times[i:i + per_slot]) * interval for i in range(0, len(times), per_slot)]),
                     frequency=vis.frequency if per_channel else np.array([vis.frequency.mean()]))


def referenced(gain, refant=0):
    """Gains with the reference antenna's phase removed (the solver's convention)."""
    ref = gain[:, refant:refant + 1]
    return gain * np.conj(ref) / np.abs(ref)


@pytest.mark.parametrize("mode", ["T", "G", "B"])
def test_noiseless_gains_are_recovered_to_1e6(model_vis, mode):
    rng = np.random.default_rng(1)
    truth = true_gains(model_vis, rng=rng, per_channel=(mode == "B"), phase_only=(mode == "T"))
    observed = model_vis.with_vis(apply_gains(model_vis.vis, truth, model_vis.antenna1, model_vis.antenna2,
                                              model_vis.time, inverse=False))
    solved = solve_gains(observed, model_vis.vis[:, :, 0], mode=mode, refant=0, tol=1e-12, max_iterations=1000)
    assert solved.gain.shape == truth.gain.shape
    error = np.max(np.abs(solved.gain - referenced(truth.gain)))
    assert error < 1e-6
    assert np.all(np.abs(np.angle(solved.gain[:, 0])) < 1e-12)


def test_refant_other_than_zero(model_vis):
    rng = np.random.default_rng(2)
    truth = true_gains(model_vis, rng=rng)
    observed = model_vis.with_vis(apply_gains(model_vis.vis, truth, model_vis.antenna1, model_vis.antenna2,
                                              model_vis.time, inverse=False))
    solved = solve_gains(observed, model_vis.vis, mode="G", refant=5, tol=1e-12, max_iterations=1000)
    assert np.max(np.abs(solved.gain - referenced(truth.gain, refant=5))) < 1e-6


def test_solution_interval_spans_integrations(model_vis):
    rng = np.random.default_rng(3)
    truth = true_gains(model_vis, rng=rng, per_slot=3)
    observed = model_vis.with_vis(apply_gains(model_vis.vis, truth, model_vis.antenna1, model_vis.antenna2,
                                              model_vis.time, inverse=False))
    solved = solve_gains(observed, model_vis.vis, mode="G", timeslice=3 * model_vis.interval[0], tol=1e-12,
                         max_iterations=1000)
    assert len(solved.time) == 2
    assert np.allclose(solved.time, truth.time) and np.allclose(solved.interval, truth.interval)
    assert np.max(np.abs(solved.gain - referenced(truth.gain))) < 1e-6


def test_flagged_data_are_ignored(model_vis):
    rng = np.random.default_rng(4)
    truth = true_gains(model_vis, rng=rng)
    data = apply_gains(model_vis.vis, truth, model_vis.antenna1, model_vis.antenna2, model_vis.time, inverse=False)
    observed = model_vis.with_vis(data)
    bad = (model_vis.antenna1 == 3) & (np.arange(model_vis.n_rows) % 2 == 0)
    observed.vis[bad] = 100.0  # garbage on half of antenna 3's baselines ...
    observed.flag[bad] = True  # ... flagged
    solved = solve_gains(observed, model_vis.vis, mode="G", tol=1e-12, max_iterations=1000)
    assert np.max(np.abs(solved.gain - referenced(truth.gain))) < 1e-6


def test_antenna_without_data_is_unsolved(model_vis):
    observed = model_vis.with_vis(model_vis.vis.copy())
    dead = (model_vis.antenna1 == 7) | (model_vis.antenna2 == 7)
    observed.flag[dead] = True
    solved = solve_gains(observed, model_vis.vis, mode="G")
    assert np.all(solved.weight[:, 7] == 0) and np.all(solved.weight[:, 6] > 0)
    unsolved = unsolved_samples(model_vis.n_channels, solved, model_vis.antenna1, model_vis.antenna2, model_vis.time)
    assert np.array_equal(unsolved.any(axis=1), dead)


def test_noisy_gain_errors_match_the_expected_level():
    """One 10 Jy source at the centre: the gain error per antenna is as least squares predicts.

    Each antenna's gain has error variance s² = 2σ² / (S² (N - 1) N_chan); referring all
    gains to the reference antenna adds its phase error (variance s²/2) to each: 1.5 s².
    """
    vis = observation(n_stations=N_STATIONS, n_times=40, frequency=(1.0e8, 1.02e8, 1.04e8), seed=9)
    model = vis.with_vis(predict_components(vis, point_sky([15.0], [-45.0], [10.0])))
    rng = np.random.default_rng(5)
    truth = true_gains(model, rng=rng, phase_only=True)
    sigma = 2.0  # per real and imaginary part
    data = apply_gains(model.vis, truth, model.antenna1, model.antenna2, model.time, inverse=False)
    data = data + rng.normal(0, sigma, data.shape) + 1j * rng.normal(0, sigma, data.shape)
    solved = solve_gains(model.with_vis(data), model.vis, mode="G", tol=1e-10)
    error = solved.gain[:, 1:] - referenced(truth.gain)[:, 1:]
    expected = np.sqrt(1.5) * np.sqrt(2) * sigma / (10.0 * np.sqrt((N_STATIONS - 1) * 3))
    measured = np.sqrt(np.mean(np.abs(error) ** 2))
    assert 0.9 * expected < measured < 1.1 * expected


def test_apply_then_correct_is_identity_and_invert_gains(model_vis):
    rng = np.random.default_rng(6)
    truth = true_gains(model_vis, rng=rng, per_channel=True)
    a1, a2, t = model_vis.antenna1, model_vis.antenna2, model_vis.time
    corrupted = apply_gains(model_vis.vis, truth, a1, a2, t, inverse=False)
    assert np.max(np.abs(apply_gains(corrupted, truth, a1, a2, t, inverse=True) - model_vis.vis)) < 1e-12
    assert np.max(np.abs(apply_gains(corrupted, invert_gains(truth), a1, a2, t, inverse=False) - model_vis.vis)) < 1e-12


def test_solutions_of_time_chunks_concatenate_to_the_whole(model_vis):
    rng = np.random.default_rng(7)
    truth = true_gains(model_vis, rng=rng)
    observed = model_vis.with_vis(apply_gains(model_vis.vis, truth, model_vis.antenna1, model_vis.antenna2,
                                              model_vis.time, inverse=False))
    split = model_vis.time_row_ranges()[2][1]

    def rows(vis, a, b):
        return replace(vis, uvw=vis.uvw[a:b], time=vis.time[a:b], interval=vis.interval[a:b],
                       antenna1=vis.antenna1[a:b], antenna2=vis.antenna2[a:b], vis=vis.vis[a:b],
                       weight=vis.weight[a:b], flag=vis.flag[a:b])

    whole = solve_gains(observed, model_vis.vis, mode="G", tol=1e-12, max_iterations=1000)
    chunks = [solve_gains(rows(observed, a, b), model_vis.vis[a:b], mode="G", tol=1e-12, max_iterations=1000)
              for a, b in ((split, model_vis.n_rows), (0, split))]
    joined = concatenate_gaintables(chunks)
    assert np.allclose(joined.time, whole.time)
    assert np.max(np.abs(joined.gain - whole.gain)) < 1e-9
