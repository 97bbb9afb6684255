"""FITS headers of every imaging product: the MS's observation keys, the beam, the imaging parameters,
the command line, and provenance whose SDPPROV digest is the sha256 of the stored record."""

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

from sdpflow.config.imaging import ContinuumConfig, DeconvolutionConfig, ImagingConfig, PartitionConfig
from sdpflow.config.simulate import SimulateConfig
from sdpflow.pipelines import start_run
from sdpflow.pipelines.simulate import simulate_observation
from sdpflow.radio import fits
from sdpflow.store import RunStore

CLEAN = dict(niter=500, gain=0.1, mgain=0.7, auto_threshold=4.0, nmajor=2)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A polarised continuum run (--pol QU, 2 output channels, WSClean names): every kind of image product."""
    base = tmp_path_factory.mktemp("headers")
    config = SimulateConfig(preset="pol", channels=4, freq_width_hz=40e6, times=6, stations=16, noise_jy=0.1,
                            phase_error_rad=0.0, seed=5)
    observation = simulate_observation(config, base / "sim" / "obs.ms")
    run_config = ContinuumConfig(
        ms=str(observation.ms),
        imaging=ImagingConfig(size=(64, 64), scale="auto", weight="briggs -0.5", channels_out=2, pol="QU", name="ws"),
        deconvolution=DeconvolutionConfig(**CLEAN), partition=PartitionConfig(time_chunks=1))
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                      dashboard_address="127.0.0.1:0") as cluster:
        with Client(cluster):
            result = start_run("continuum", run_config, base / "run", store=RunStore(f"sqlite:///{base / 'runs.db'}"),
                               cluster_spec=cluster.scheduler_address)
    return result.out_dir, observation.ms


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


def products(out_dir):
    """Every image product of the run: the Stokes I images, the P-S cubes and the WSClean-named planes."""
    names = ["psf.fits", "dirty.fits", "model.fits", "residual.fits", "restored.fits"]
    names += [f"{kind}-{s}.fits" for kind in ("psf", "dirty", "model", "residual", "restored") for s in "QU"]
    names += sorted(path.name for path in out_dir.glob("ws-*.fits"))
    assert len(names) == 15 + 2 * 3 * 4 + 3 * 1  # 3 output planes (2 channels + MFS) x 4 kinds x Q, U; 3 PSFs
    return names


def command_line(header) -> str:
    """The ``sdpflow run`` command of a header's HISTORY (continued over 72-character cards), after the words."""
    history = [str(line) for line in header["HISTORY"]]
    first = next(i for i, line in enumerate(history) if line.startswith("sdpflow run "))
    return "".join(history[first:])[len("sdpflow run "):]


def test_every_product_carries_the_observation_beam_and_parameters(run_dir):
    out_dir, ms = run_dir
    facts = ms_facts(ms)
    summary = json.loads((out_dir / "summary.json").read_text())
    beam = json.loads((out_dir / "cycles" / "beam.json").read_text())
    start = datetime(1858, 11, 17) + timedelta(seconds=facts["time"])
    for name in products(out_dir):
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
        assert (header["SDPWEIGH"], header["SDPROBUS"], header["SDPNITER"]) == ("briggs", -0.5, 500), name
        assert (header["SDPGAIN"], header["SDPMGAIN"], header["SDPATHRS"], header["SDPNMAJ"]) == (0.1, 0.7, 4.0, 2)
        assert header["SDPEPSIL"] == 1e-4 and header["SDPDATAC"] == "DATA" and header["SDPIMGWG"] > 0
        command = shlex.split(command_line(header))
        assert command[:3] == ["continuum", "--ms", str(ms)] and "--pol" in command and "QU" in command, command
        final = name.startswith("ws-") or not name.startswith(("psf", "dirty"))  # the WSClean names come last
        assert ("SDPMAJOR" in header) == final, name  # the cycles run: on products made after the last one
        if final:
            assert header["SDPMAJOR"] == summary["major_cycles_run"] and header["SDPSTOP"] == summary["stop_reason"]
            assert header["SDPMINOR"] == summary["cycles"][-1]["components_total"]


def test_provenance_digest_is_the_sha256_of_the_stored_record(run_dir):
    out_dir, _ = run_dir
    for name in products(out_dir):
        with astropy_fits.open(out_dir / name) as hdus:
            text = hdus["PROVENANCE"].data["RECORD"][0]
            digest = hdus[0].header["SDPPROV"]
        assert hashlib.sha256(text.encode()).hexdigest() == digest, name
        record = fits.read_provenance(out_dir / name)
        assert record["config_hash"].startswith("sha256:") and record["inputs"], name


def test_astropy_reads_every_products_wcs_without_warnings(run_dir):
    out_dir, _ = run_dir
    for name in products(out_dir):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with astropy_fits.open(out_dir / name) as hdus:
                hdus.verify("exception")
                wcs = WCS(hdus[0].header)
        assert wcs.naxis == 4 and wcs.wcs.ctype[3] == "STOKES"
        centre = wcs.celestial.pixel_to_world(32, 32)
        assert np.isfinite(centre.ra.deg) and np.isfinite(centre.dec.deg)
