"""The polarimetry kernels against RM-Tools (``run_rmsynth`` + ``run_rmclean``), spectrum by spectrum.

RM-Tools is a test dependency (``pip install -e .[test]``, as ``make test`` does); these tests
skip only where it cannot be imported. Both sides get the same spectra and the same defaults:
RM-Tools' grid (``nSamples`` 10), inverse-variance weights, a 'log' Stokes I model of order up to
3 chosen by AIC (``polyOrd=-3``) fitted by each side itself, RM-CLEAN with gain 0.1 to 3σ
(``cutoff=-3``) and at most 1000 iterations.

To keep the test short, three things RM-Tools does that do not change the compared numbers are
turned off while it runs: ``gc.collect()`` after each transform, the q/u complexity measures
(``measure_qu_complexity``, not compared), and finufft's thread pool (one thread: on a busy
2-core machine its OpenMP start-up cost dominated).
"""

from __future__ import annotations

import functools
import types
import warnings

import numpy as np
import pytest

from sdpflow.polarimetry.rmtable import measure_components
from sdpflow.polarimetry.simulate import simulate_sources

rm_synth_module = pytest.importorskip("RMtools_1D.do_RMsynth_1D", reason="RM-Tools (RM-Tools on PyPI) is not installed")
rm_clean_module = pytest.importorskip("RMtools_1D.do_RMclean_1D")
rm_util = pytest.importorskip("RMutils.util_RM")

N_THIN = 170
N_SLAB = 30


def _quiet(*_args, **_kwargs):
    return None


def _run_rm_tools(sim) -> list[tuple[dict, dict]]:
    import finufft

    single_thread = types.SimpleNamespace(nufft1d3=functools.partial(finufft.nufft1d3, nthreads=1))
    out = []
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        patch.setattr(rm_util, "gc", types.SimpleNamespace(collect=lambda: 0))
        patch.setattr(rm_util, "finufft", single_thread)
        patch.setattr(rm_synth_module, "measure_qu_complexity", lambda **_kw: ({}, {}))
        for c in range(sim.n_components):
            data = [sim.frequency_hz, sim.stokes_i[c], sim.stokes_q[c], sim.stokes_u[c], sim.noise[c],
                    sim.noise[c], sim.noise[c]]
            synth, arrays = rm_synth_module.run_rmsynth(data, polyOrd=-3, fit_function="log", nSamples=10.0,
                                                        weightType="variance", verbose=False, log=_quiet)
            clean, _ = rm_clean_module.run_rmclean(synth, arrays, -3, maxIter=1000, gain=0.1, verbose=False,
                                                   log=_quiet)
            out.append((synth, clean))
    return out


@pytest.fixture(scope="module")
def both():
    thin = simulate_sources(n_components=N_THIN, seed=21, snr_range=(3.0, 200.0))
    slab = simulate_sources(n_components=N_SLAB, seed=22, snr_range=(10.0, 200.0), slab_fraction=1.0,
                            slab_depth_range=(10.0, 40.0))
    results = []
    for sim in (thin, slab):
        ours = measure_components(frequency_hz=sim.frequency_hz, stokes_i=sim.stokes_i, stokes_q=sim.stokes_q,
                                  stokes_u=sim.stokes_u, stokes_i_err=sim.noise, stokes_q_err=sim.noise,
                                  stokes_u_err=sim.noise, max_order=3, cutoff_sigma=3.0)
        results.append((ours, _run_rm_tools(sim)))
    ours = {name: np.concatenate([results[0][0][name], results[1][0][name]]) for name in results[0][0]}
    theirs = results[0][1] + results[1][1]
    return ours, theirs


def _column(theirs, key, which):
    return np.array([pair[which][key] for pair in theirs], dtype=np.float64)


def _angle_difference_deg(a, b):
    return (a - b + 90.0) % 180.0 - 90.0


def test_grid_and_stokes_i_model_agree(both):
    ours, theirs = both
    assert len(theirs) >= 200
    # RM-Tools returns its FWHM as float32.
    np.testing.assert_allclose(ours["rmsf_fwhm"], _column(theirs, "fwhmRMSF", 0), rtol=1e-6)
    assert np.mean(ours["stokesI_model_order"] == _column(theirs, "polyOrd", 0)) >= 0.98
    np.testing.assert_allclose(ours["stokesI"], _column(theirs, "Ifreq0", 0), rtol=1e-3)
    np.testing.assert_allclose(ours["refwave_sq_pol"], _column(theirs, "lam0Sq_m2", 0), rtol=1e-5)
    np.testing.assert_allclose(ours["fdf_noise_th"], _column(theirs, "dFDFth", 0), rtol=1e-3)


