"""Full-polarisation ICAL (--pol IQUV) of a polarised simulated sky with 1 rad antenna phase errors, against the
truth, and against WSClean imaging the CORRECTED_DATA it writes back."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from distributed import Client, LocalCluster

from sdpflow.config.imaging import (
    CalibrationConfig,
    ContinuumConfig,
    DeconvolutionConfig,
    IcalConfig,
    ImagingConfig,
    PartitionConfig,
)
from sdpflow.config.simulate import SimulateConfig
from sdpflow.errors import DataError
from sdpflow.pipelines import start_run
from sdpflow.pipelines.simulate import simulate_observation
from sdpflow.radio import fits
from sdpflow.radio.datamodels import SPEED_OF_LIGHT
from sdpflow.radio.polsky import stokes_spectra
from sdpflow.radio.quality import _aperture_flux
from sdpflow.radio.sky import read_polarisation_csv, read_sky_csv
from sdpflow.store import RunStore

NPIX, CELL_ARCSEC, CHANNELS_OUT = 256, 12.0, 8
IMAGE = dict(size=(NPIX, NPIX), scale=f"{CELL_ARCSEC}asec", weight="natural", channels_out=CHANNELS_OUT, pol="IQUV",
             epsilon=1e-6, name="ws")
CLEAN = dict(niter=30000, gain=0.1, mgain=0.8, auto_threshold=3.0, nmajor=5, join_polarizations=True)


@pytest.fixture(scope="module")
def observation(tmp_path_factory):
    """The pol preset (1 rad antenna phase errors) with 64 channels of 4.5 MHz (the same band), 1 Jy noise per
    correlation."""
    config = SimulateConfig(preset="pol", channels=64, freq_width_hz=4.5e6, noise_jy=1.0, seed=11)
    return simulate_observation(config, tmp_path_factory.mktemp("polobs") / "obs.ms")


@pytest.fixture(scope="module")
def run_dir(observation, tmp_path_factory):
    out = tmp_path_factory.mktemp("polrun")
    config = IcalConfig(ms=str(observation.ms), imaging=ImagingConfig(**IMAGE),
                        deconvolution=DeconvolutionConfig(**CLEAN), partition=PartitionConfig(time_chunks=2),
                        calibration=CalibrationConfig(write_corrected=True))
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as cluster:
        with Client(cluster):
            result = start_run("ical", config, out / "run", store=RunStore(f"sqlite:///{out / 'runs.db'}"),
                               cluster_spec=cluster.scheduler_address)
    return result.out_dir


def truth_per_channel(observation):
    """Truth (I, Q, U) [component, chan_out, 3] as the output channels average them, their λ² [chan_out],
    and each component's (x, y) pixel in the run's images."""
    from sdpflow.radio.ms import read_ms_metadata

    metadata = read_ms_metadata(observation.ms)
    sky, pol = read_sky_csv(observation.truth_sky), read_polarisation_csv(observation.truth_sky)
    spectra = stokes_spectra(sky, pol, metadata.frequency)
    groups = np.array_split(np.arange(metadata.n_channels), CHANNELS_OUT)
    truth = np.stack([spectra[:, group, :3].mean(axis=1) for group in groups], axis=1)
    lambda_sq = np.array([np.mean((SPEED_OF_LIGHT / metadata.frequency[group]) ** 2) for group in groups])
    return sky, pol, truth, lambda_sq


def aperture_fluxes(path, sky):
    """Aperture flux [component, chan] of a restored cube at the truth positions, with each channel's beam."""
    image = fits.read_fits_image(path)
    beams = fits.read_beams(path)
    x, y = image.wcs.celestial.world_to_pixel_values(np.degrees(sky.ra), np.degrees(sky.dec))
    return np.array([[_aperture_flux(image.data[c, 0], tuple(beams[c]), image.cell_rad, float(yy), float(xx))
                      for c in range(image.data.shape[0])] for xx, yy in zip(x, y)])


