"""--name: WSClean's file names (checked against the files WSClean itself writes) and --fit-spectral-pol in a run."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from distributed import Client, LocalCluster

from sdpflow.config.imaging import ContinuumConfig, DeconvolutionConfig, ImagingConfig
from sdpflow.config.simulate import SimulateConfig
from sdpflow.pipelines import start_run
from sdpflow.pipelines.imaging.wsclean_names import wsclean_names
from sdpflow.pipelines.simulate import simulate_observation
from sdpflow.radio import fits
from sdpflow.radio.joined_clean import spectral_projection
from sdpflow.store import RunStore

needs_wsclean = pytest.mark.skipif(shutil.which("wsclean") is None and not os.environ.get("SDPFLOW_CI"),
                                   reason="wsclean is not installed (CI installs it)")


@pytest.fixture(scope="module")
def observation(tmp_path_factory):
    """Four correlations (a polarised sky), 8 channels over 800-1100 MHz: enough for -pol and -channels-out."""
    config = SimulateConfig(preset="pol", channels=8, freq_width_hz=40e6, times=12, stations=24, noise_jy=0.1,
                            phase_error_rad=0.0, seed=3)
    return simulate_observation(config, tmp_path_factory.mktemp("namesobs") / "obs.ms")


@pytest.mark.wsclean
@needs_wsclean
@pytest.mark.parametrize("pol, channels_out, niter", [("I", 1, 10), ("I", 3, 10), ("IQUV", 1, 10), ("QU", 2, 10),
                                                      ("V", 2, 10), ("IQU", 1, 0)])
def test_names_are_the_files_wsclean_writes(observation, tmp_path, pol, channels_out, niter):
    done = subprocess.run(["wsclean", "-quiet", "-size", "64", "64", "-scale", "2amin", "-pol", pol,
                           "-channels-out", str(channels_out), "-niter", str(niter), "-use-wgridder",
                           "-name", str(tmp_path / "ws"), str(observation.ms)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    theirs = {path.name for path in tmp_path.glob("ws-*.fits")}
    planned = wsclean_names("ws", ImagingConfig(pol=pol).stokes, channels_out, niter)
    assert {plane.name for plane in planned} == theirs and len(planned) == len(theirs)


@pytest.fixture(scope="module")
def fitted_run(observation, tmp_path_factory):
    out = tmp_path_factory.mktemp("namesrun")
    config = ContinuumConfig(
        ms=str(observation.ms),
        imaging=ImagingConfig(size=(128, 128), weight="natural", channels_out=4, name="ws"),
        deconvolution=DeconvolutionConfig(niter=2000, mgain=0.8, auto_threshold=3.0, nmajor=2, join_channels=True,
                                          fit_spectral_pol=2))
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address="127.0.0.1:0") as cluster:
        with Client(cluster):
            result = start_run("continuum", config, out / "run", store=RunStore(f"sqlite:///{out / 'runs.db'}"),
                               cluster_spec=cluster.scheduler_address)
    return result.out_dir


def test_fitted_run_writes_linear_spectra_under_wsclean_names(fitted_run):
    names = {path.name for path in fitted_run.glob("ws-*.fits")}
    assert names == {plane.name for plane in wsclean_names("ws", ("I",), 4, 2000)}
    assert "ws-MFS-image.fits" in names and "ws-0003-model.fits" in names
    model = fits.read_fits_image(fitted_run / "model.fits")
    flat = model.data[:, 0].reshape(4, -1)
    assert np.count_nonzero(flat.any(axis=0)) >= 3 and flat.sum() > 0
    # every pixel's model is a straight line in frequency (two terms), to the FITS file's float32
    assert np.max(np.abs(flat - spectral_projection(model.frequency, 2) @ flat)) < 1e-5 * np.max(np.abs(flat))
    for chan in range(4):
        plane = fits.read_fits_image(fitted_run / f"ws-{chan:04d}-model.fits")
        assert np.array_equal(plane.data[0, 0], model.data[chan, 0])
        assert plane.frequency[0] == pytest.approx(model.frequency[chan], rel=1e-9)
