"""--pol xx,yy (and rr,ll, xx,xy,yx,yy): each correlation imaged alone, in cubes with the AIPS STOKES codes."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from distributed import Client, LocalCluster

from sdpflow.config.imaging import ContinuumConfig, DeconvolutionConfig, ImagingConfig
from sdpflow.config.simulate import SimulateConfig
from sdpflow.errors import DataError
from sdpflow.pipelines import start_run
from sdpflow.pipelines.imaging.flow import build_continuum
from sdpflow.pipelines.simulate import simulate_observation
from sdpflow.radio import fits
from sdpflow.store import RunStore

CHANNELS_OUT = 2


@pytest.fixture(scope="module")
def observation(tmp_path_factory):
    """Linear feeds, four correlations, a polarised sky (so XX and YY differ by 2Q), 4 channels."""
    config = SimulateConfig(preset="pol", channels=4, freq_width_hz=50e6, times=12, stations=24, noise_jy=0.1,
                            phase_error_rad=0.0, seed=5)
    return simulate_observation(config, tmp_path_factory.mktemp("instobs") / "obs.ms")


@pytest.fixture(scope="module")
def run_dir(observation, tmp_path_factory):
    out = tmp_path_factory.mktemp("instrun")
    config = ContinuumConfig(
        ms=str(observation.ms),
        imaging=ImagingConfig(size=(128, 128), weight="natural", channels_out=CHANNELS_OUT, pol="xx,yy",
                              epsilon=1e-6, precision="double"),
        deconvolution=DeconvolutionConfig(niter=500, mgain=0.8, auto_threshold=3.0, nmajor=2))
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address="127.0.0.1:0") as cluster:
        with Client(cluster):
            result = start_run("continuum", config, out / "run", store=RunStore(f"sqlite:///{out / 'runs.db'}"),
                               cluster_spec=cluster.scheduler_address)
    return result.out_dir


def test_each_correlation_is_a_cube_with_its_aips_code(run_dir):
    from astropy.io import fits as astropy_fits

    for kind in ("psf", "dirty", "model", "residual", "restored"):
        for name, code in (("XX", -5), ("YY", -6)):
            with astropy_fits.open(run_dir / f"{kind}-{name}.fits") as hdus:
                assert hdus[0].header["CTYPE4"] == "STOKES" and hdus[0].header["CRVAL4"] == code
                assert hdus[0].data.shape == (1, CHANNELS_OUT, 128, 128)
    assert fits.read_fits_image(run_dir / "restored-XX.fits").polarisation == ("XX",)
    assert not (run_dir / "restored-I.fits").exists()  # I was not asked for: only restored.fits holds it
    # the run's internal model holds I, XX, YY: no linear STOKES axis lists them, so its planes are numbered
    internal = fits.read_fits_image(run_dir / "cycles" / "model-02.fits")
    assert internal.polarisation == ("I", "XX", "YY") and internal.data.shape[:2] == (CHANNELS_OUT, 3)
    # the dirty images are linear in the visibilities: I = (XX + YY) / 2 with equal weights per correlation
    xx, yy = (fits.read_fits_image(run_dir / f"dirty-{name}.fits").data[:, 0] for name in ("XX", "YY"))
    stokes_i = fits.read_fits_image(run_dir / "dirty.fits").data[:, 0]
    assert np.allclose((xx + yy) / 2, stokes_i, rtol=0, atol=1e-5 * np.abs(stokes_i).max())
    assert np.abs(xx - yy).max() > 0.05 * np.abs(stokes_i).max()  # the sky is polarised: XX and YY differ


def test_a_correlation_the_ms_lacks_is_one_line(observation, tmp_path):
    circular = simulate_observation(SimulateConfig(preset="small", channels=2, times=4, feeds="circular"),
                                    tmp_path / "circ" / "obs.ms")
    with pytest.raises(DataError, match="cannot image I,XX,YY.*XX,YY missing"):
        build_continuum(ContinuumConfig(ms=str(circular.ms), imaging=ImagingConfig(pol="xx,yy")))
    build_continuum(ContinuumConfig(ms=str(circular.ms), imaging=ImagingConfig(pol="rr,ll")))  # the right hands
    build_continuum(ContinuumConfig(ms=str(observation.ms), imaging=ImagingConfig(pol="xx,xy,yx,yy")))


@pytest.mark.wsclean
@pytest.mark.skipif(shutil.which("wsclean") is None and not os.environ.get("SDPFLOW_CI"),
                    reason="wsclean is not installed (CI installs it)")
@pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")
def test_correlation_images_match_wsclean(observation, run_dir, tmp_path):
    from astropy.io import fits as astropy_fits

    from sdpflow.pipelines.imaging.summary import read_summary

    cell = read_summary(run_dir).image.cell_arcsec
    done = subprocess.run(["wsclean", "-quiet", "-size", "128", "128", "-scale", f"{cell}asec", "-pol", "xx,yy",
                           "-channels-out", str(CHANNELS_OUT), "-weight", "natural", "-niter", "0", "-use-wgridder",
                           "-wgridder-accuracy", "1e-6", "-name", str(tmp_path / "ws"), str(observation.ms)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for name, code in (("XX", -5), ("YY", -6)):
        ours = fits.read_fits_image(run_dir / f"dirty-{name}.fits").data[:, 0]
        for chan in range(CHANNELS_OUT):
            with astropy_fits.open(tmp_path / f"ws-{chan:04d}-{name}-dirty.fits") as hdus:
                theirs = hdus[0].data[0, 0].astype(float)
                assert hdus[0].header["CRVAL4"] == code
            assert np.corrcoef(ours[chan].ravel(), theirs.ravel())[0, 1] > 0.999, (name, chan)
            assert np.abs(ours[chan] - theirs).max() < 0.01 * np.abs(theirs).max(), (name, chan)