def test_products_are_stokes_cubes_with_per_channel_beams(run_dir):
    from astropy.io import fits as astropy_fits

    for kind in ("psf", "dirty", "model", "residual", "restored"):
        for index, name in enumerate("IQUV"):
            image = fits.read_fits_image(run_dir / f"{kind}-{name}.fits")
            assert image.polarisation == (name,) and image.data.shape == (CHANNELS_OUT, 1, NPIX, NPIX)
            with astropy_fits.open(run_dir / f"{kind}-{name}.fits") as hdus:
                assert hdus[0].header["CRVAL4"] == index + 1 and hdus[0].header["CTYPE4"] == "STOKES"
                assert hdus[0].header["CTYPE3"] == "FREQ"
    beams = fits.read_beams(run_dir / "restored-Q.fits")
    assert beams.shape == (CHANNELS_OUT, 3)
    assert np.all(np.diff(beams[:, 0]) < 0)  # the beam narrows as the frequency rises
    with astropy_fits.open(run_dir / "restored-Q.fits") as hdus:
        assert hdus[0].header["BMAJ"] == pytest.approx(np.degrees(beams[0, 0]), rel=1e-5)
    # restored.fits stays the Stokes I image: the same as restored-I.fits's channels up to the beams used
    plain = fits.read_fits_image(run_dir / "restored.fits")
    assert plain.polarisation == ("I",)
    assert np.allclose(fits.read_fits_image(run_dir / "residual.fits").data,
                       fits.read_fits_image(run_dir / "residual-I.fits").data)


def test_q_u_follow_the_truth_and_give_the_rotation_measures(observation, run_dir):
    sky, pol, truth, lambda_sq = truth_per_channel(observation)
    measured = {name: aperture_fluxes(run_dir / f"restored-{name}.fits", sky) for name in "IQU"}
    noise = np.array([np.std(fits.read_fits_image(run_dir / f"residual-{name}.fits").data[:, 0], axis=(1, 2))
                      for name in "QU"]).max(axis=0)  # [chan] Jy/beam
    polarised = np.hypot(truth[..., 1], truth[..., 2])  # [component, chan]
    bright = np.flatnonzero(polarised.min(axis=1) > 30 * noise.max())
    assert len(bright) >= 2
    # a pure-I source's I at its flux (XX = YY = I, no factor 1/2), Q and U within 3% of the polarised flux
    assert np.all(np.abs(measured["I"][bright] - truth[bright, :, 0]) < 0.03 * truth[bright, :, 0] + 3 * noise)
    for k, name in ((1, "Q"), (2, "U")):
        error = np.abs(measured[name][bright] - truth[bright, :, k])
        assert np.all(error < 0.03 * polarised[bright] + 3 * noise), name
    for source in bright:
        q, u = measured["Q"][source], measured["U"][source]
        angle = np.unwrap(np.arctan2(u, q)) / 2
        sigma = noise / (2 * np.hypot(q, u))  # radians
        (slope, _), cov = np.polyfit(lambda_sq, angle, 1, w=1 / sigma, cov="unscaled")
        # the formal error of the weighted fit, scaled up by the reduced chi-squared when that exceeds 1
        reduced_chi2 = np.sum(((np.polyval((slope, _), lambda_sq) - angle) / sigma) ** 2) / (len(angle) - 2)
        formal = np.sqrt(cov[0, 0] * max(1.0, reduced_chi2))
        assert abs(slope - pol.rm_radm2[source]) < 3 * formal, source


def test_unpolarised_v_stays_at_noise(run_dir):
    v = fits.read_fits_image(run_dir / "restored-V.fits").data[:, 0]
    q_residual = fits.read_fits_image(run_dir / "residual-Q.fits").data[:, 0]
    sigma = np.std(q_residual, axis=(1, 2))
    assert np.all(np.std(v, axis=(1, 2)) < 1.3 * sigma)
    assert np.all(np.max(np.abs(v), axis=(1, 2)) < 6 * sigma)


