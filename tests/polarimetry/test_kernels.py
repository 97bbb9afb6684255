"""The polarimetry kernels against the truth of simulated spectra and against their definitions."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from sdpflow.polarimetry.peak import measure_peak
from sdpflow.polarimetry.rmclean import rm_clean
from sdpflow.polarimetry.rmsynth import faraday_grid, lambda2_from_frequency, rm_synthesis, rmsf
from sdpflow.polarimetry.rmtable import as_rows, measure_components
from sdpflow.polarimetry.simulate import default_frequencies, simulate_sources
from sdpflow.polarimetry.stokesi import FLAG_LOW_SNR, FLAG_NEGATIVE, fit_stokes_i

FREQ = default_frequencies()


def _measure(sim, **kwargs):
    return measure_components(frequency_hz=sim.frequency_hz, stokes_i=sim.stokes_i, stokes_q=sim.stokes_q,
                              stokes_u=sim.stokes_u, stokes_i_err=sim.noise, stokes_q_err=sim.noise,
                              stokes_u_err=sim.noise, **kwargs)


def _angle_difference_deg(a, b):
    return (np.asarray(a) - np.asarray(b) + 90.0) % 180.0 - 90.0


def test_grid_follows_rm_tools_rules():
    grid = faraday_grid(frequency_hz=FREQ)
    lam2 = lambda2_from_frequency(frequency_hz=FREQ)
    assert lam2[0] == pytest.approx((299_792_458.0 / 800e6) ** 2)
    fwhm = 3.8 / (lam2.max() - lam2.min())
    assert grid.rmsf_fwhm == pytest.approx(fwhm, rel=1e-14)
    assert grid.dphi_radm2 == pytest.approx(fwhm / 10.0, rel=1e-14)
    phi_max = max(np.sqrt(3.0) / np.max(np.abs(np.diff(lam2))), 10 * fwhm)
    assert abs(grid.phi_max_radm2 - phi_max) <= grid.dphi_radm2 / 2
    assert grid.phi_radm2[grid.n_phi // 2] == 0.0
    assert grid.phi2_radm2.size == 2 * grid.n_phi + 1
    np.testing.assert_allclose(np.diff(grid.phi2_radm2), grid.dphi_radm2)
    # A grid travels without its cached kernels, and works where it lands.
    grid.fdf_kernel(np.complex64)
    copy = pickle.loads(pickle.dumps(grid))
    assert len(pickle.dumps(grid)) < 100_000 and copy.rmsf_fwhm == grid.rmsf_fwhm
    np.testing.assert_array_equal(copy.fdf_kernel(np.complex64), grid.fdf_kernel(np.complex64))
    # Few wide channels (√3/δλ² < 10 FWHM): φ_max is held at 10 FWHM.
    narrow = faraday_grid(frequency_hz=np.array([1.0e9, 1.2e9, 1.4e9]))
    assert narrow.phi_max_radm2 == pytest.approx(10 * narrow.rmsf_fwhm, abs=narrow.dphi_radm2)


def test_rmsf_is_one_at_zero_hermitian_and_as_wide_as_its_fwhm():
    grid = faraday_grid(frequency_hz=FREQ)
    sim = simulate_sources(n_components=3, seed=4)
    model = fit_stokes_i(frequency_hz=FREQ, stokes_i=sim.stokes_i, stokes_i_err=sim.noise)
    synth = rm_synthesis(stokes_q=sim.stokes_q, stokes_u=sim.stokes_u, stokes_q_err=sim.noise,
                         stokes_u_err=sim.noise, stokes_i_model=model.evaluate(FREQ), i_model_at=model.at,
                         grid=grid, dtype=np.complex128)
    centre = grid.phi2_radm2.size // 2
    np.testing.assert_allclose(synth.rmsf[:, centre], 1.0, atol=1e-12)
    np.testing.assert_allclose(synth.rmsf[:, centre - 5], np.conj(synth.rmsf[:, centre + 5]), atol=1e-12)
    # Direct sum at a few depths, from the definition.
    with np.errstate(divide="ignore"):
        i_model = model.evaluate(FREQ)
    w = 1.0 / (sim.noise / i_model) ** 2
    for k in (centre + 7, centre - 300):
        phi = grid.phi2_radm2[k]
        direct = np.sum(w * np.exp(-2j * phi * (grid.lambda2_m2 - synth.lambda0_sq_m2[:, None])), axis=1)
        np.testing.assert_allclose(synth.rmsf[:, k], direct / w.sum(axis=1), atol=1e-9)
    # The RMSFs of some components alone, from the weights the synthesis used: the same.
    rows = [2, 0]
    alone = rmsf(weights=synth.weights[rows], lambda0_sq_m2=synth.lambda0_sq_m2[rows], grid=grid,
                 dtype=np.complex128)
    np.testing.assert_allclose(alone, synth.rmsf[rows], atol=1e-12)
    # The main lobe's half-power width is within 15% of 3.8/Δλ² (the formula is approximate).
    amp = np.abs(synth.rmsf[0])
    above = np.flatnonzero(amp >= 0.5)
    lobe = above[(above > centre - 20) & (above < centre + 20)]
    width = (lobe.size - 1) * grid.dphi_radm2
    assert width == pytest.approx(grid.rmsf_fwhm, rel=0.15)


def test_noise_free_thin_source_is_found_exactly():
    sim = simulate_sources(n_components=50, seed=5, noise_jy=1e-12, snr_range=(1e6, 1e7))
    result = _measure(sim, clean=False, dtype=np.complex128)
    fwhm = result["rmsf_fwhm"][0]
    assert np.max(np.abs(result["rm"] - sim.rm)) < 0.01 * fwhm
    truth = sim.fracpol * sim.i_ref * (result["reffreq_pol"] / sim.reference_hz) ** sim.alpha
    np.testing.assert_allclose(result["polint"], truth, rtol=2e-3)   # the parabola's peak, not the true peak
    np.testing.assert_allclose(_angle_difference_deg(result["derot_polangle"], np.degrees(sim.polangle)), 0.0,
                               atol=0.5)


def test_against_truth_faraday_thin_with_noise():
    sim = simulate_sources(n_components=600, seed=11, snr_range=(10.0, 100.0))
    result = _measure(sim)
    fwhm = result["rmsf_fwhm"][0]
    truth_polint = sim.fracpol * sim.i_ref * (result["reffreq_pol"] / sim.reference_hz) ** sim.alpha
    bright = truth_polint / result["fdf_noise_th"] > 10.0
    assert bright.sum() > 500
    drm = np.abs(result["rm"] - sim.rm)[bright]
    assert np.mean(drm < 3 * result["rm_err"][bright]) >= 0.95
    assert np.median(drm) < 0.05 * fwhm
    dpol = (result["polint"] - truth_polint)[bright]
    assert np.median(np.abs(dpol) / truth_polint[bright]) < 0.05
    assert np.mean(np.abs(dpol) < 3 * result["polint_err"][bright]) >= 0.95
    very_bright = (truth_polint / result["fdf_noise_th"] > 60.0)
    assert np.mean((np.abs(result["polint"] - truth_polint) / truth_polint)[very_bright] < 0.05) >= 0.95
    dangle = _angle_difference_deg(result["derot_polangle"], np.degrees(sim.polangle))[bright]
    assert np.mean(np.abs(dangle) < 3 * result["derot_polangle_err"][bright]) >= 0.95
    frac = result["fracpol"][bright] / sim.fracpol[bright]
    assert np.median(np.abs(frac - 1)) < 0.05
    # The errors are honest, not inflated: the RM pulls have a spread near 1.
    pulls = ((result["rm"] - sim.rm) / result["rm_err"])[bright]
    assert 0.7 < np.std(pulls) < 1.3


def test_stokes_i_model_recovers_power_laws_and_picks_low_orders():
    sim = simulate_sources(n_components=200, seed=6)
    model = fit_stokes_i(frequency_hz=FREQ, stokes_i=sim.stokes_i, stokes_i_err=sim.noise, max_order=3)
    i_ref = sim.i_ref * (model.reference_hz / sim.reference_hz) ** sim.alpha
    assert np.median(np.abs(model.amplitude / i_ref - 1)) < 0.01
    bright = sim.i_ref / sim.noise[:, 0] > 20
    assert np.median(np.abs(model.exponents[bright, 0] - sim.alpha[bright])) < 0.1
    assert np.mean(model.order <= 1) > 0.7          # a power law needs order 1; the AIC rarely asks more
    # Noise-free: the order-1 fit is exact.
    exact = fit_stokes_i(frequency_hz=FREQ, stokes_i=sim.true_stokes_i(FREQ), stokes_i_err=sim.noise * 1e-4)
    assert np.all(exact.order == 1)
    np.testing.assert_allclose(exact.evaluate(FREQ), sim.true_stokes_i(FREQ), rtol=1e-6)
    # A Stokes I buried in noise with a negative mean: a negative constant, flagged (as RM-Tools).
    rng = np.random.default_rng(3)
    faint = -0.2 + rng.standard_normal((1, FREQ.size))
    negative = fit_stokes_i(frequency_hz=FREQ, stokes_i=faint, stokes_i_err=np.ones((1, FREQ.size)))
    assert negative.order[0] == 0 and negative.amplitude[0] == pytest.approx(faint.mean())
    assert negative.flag[0] & FLAG_NEGATIVE and negative.flag[0] & FLAG_LOW_SNR
    assert model.flag[bright].max() < FLAG_NEGATIVE
    # Too few channels: no fit, the model is unity (as RM-Tools falls back).
    few = np.full((1, FREQ.size), np.nan)
    few[0, :3] = 1.0
    bad = fit_stokes_i(frequency_hz=FREQ, stokes_i=few, stokes_i_err=np.ones((1, FREQ.size)))
    assert bad.order[0] == -1 and np.all(bad.evaluate(FREQ) == 1.0)


def test_rm_clean_removes_a_thin_source_and_leaves_noise():
    sim = simulate_sources(n_components=40, seed=8, snr_range=(50.0, 100.0))
    grid = faraday_grid(frequency_hz=FREQ)
    model = fit_stokes_i(frequency_hz=FREQ, stokes_i=sim.stokes_i, stokes_i_err=sim.noise)
    synth = rm_synthesis(stokes_q=sim.stokes_q, stokes_u=sim.stokes_u, stokes_q_err=sim.noise,
                         stokes_u_err=sim.noise, stokes_i_model=model.evaluate(FREQ), i_model_at=model.at,
                         grid=grid)
    cutoff = 3 * synth.fdf_noise
    cleaned = rm_clean(fdf=synth.fdf, rmsf=synth.rmsf, phi_radm2=grid.phi_radm2, rmsf_fwhm=grid.rmsf_fwhm,
                       cutoff=cutoff)
    assert np.all(np.abs(cleaned.residual_fdf).max(axis=1) < cutoff)
    assert np.all(cleaned.n_iter > 10) and np.all(cleaned.n_iter < 1000)
    # Most of the clean flux sits within one FWHM of the true RM (the rest: noise peaks above 3σ).
    near = np.abs(grid.phi_radm2[None, :] - sim.rm[:, None]) < grid.rmsf_fwhm
    flux = np.abs(cleaned.components)
    assert np.all((flux * near).sum(axis=1) / flux.sum(axis=1) > 0.8)
    # The second moment of the components, from its definition.
    weights = flux / flux.sum(axis=1, keepdims=True)
    mean = (weights * grid.phi_radm2).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(cleaned.mom2_cc, np.sqrt((weights * (grid.phi_radm2 - mean) ** 2).sum(axis=1)),
                               rtol=1e-6)
    # Faint source below the cutoff: nothing cleaned, clean FDF = dirty FDF, moment NaN.
    faint = rm_clean(fdf=synth.fdf[:2] * 1e-6, rmsf=synth.rmsf[:2], phi_radm2=grid.phi_radm2,
                     rmsf_fwhm=grid.rmsf_fwhm, cutoff=cutoff[:2])
    assert np.all(faint.n_iter == 0) and np.all(np.isnan(faint.mom2_cc))
    np.testing.assert_array_equal(faint.clean_fdf, synth.fdf[:2] * 1e-6)
    # Serial (the default off the main thread, e.g. on a Dask worker's thread) = parallel.
    serial = rm_clean(fdf=synth.fdf, rmsf=synth.rmsf, phi_radm2=grid.phi_radm2, rmsf_fwhm=grid.rmsf_fwhm,
                      cutoff=cutoff, parallel=False)
    np.testing.assert_array_equal(serial.components, cleaned.components)
    np.testing.assert_array_equal(serial.n_iter, cleaned.n_iter)
    # The iteration limit holds.
    limited = rm_clean(fdf=synth.fdf[:3], rmsf=synth.rmsf[:3], phi_radm2=grid.phi_radm2,
                       rmsf_fwhm=grid.rmsf_fwhm, cutoff=0.0, max_iter=7)
    assert np.all(limited.n_iter == 7)


def _clean_to(sim, fraction_of_peak):
    grid = faraday_grid(frequency_hz=FREQ)
    model = fit_stokes_i(frequency_hz=FREQ, stokes_i=sim.stokes_i, stokes_i_err=sim.noise)
    synth = rm_synthesis(stokes_q=sim.stokes_q, stokes_u=sim.stokes_u, stokes_q_err=sim.noise,
                         stokes_u_err=sim.noise, stokes_i_model=model.evaluate(FREQ), i_model_at=model.at,
                         grid=grid)
    cutoff = fraction_of_peak * np.abs(synth.fdf).max(axis=1)
    return grid, rm_clean(fdf=synth.fdf, rmsf=synth.rmsf, phi_radm2=grid.phi_radm2, rmsf_fwhm=grid.rmsf_fwhm,
                          cutoff=cutoff)


def test_burn_slabs_are_wider_in_faraday_depth_than_thin_sources():
    # Bright sources cleaned to 2% of their peak (far above the noise), so that the clean
    # components trace the Faraday spectrum and not noise peaks; a thin source on a grid
    # sample is cleaned into that one sample.
    common = dict(n_components=30, seed=9, snr_range=(3000.0, 5000.0))
    grid = faraday_grid(frequency_hz=FREQ)
    on_sample = 3 * grid.dphi_radm2
    slabs = simulate_sources(slab_fraction=1.0, slab_depth_range=(25.0, 35.0), **common)
    thin = simulate_sources(slab_fraction=0.0, rm_range=(on_sample, on_sample), **common)
    _, slab_clean = _clean_to(slabs, 0.02)
    _, thin_clean = _clean_to(thin, 0.02)
    assert np.max(thin_clean.mom2_cc) < 0.02 * grid.rmsf_fwhm
    assert np.min(slab_clean.mom2_cc) > 0.1 * grid.rmsf_fwhm
    # A slab's FDF peaks inside the slab (between 0 and its depth φ_s), give or take half a FWHM,
    # and is depolarised: its peak is below p₀ I.
    slab_result = _measure(slabs)
    fwhm = grid.rmsf_fwhm
    assert np.all((slab_result["rm"] > -fwhm / 2) & (slab_result["rm"] < slabs.rm + fwhm / 2))
    assert np.all(slab_result["fracpol"] < slabs.fracpol)


def test_peak_near_edge_and_bias_correction():
    grid = faraday_grid(frequency_hz=FREQ)
    n_phi = grid.n_phi
    fdf = np.zeros((3, n_phi), dtype=np.complex128)
    sigma = np.array([1.0, 1.0, 1.0])
    # A parabola-shaped peak at sample 100, amplitude 20σ: exact vertex, bias-corrected.
    fdf[0, 99:102] = [19.0, 20.0, 19.0]
    # A peak at 3σ: not corrected (below 5σ).
    fdf[1, 200:203] = [2.0, 3.0, 2.0]
    # A peak at the last sample is never taken; the largest interior one is.
    fdf[2, -1] = 100.0
    fdf[2, 400:403] = [5.0, 6.0, 5.0]
    peak = measure_peak(fdf=fdf, phi_radm2=grid.phi_radm2, rmsf_fwhm=grid.rmsf_fwhm, fdf_noise=sigma,
                        lambda0_sq_m2=np.full(3, 0.1), n_channels=288, var_lambda2_m4=3.5e-4)
    assert peak.rm[0] == pytest.approx(grid.phi_radm2[100])
    assert peak.polint_fit[0] == pytest.approx(20.0)
    assert peak.polint[0] == pytest.approx(np.sqrt(400.0 - 2.3))
    assert peak.polint[1] == pytest.approx(3.0)
    assert peak.rm_err[0] == pytest.approx(grid.rmsf_fwhm / 40.0)
    assert peak.peak_index[2] == 401


def test_flagged_channels_are_left_out():
    sim = simulate_sources(n_components=100, seed=12, snr_range=(20.0, 100.0))
    flagged = np.zeros(FREQ.size, dtype=bool)
    flagged[40:70] = True
    flagged[200] = True
    nan = np.where(flagged, np.nan, 1.0)
    with_nan = measure_components(frequency_hz=FREQ, stokes_i=sim.stokes_i * nan, stokes_q=sim.stokes_q * nan,
                                  stokes_u=sim.stokes_u * nan, stokes_i_err=sim.noise, stokes_q_err=sim.noise,
                                  stokes_u_err=sim.noise)
    # The same channels given no weight through infinite errors: the same answer.
    inf = np.where(flagged, np.inf, 1.0)
    with_inf = measure_components(frequency_hz=FREQ, stokes_i=sim.stokes_i, stokes_q=sim.stokes_q,
                                  stokes_u=sim.stokes_u, stokes_i_err=sim.noise * inf,
                                  stokes_q_err=sim.noise * inf, stokes_u_err=sim.noise * inf)
    assert np.all(with_nan["Nchan"] == FREQ.size - flagged.sum())
    for name in ("rm", "polint", "rm_err", "derot_polangle", "stokesI"):
        np.testing.assert_allclose(with_nan[name], with_inf[name], rtol=1e-5, atol=1e-6)
    assert np.median(np.abs(with_nan["rm"] - sim.rm)) < 0.05 * with_nan["rmsf_fwhm"][0]
    # A component with every channel flagged gives NaN, quietly, and leaves its neighbours alone.
    stokes = [np.array(x, copy=True) for x in (sim.stokes_i[:3], sim.stokes_q[:3], sim.stokes_u[:3])]
    for x in stokes:
        x[1] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        empty = measure_components(frequency_hz=FREQ, stokes_i=stokes[0], stokes_q=stokes[1], stokes_u=stokes[2],
                                   stokes_i_err=sim.noise[:3], stokes_q_err=sim.noise[:3], stokes_u_err=sim.noise[:3])
    assert np.isnan(empty["rm"][1]) and np.isnan(empty["polint"][1]) and empty["Nchan"][1] == 0
    reference = _measure(simulate_sources(n_components=100, seed=12, snr_range=(20.0, 100.0)))
    np.testing.assert_allclose(empty["rm"][[0, 2]], reference["rm"][[0, 2]], rtol=1e-6)


def test_rows_for_a_result_table():
    sim = simulate_sources(n_components=3, seed=13)
    columns = _measure(sim)
    rows = as_rows(columns)
    assert len(rows) == 3 and set(rows[0]) == set(columns)
    assert isinstance(rows[1]["rm"], float) and rows[1]["rm"] == columns["rm"][1]
    assert isinstance(rows[2]["Nchan"], int)


def test_significant_second_moment_tells_two_faraday_screens_from_one_despite_noise():
    # At S/N 30-100 a 3σ clean also takes small components from noise peaks anywhere on the axis:
    # mom2_cc of a thin source is then several FWHM; over the components of at least 2σ it is not.
    from sdpflow.polarimetry.simulate import polarised_spectra

    thin = simulate_sources(n_components=60, snr_range=(30.0, 100.0), rm_range=(-100.0, 100.0), seed=21)
    fwhm = faraday_grid(frequency_hz=FREQ).rmsf_fwhm
    second = polarised_spectra(frequency_hz=FREQ, stokes_i=thin.true_stokes_i(FREQ), fracpol=thin.fracpol,
                               polangle=thin.polangle + 1.0, rm=thin.rm + 3 * fwhm)
    double = _measure(thin.__class__(**{**thin.__dict__, "stokes_q": thin.stokes_q + second.real,
                                        "stokes_u": thin.stokes_u + second.imag}))
    single = _measure(thin)
    assert np.median(single["mom2_cc"]) > 1.0 * fwhm
    assert np.quantile(single["mom2_cc_significant"], 0.95) < 0.2 * fwhm
    assert np.all(double["mom2_cc_significant"] > 1.0 * fwhm)