@pytest.mark.parametrize("prefix, which", [("dirty_", 0), ("", 1)], ids=["rmsynth", "rmclean"])
def test_peak_measurements_agree(both, prefix, which):
    ours, theirs = both
    fwhm = ours["rmsf_fwhm"][0]
    rm = _column(theirs, "phiPeakPIfit_rm2", which)
    assert np.all(np.abs(ours[prefix + "rm"] - rm) < 0.02 * fwhm)
    np.testing.assert_allclose(ours[prefix + "polint"], _column(theirs, "ampPeakPIfitEff", which), rtol=0.01)
    np.testing.assert_allclose(ours[prefix + "rm_err"], _column(theirs, "dPhiPeakPIfit_rm2", which), rtol=0.05)
    np.testing.assert_allclose(ours[prefix + "polint_err"], _column(theirs, "dAmpPeakPIfit", which), rtol=0.01)
    np.testing.assert_allclose(ours[prefix + "snr_polint"], _column(theirs, "snrPIfit", which), rtol=0.01)
    scale = ours[prefix + "polint_fit"]
    for name, key in (("stokesQ", "peakFDFrealFit"), ("stokesU", "peakFDFimagFit")):
        assert np.all(np.abs(ours[prefix + name] - _column(theirs, key, which)) < 0.01 * scale)
    for angle in ("polangle", "derot_polangle"):
        key = {"polangle": "polAngleFit_deg", "derot_polangle": "polAngle0Fit_deg"}[angle]
        assert np.all(np.abs(_angle_difference_deg(ours[prefix + angle], _column(theirs, key, which))) < 0.5)
    np.testing.assert_allclose(ours[prefix + "derot_polangle_err"], _column(theirs, "dPolAngle0Fit_deg", which),
                               rtol=0.05)


def test_rm_clean_agrees(both):
    ours, theirs = both
    n_iter = _column(theirs, "nIter", 1)
    assert np.mean(ours["clean_n_iter"] == n_iter) >= 0.95
    np.testing.assert_allclose(ours["clean_n_iter"], n_iter, atol=3)
    np.testing.assert_allclose(ours["clean_cutoff"], _column(theirs, "cleanCutoff", 1), rtol=1e-3)
    mom2 = _column(theirs, "mom2CCFDF", 1)
    cleaned = np.isfinite(mom2)
    np.testing.assert_array_equal(np.isfinite(ours["mom2_cc"]), cleaned)
    # (0 where all components sit in one sample)
    close = np.isclose(ours["mom2_cc"][cleaned], mom2[cleaned], rtol=0.01, atol=1e-6 * ours["rmsf_fwhm"][0])
    assert np.mean(close) >= 0.95
    # fracPol is RM-Tools' dirty polint over Ifreq0.
    np.testing.assert_allclose(ours["dirty_polint"] / ours["stokesI"], _column(theirs, "fracPol", 0), rtol=0.01)


def test_flagged_channels_differ_only_in_the_noise():
    """With NaN channels RM-Tools 1.5 still counts their weights in dFDFth; sdpflow counts the
    channels used. Everything else agrees; the noise differs by √(Σw_used / Σw_all)."""
    sim = simulate_sources(n_components=12, seed=23, snr_range=(20.0, 100.0))
    nan = np.ones(sim.frequency_hz.size)
    nan[50:80] = np.nan
    flagged = type(sim)(**{**sim.__dict__, "stokes_i": sim.stokes_i * nan, "stokes_q": sim.stokes_q * nan,
                           "stokes_u": sim.stokes_u * nan})
    ours = measure_components(frequency_hz=sim.frequency_hz, stokes_i=flagged.stokes_i, stokes_q=flagged.stokes_q,
                              stokes_u=flagged.stokes_u, stokes_i_err=sim.noise, stokes_q_err=sim.noise,
                              stokes_u_err=sim.noise)
    theirs = _run_rm_tools(flagged)
    fwhm = ours["rmsf_fwhm"][0]
    assert np.all(np.abs(ours["rm"] - _column(theirs, "phiPeakPIfit_rm2", 1)) < 0.02 * fwhm)
    np.testing.assert_allclose(ours["stokesI"], _column(theirs, "Ifreq0", 0), rtol=1e-3)
    np.testing.assert_allclose(ours["refwave_sq_pol"], _column(theirs, "lam0Sq_m2", 0), rtol=1e-5)
    used = np.isfinite(nan)
    weights_all = (sim.true_stokes_i(sim.frequency_hz) / sim.noise) ** 2   # w = (I_model / σ)², near enough
    expected = np.sqrt(weights_all.sum(axis=1) / weights_all[:, used].sum(axis=1))
    np.testing.assert_allclose(ours["fdf_noise_th"] / _column(theirs, "dFDFth", 0), expected, rtol=0.01)


def test_faint_components_agree_and_are_finite():
    """Faint sources (polarised S/N 0.3–3, Stokes I far below the noise per channel): RM-Tools'
    I model may go negative; so may ours, and the results stay finite and mostly identical.
    Where I is undetected the fit can have several minima, so a few may differ."""
    sim = simulate_sources(n_components=30, seed=24, snr_range=(0.3, 3.0))
    ours = measure_components(frequency_hz=sim.frequency_hz, stokes_i=sim.stokes_i, stokes_q=sim.stokes_q,
                              stokes_u=sim.stokes_u, stokes_i_err=sim.noise, stokes_q_err=sim.noise,
                              stokes_u_err=sim.noise)
    theirs = _run_rm_tools(sim)
    rm = _column(theirs, "phiPeakPIfit_rm2", 1)
    assert np.array_equal(np.isfinite(ours["rm"]), np.isfinite(rm))
    same = np.abs(ours["rm"] - rm) < 0.02 * ours["rmsf_fwhm"][0]
    assert np.mean(same) >= 0.9
    np.testing.assert_allclose(ours["stokesI"][same], _column(theirs, "Ifreq0", 0)[same], rtol=1e-3)
    flags = _column(theirs, "IfitStat", 0).astype(int) & 192
    assert np.mean(ours["stokes_I_fit_flag"] == flags) >= 0.9