def test_a_missing_correlation_is_one_line_and_exit_2(tmp_path):
    import sys

    parallel = simulate_observation(SimulateConfig(preset="small", channels=2, times=4), tmp_path / "obs" / "obs.ms")
    config = ContinuumConfig(ms=str(parallel.ms), imaging=ImagingConfig(pol="IQU"))
    from sdpflow.pipelines.imaging.flow import build_continuum

    with pytest.raises(DataError, match="XY,YX missing"):
        build_continuum(config)
    done = subprocess.run([sys.executable, "-m", "sdpflow", "--db", f"sqlite:///{tmp_path / 'runs.db'}", "run",
                           "continuum", "--ms", str(parallel.ms), "--out", str(tmp_path / "run"), "--pol", "V"],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "cannot image I,V" in done.stderr and "XY,YX missing" in done.stderr


@pytest.mark.wsclean
@pytest.mark.skipif(shutil.which("wsclean") is None and not os.environ.get("SDPFLOW_CI"),
                    reason="wsclean is not installed (CI installs it)")
@pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")
def test_stokes_cubes_match_wsclean(observation, run_dir):
    from astropy.io import fits as astropy_fits

    prefix = observation.ms.parent / "ws"
    # WSClean's wgridder (ducc0's, as ours): its default w-stacking gridder aliases the noise differently,
    # which alone leaves noise-dominated planes (V) correlated at only ~0.985
    command = ["wsclean", "-quiet", "-j", "2", "-size", str(NPIX), str(NPIX), "-scale", f"{CELL_ARCSEC}asec",
               "-pol", "IQUV", "-channels-out", str(CHANNELS_OUT), "-weight", "natural", "-niter", "20000",
               "-mgain", "0.8", "-auto-threshold", "3", "-use-wgridder", "-wgridder-accuracy", "1e-6",
               "-data-column", "CORRECTED_DATA", "-join-polarizations",
               "-name", str(prefix), str(observation.ms)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # --name ws wrote the files WSClean writes, no more, no fewer
    theirs_names = {path.name for path in prefix.parent.glob("ws-*.fits")}
    assert {path.name for path in run_dir.glob("ws-*.fits")} == theirs_names and len(theirs_names) == 8 * 17 + 17
    # the MFS planes: WSClean's channel weighting and band; the MFS beam sits among the channels' beams as
    # WSClean's does; each channel's beam is WSClean's within 2% (fitted as WSClean fits it)
    def beam_axes(path):
        with astropy_fits.open(path) as hdus:
            return np.array([hdus[0].header["BMAJ"], hdus[0].header["BMIN"]])

    ratios = np.array([beam_axes(run_dir / f"ws-{c:04d}-psf.fits") / beam_axes(f"{prefix}-{c:04d}-psf.fits")
                       for c in range(CHANNELS_OUT)])
    assert np.all(np.abs(ratios - 1) < 0.02), ratios
    mfs_ratio = beam_axes(run_dir / "ws-MFS-psf.fits") / beam_axes(f"{prefix}-MFS-psf.fits")
    assert np.all(mfs_ratio > 0.99 * ratios.min(axis=0)) and np.all(mfs_ratio < 1.01 * ratios.max(axis=0))
    for kind in ("psf", "I-image", "Q-image"):
        with astropy_fits.open(f"{prefix}-MFS-{kind}.fits") as theirs, astropy_fits.open(run_dir / f"ws-MFS-{kind}.fits") as ours:
            assert np.corrcoef(ours[0].data.ravel(), theirs[0].data.ravel())[0, 1] > 0.99, kind
            for key in ("CRVAL3", "CDELT3", "CRVAL4"):
                assert ours[0].header[key] == pytest.approx(theirs[0].header[key], rel=1e-9), (kind, key)
    sky, _, truth, _ = truth_per_channel(observation)
    polarised = np.hypot(truth[..., 1], truth[..., 2])
    bright = np.flatnonzero(polarised.min(axis=1) > 0.1)  # Jy: > 30 σ of the Q and U images
    assert len(bright) >= 2
    ours_image = fits.read_fits_image(run_dir / "restored-I.fits")
    x, y = ours_image.wcs.celestial.world_to_pixel_values(np.degrees(sky.ra[bright]), np.degrees(sky.dec[bright]))
    for name in "IQUV":
        ours = fits.read_fits_image(run_dir / f"restored-{name}.fits").data[:, 0]
        ours_flux = aperture_fluxes(run_dir / f"restored-{name}.fits", sky)[bright]
        for chan in range(CHANNELS_OUT):
            with astropy_fits.open(f"{prefix}-{chan:04d}-{name}-image.fits") as hdus:
                theirs = hdus[0].data[0, 0].astype(float)
                beam = tuple(np.radians([hdus[0].header["BMAJ"], hdus[0].header["BMIN"], hdus[0].header["BPA"]]))
            correlation = np.corrcoef(ours[chan].ravel(), theirs.ravel())[0, 1]
            assert correlation > 0.99, (name, chan, correlation)
            theirs_flux = np.array([_aperture_flux(theirs, beam, ours_image.cell_rad, float(yy), float(xx))
                                    for xx, yy in zip(x, y)])
            scale = truth[bright, chan, 0] if name == "I" else polarised[bright, chan]
            assert np.all(np.abs(ours_flux[:, chan] - theirs_flux) < 0.02 * scale), (name, chan)
            if name != "V":  # the simulator's convention is WSClean's: its I, Q, U give the truth too
                index = "IQU".index(name)
                assert np.all(np.abs(theirs_flux - truth[bright, chan, index]) < 0.03 * scale), (name, chan)


def test_summary_has_noise_per_stokes_and_beams_per_channel(observation, run_dir):
    from sdpflow.pipelines.imaging import imaging_summary
    from sdpflow.pipelines.imaging.summary import read_summary

    summary = read_summary(run_dir)
    assert list(summary.stokes_noise_jy_per_beam) == list("IQUV")
    for name in "IQUV":
        residual = fits.read_fits_image(run_dir / f"residual-{name}.fits").data[:, 0]
        robust = 1.4826 * np.median(np.abs(residual - np.median(residual)))
        assert summary.stokes_noise_jy_per_beam[name] == pytest.approx(robust, rel=1e-6)
        per_channel = [1.4826 * np.median(np.abs(plane - np.median(plane))) for plane in residual]
        assert summary.channel_noise_jy_per_beam[name] == pytest.approx(per_channel, rel=1e-6)
    # V holds noise only: its robust noise is its standard deviation; Q, U, V see the same thermal noise
    v = fits.read_fits_image(run_dir / "residual-V.fits").data[:, 0]
    assert summary.stokes_noise_jy_per_beam["V"] == pytest.approx(np.std(v), rel=0.05)
    assert summary.stokes_noise_jy_per_beam["Q"] == pytest.approx(summary.stokes_noise_jy_per_beam["V"], rel=0.1)
    # the beams are the BEAMS table's, and shrink as 1/frequency (the same baselines in wavelengths)
    beams = fits.read_beams(run_dir / "restored-Q.fits")
    listed = np.array([[b.bmaj_arcsec, b.bmin_arcsec] for b in summary.channel_beams])
    assert listed == pytest.approx(np.degrees(beams[:, :2]) * 3600, rel=1e-5)
    assert [b.bpa_deg for b in summary.channel_beams] == pytest.approx(np.degrees(beams[:, 2]), abs=1e-3)
    frequency = np.array(summary.channel_frequencies_hz)
    assert np.all(np.diff(frequency) > 0) and len(frequency) == CHANNELS_OUT
    scaled = listed[:, 0] * frequency
    assert np.ptp(scaled) < 0.03 * scaled.mean()
    printed = imaging_summary(run_dir)
    assert f"V {summary.stokes_noise_jy_per_beam['V']:.3g}" in printed and "beam per channel" in printed


def test_wsclean_named_files_are_the_cubes_planes(run_dir):
    from astropy.io import fits as astropy_fits

    from sdpflow.pipelines.imaging.summary import read_summary
    from sdpflow.pipelines.imaging.wsclean_names import wsclean_names

    planned = wsclean_names("ws", tuple("IQUV"), CHANNELS_OUT, CLEAN["niter"])
    assert {path.name for path in run_dir.glob("ws-*.fits")} == {plane.name for plane in planned}
    summary = read_summary(run_dir)
    weights = np.asarray(__import__("json").loads((run_dir / "cycles" / "beam.json").read_text())["channel_weights"])
    for name in "QV":
        cubes = {kind: fits.read_fits_image(run_dir / f"{kind}-{name}.fits") for kind in ("dirty", "model", "residual",
                                                                                             "restored")}
        for chan in (0, CHANNELS_OUT - 1):
            for kind, suffix in (("dirty", "dirty"), ("model", "model"), ("residual", "residual"), ("restored", "image")):
                with astropy_fits.open(run_dir / f"ws-{chan:04d}-{name}-{suffix}.fits") as hdus:
                    plane, header = hdus[0].data, hdus[0].header
                assert plane.shape == (1, 1, NPIX, NPIX)
                cube = cubes[kind].data[chan, 0]
                assert np.allclose(plane[0, 0], cube, rtol=0, atol=1e-5 * np.abs(cube).max()), (name, chan, kind)
                assert header["CRVAL3"] == pytest.approx(cubes[kind].frequency[chan], rel=1e-9)
                assert header["CRVAL4"] == "IQUV".index(name) + 1 and header["CTYPE4"] == "STOKES"
                beam = summary.channel_beams[chan]
                assert header["BMAJ"] * 3600 == pytest.approx(beam.bmaj_arcsec, rel=1e-6)
                assert header["BUNIT"] == ("JY/PIXEL" if kind == "model" else "JY/BEAM")
        # MFS: the channels averaged with their imaging weights
        mfs = np.tensordot(weights / weights.sum(), cubes["residual"].data[:, 0], axes=1)
        with astropy_fits.open(run_dir / f"ws-MFS-{name}-residual.fits") as hdus:
            assert np.allclose(hdus[0].data[0, 0], mfs, rtol=0, atol=1e-6 * np.abs(mfs).max())
