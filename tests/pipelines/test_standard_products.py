"""What other tools read from an imaging run: FITS headers (the MS's observation keys, the beam, the imaging
parameters, the command line, provenance whose SDPPROV is the sha256 of the stored record) on every product,
and gain solutions as H5parm (read by LoSoTo, applied by --apply-solutions).

One small ICAL run (--pol IQ, 2 output channels, WSClean names) makes every kind of product; two niter-0
continuum runs check --apply-solutions against the uncorrupted sky.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import warnings
from datetime import datetime, timedelta

import numpy as np
import pytest
from astropy.io import fits as astropy_fits
from astropy.wcs import WCS
from distributed import Client, LocalCluster
from losoto.h5parm import h5parm

from sdpflow.config.imaging import (
    CalibrationConfig,
    ContinuumConfig,
    DeconvolutionConfig,
    IcalConfig,
    ImagingConfig,
    PartitionConfig,
)
from sdpflow.config.simulate import SimulateConfig
from sdpflow.pipelines import start_run
from sdpflow.pipelines.simulate import simulate_observation
from sdpflow.radio import fits
from sdpflow.radio.h5parm import write_h5parm
from sdpflow.radio.hdf5 import read_gaintable_hdf5
from sdpflow.radio.ms import read_ms_metadata
from sdpflow.store import RunStore

SKY = dict(stations=12, times=8, channels=2, noise_jy=0.0, seed=21)
IMAGE = dict(size=(64, 64), scale="2amin", weight="briggs -0.5", epsilon=1e-6, channels_out=2)
CLEAN = dict(niter=300, gain=0.1, mgain=0.7, auto_threshold=4.0, nmajor=3)


@pytest.fixture(scope="module")
def observations(tmp_path_factory):
    """The same sky, noise-free, with and without antenna gains (1 rad phase, 10% amplitude errors)."""
    folder = tmp_path_factory.mktemp("gainobs")
    corrupted = simulate_observation(SimulateConfig(**SKY), folder / "corrupted" / "obs.ms")
    clean = simulate_observation(SimulateConfig(**SKY, phase_error_rad=0.0, amplitude_error=0.0),
                                 folder / "clean" / "obs.ms")
    return corrupted, clean


@pytest.fixture(scope="module")
def address():
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                      dashboard_address="127.0.0.1:0") as cluster:
        with Client(cluster):
            yield cluster.scheduler_address


def run(pipeline, config, out, address):
    return start_run(pipeline, config, out / "run", store=RunStore(f"sqlite:///{out / 'runs.db'}"),
                     cluster_spec=address).out_dir


@pytest.fixture(scope="module")
def ical_run(observations, address, tmp_path_factory):
    corrupted, _ = observations
    config = IcalConfig(ms=str(corrupted.ms), imaging=ImagingConfig(**IMAGE, pol="IQ", name="ws"),
                        deconvolution=DeconvolutionConfig(**CLEAN), partition=PartitionConfig(time_chunks=2),
                        calibration=CalibrationConfig(context="TG"))
    return run("ical", config, tmp_path_factory.mktemp("ical"), address), corrupted.ms


# -- FITS headers ----------------------------------------------------------------------------------
def ms_facts(ms) -> dict:
    """What the MS says, read here with casacore (not through sdpflow's reader)."""
    from casacore import tables

    with tables.table(str(ms), ack=False) as main:
        first_time = float(main.getcol("TIME", 0, 1)[0])
        n_vis = main.nrows() * main.getcell("DATA", 0).shape[0]
    with tables.table(f"{ms}::OBSERVATION", ack=False) as observation:
        telescope, observer = observation.getcell("TELESCOPE_NAME", 0), observation.getcell("OBSERVER", 0)
    with tables.table(f"{ms}::FIELD", ack=False) as field:
        name = field.getcell("NAME", 0)
    return {"TELESCOP": telescope, "OBSERVER": observer, "OBJECT": name, "time": first_time, "SDPNVIS": n_vis}


def image_products(out_dir) -> list[str]:
    """Every image product: the Stokes I images, the P-S cubes and the WSClean-named planes."""
    kinds = ("psf", "dirty", "model", "residual", "restored")
    names = [f"{kind}.fits" for kind in kinds] + [f"{kind}-{s}.fits" for kind in kinds for s in "IQ"]
    names += sorted(path.name for path in out_dir.glob("ws-*.fits"))
    assert len(names) == 15 + 3 * (4 * 2 + 1)  # 2 channels + MFS: image, residual, model, dirty of I and Q; a PSF
    return names


def command_line(header) -> str:
    """The ``sdpflow run`` command of a header's HISTORY (continued over 72-character cards), after the words."""
    history = [str(line) for line in header["HISTORY"]]
    first = next(i for i, line in enumerate(history) if line.startswith("sdpflow run "))
    return "".join(history[first:])[len("sdpflow run "):]


def test_every_product_carries_the_observation_beam_and_parameters(ical_run):
    out_dir, ms = ical_run
    facts = ms_facts(ms)
    summary = json.loads((out_dir / "summary.json").read_text())
    beam = json.loads((out_dir / "cycles" / "beam.json").read_text())
    start = datetime(1858, 11, 17) + timedelta(seconds=facts["time"])
    for name in image_products(out_dir):
        header = astropy_fits.getheader(out_dir / name)
        for key in ("TELESCOP", "OBSERVER", "OBJECT", "SDPNVIS"):
            assert header[key] == facts[key], (name, key)
        assert abs(datetime.fromisoformat(header["DATE-OBS"]) - start) < timedelta(milliseconds=1), name
        assert header["MJD-OBS"] == pytest.approx(facts["time"] / 86400, abs=1e-8)
        if name.startswith("ws-"):  # one plane each: its channel's beam, or the MFS PSF's
            assert 0 < header["BMIN"] <= header["BMAJ"] < 2 * beam["bmaj_arcsec"] / 3600, name
        else:  # restored.fits' beam (the first channel's), as BMAJ/BMIN/BPA in degrees
            assert (header["BMAJ"], header["BMIN"], header["BPA"]) == pytest.approx(
                (beam["bmaj_arcsec"] / 3600, beam["bmin_arcsec"] / 3600, beam["bpa_deg"])), name
        assert (header["SDPWEIGH"], header["SDPROBUS"], header["SDPNITER"]) == ("briggs", -0.5, 300), name
        assert (header["SDPGAIN"], header["SDPMGAIN"], header["SDPATHRS"], header["SDPNMAJ"]) == (0.1, 0.7, 4.0, 3)
        assert header["SDPEPSIL"] == 1e-6 and header["SDPDATAC"] == "DATA" and header["SDPCALIB"] == "TG"
        assert header["SDPIMGWG"] == pytest.approx(sum(beam["channel_weights"])) and header["SDPPIPE"] == "ical"
        command = shlex.split(command_line(header))
        assert command[:3] == ["ical", "--ms", str(ms)] and command[command.index("--pol") + 1] == "IQ", command
        final = name.startswith("ws-") or not name.startswith(("psf", "dirty"))  # the WSClean names come last
        assert ("SDPMAJOR" in header) == final, name  # the cycles run: on products made after the last one
        if final:
            assert header["SDPMAJOR"] == summary["major_cycles_run"] and header["SDPSTOP"] == summary["stop_reason"]
            assert header["SDPMINOR"] == summary["cycles"][-1]["components_total"] > 0


def test_provenance_digest_is_the_sha256_of_the_stored_record(ical_run):
    out_dir, _ = ical_run
    for name in image_products(out_dir):
        with astropy_fits.open(out_dir / name) as hdus:
            text = hdus["PROVENANCE"].data["RECORD"][0]
            digest = hdus[0].header["SDPPROV"]
        assert hashlib.sha256(text.encode()).hexdigest() == digest, name
        record = fits.read_provenance(out_dir / name)
        assert record["config_hash"].startswith("sha256:") and record["inputs"], name


def test_astropy_reads_every_products_wcs_without_warnings(ical_run):
    out_dir, _ = ical_run
    for name in image_products(out_dir):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with astropy_fits.open(out_dir / name) as hdus:
                hdus.verify("exception")
                wcs = WCS(hdus[0].header)
        assert wcs.naxis == 4 and wcs.wcs.ctype[3] == "STOKES"
        centre = wcs.celestial.pixel_to_world(32, 32)
        assert np.isfinite(centre.ra.deg) and np.isfinite(centre.dec.deg)


# -- gain solutions in H5parm ----------------------------------------------------------------------
def test_losoto_reads_ical_gains_as_solved(ical_run):
    out_dir, ms = ical_run
    solved = read_gaintable_hdf5(out_dir / "gains.h5")  # the product of T and G, in our own layout
    metadata = read_ms_metadata(ms)
    with h5parm(str(out_dir / "gains.h5parm"), readonly=True) as file:
        solset = file.getSolset("sol000")
        assert list(solset.getAnt()) == metadata.antenna_names
        assert np.allclose(np.stack(list(solset.getAnt().values())), metadata.antenna_positions, rtol=1e-6)
        for name, expected in (("phase000", np.angle(solved.gain)), ("amplitude000", np.abs(solved.gain))):
            values, axes = solset.getSoltab(name).getValues()  # [time, freq, ant, pol]
            assert list(axes["ant"]) == metadata.antenna_names and list(axes["pol"]) == ["XX", "YY"]
            assert np.array_equal(axes["time"], solved.time) and np.array_equal(axes["freq"], solved.frequency)
            assert len(axes["time"]) == metadata.times.size  # T and G solved per integration
            for pol in range(2):
                assert np.allclose(values[..., pol], expected[..., 0].transpose(0, 2, 1), atol=1e-12)
    assert np.ptp(np.angle(solved.gain)) > 1.0  # real solutions (1 rad phase errors), not unit gains


def test_applying_the_true_gains_gives_the_uncorrupted_image(observations, address, ical_run, tmp_path):
    """The dirty images agree to 1e-5 of the peak: no noise, the gains written in float64 and the DATA in
    complex64 (rounding ~1e-7 relative), gridded at epsilon 1e-6 (each image within ~1e-6 of the exact one).
    Without the gains (the ICAL run's dirty image: same MS and imaging) they differ by over 5% of the peak."""
    corrupted, clean = observations
    metadata = read_ms_metadata(corrupted.ms)
    truth = read_gaintable_hdf5(corrupted.true_gains)
    solutions = write_h5parm(tmp_path / "truth.h5", truth, antenna_names=metadata.antenna_names,
                             antenna_positions=metadata.antenna_positions, phase_centre=metadata.phase_centre)
    images = {}
    for name, ms, applied in (("clean", clean.ms, None), ("applied", corrupted.ms, str(solutions))):
        config = ContinuumConfig(ms=str(ms), imaging=ImagingConfig(**IMAGE), apply_solutions=applied,
                                 deconvolution=DeconvolutionConfig(niter=0, nmajor=1))
        images[name] = fits.read_fits_image(run("continuum", config, tmp_path / name, address) / "dirty.fits").data
    corrupted_image = fits.read_fits_image(ical_run[0] / "dirty.fits").data
    peak = np.max(np.abs(images["clean"]))
    assert np.max(np.abs(images["applied"] - images["clean"])) < 1e-5 * peak
    assert np.max(np.abs(corrupted_image - images["clean"])) > 0.05 * peak
    header = astropy_fits.getheader(tmp_path / "applied" / "run" / "dirty.fits")
    assert header["SDPAPPLY"].endswith("truth.h5")


def test_corrected_data_after_applied_solutions_is_the_uncorrupted_data(observations, tmp_path):
    """CORRECTED_DATA of a polarised chunk (re-read as correlations) carries the applied table too: with the true
    gains and no self-calibration it is the clean MS's DATA, to complex64 rounding."""
    import shutil

    from casacore import tables

    from sdpflow.pipelines.imaging.chunks import read_chunk
    from sdpflow.pipelines.imaging.partition import plan_chunks
    from sdpflow.pipelines.imaging.products import write_corrected
    from sdpflow.radio.h5parm import solutions_for_ms
    from sdpflow.radio.ms import add_column

    corrupted, clean = observations
    ms = tmp_path / "obs.ms"
    shutil.copytree(corrupted.ms, ms)
    add_column(str(ms), "CORRECTED_DATA")
    metadata = read_ms_metadata(ms)
    path = write_h5parm(tmp_path / "truth.h5", read_gaintable_hdf5(corrupted.true_gains),
                        antenna_names=metadata.antenna_names, antenna_positions=metadata.antenna_positions,
                        phase_centre=metadata.phase_centre)
    solutions = solutions_for_ms(path, metadata.antenna_names, metadata.frequency, metadata.times)
    for chunk in plan_chunks(metadata.time_rows, metadata.times, metadata.n_channels, time_chunks=2):
        data = read_chunk(str(ms), chunk, "DATA", metadata, ("I", "Q"), solutions)
        write_corrected(str(ms), data, {}, "DATA", solutions)
    with tables.table(str(ms), ack=False) as mine, tables.table(str(clean.ms), ack=False) as theirs:
        corrected, expected = mine.getcol("CORRECTED_DATA"), theirs.getcol("DATA")
    assert np.max(np.abs(corrected - expected)) < 1e-5 * np.max(np.abs(expected))
