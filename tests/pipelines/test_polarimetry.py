"""The polarimetry pipeline end to end on analytic I/Q/U cubes of Faraday-thin point sources with
known RM, fractional polarisation and angle: RM recovery, polint, derotated angles, the RMTable
catalogue in FITS and VOTable, a NaN island that fails alone, and kill/resume during rmsynth."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sdpflow.config.polarimetry import PolarimetryConfig
from sdpflow.errors import InputError
from sdpflow.pipelines import resume_run, start_run
from sdpflow.polarimetry.simulate import point_source_cubes
from sdpflow.radio.fits import write_fits_image
from sdpflow.store import RunStore

REPO = Path(__file__).resolve().parents[2]
FREQUENCY = 800e6 + 3e6 * np.arange(96)  # 800-1085 MHz: RMSF FWHM 59 rad/m²
REFERENCE_HZ = 940e6
CELL_ARCSEC = 4.0
BEAM_PX = 3.75  # 15 arcsec at 940 MHz, ∝ 1/ν
NOISE = 1e-3
SHAPE = (170, 170)
PHASE_CENTRE = (np.radians(150.0), np.radians(-30.0))


def _field(seed: int = 3):
    """36 islands on a grid 26 px apart, four of them with a second component 8 px east."""
    rng = np.random.default_rng(seed)
    grid = np.array([(20 + 26 * i, 20 + 26 * j) for j in range(6) for i in range(6)], dtype=float)
    doubles = grid[[3, 10, 17, 30]] + [8, 0]
    positions = np.concatenate([grid, doubles])
    source = [f"SB1_island_{k}" for k in range(36)] + [f"SB1_island_{k}" for k in (3, 10, 17, 30)]
    n = len(positions)
    truth = {"i_ref": np.exp(rng.uniform(np.log(0.03), np.log(0.3), n)), "alpha": rng.uniform(-1.0, 0.0, n),
             "fracpol": rng.uniform(0.04, 0.3, n), "polangle": rng.uniform(0, np.pi, n),
             "rm": rng.uniform(-250, 250, n)}
    return positions, source, truth


def _write_field(folder: Path, *, nan_island: int | None = None, seed: int = 3, copies: int = 1):
    """restored-I/Q/U.fits cubes and a RACS-style FITS catalogue (mJy, arcsec) with truth columns."""
    from astropy.table import Table

    from sdpflow.radio.fits import image_wcs

    positions, source, truth = _field(seed)
    cubes, fwhm_px = point_source_cubes(frequency_hz=FREQUENCY, shape=SHAPE, positions_px=positions,
                                        reference_hz=REFERENCE_HZ, beam_fwhm_px_at_ref=BEAM_PX, noise_jy=NOISE,
                                        seed=seed, **truth)
    if nan_island is not None:
        x, y = positions[nan_island].astype(int)
        cubes[:, :, y - 3:y + 4, x - 3:x + 4] = np.nan
    folder.mkdir(parents=True, exist_ok=True)
    cell = np.radians(CELL_ARCSEC / 3600)
    beams = [(fwhm * cell, fwhm * cell, 0.0) for fwhm in fwhm_px]
    for plane, stokes in enumerate("IQU"):
        path = folder / f"restored-{stokes}.fits"
        if nan_island is None:
            write_fits_image(path, cubes[plane][:, None], phase_centre=PHASE_CENTRE, cell_rad=cell,
                             frequency=FREQUENCY, beams=beams, polarisation=(stokes,), beam=beams[0])
        else:  # write_fits_image refuses NaN pixels, as an imaging product should; a foreign cube may hold them
            from astropy.io import fits

            from sdpflow.radio.fits import _beams_table

            header = image_wcs(SHAPE[1], SHAPE[0], phase_centre=PHASE_CENTRE, cell_rad=cell, frequency=FREQUENCY,
                               polarisation=(stokes,)).to_header()
            header["BUNIT"] = "JY/BEAM"
            fits.HDUList([fits.PrimaryHDU(cubes[plane][None], header), _beams_table(beams, 1)]).writeto(path)
    wcs = image_wcs(SHAPE[1], SHAPE[0], phase_centre=PHASE_CENTRE, cell_rad=cell, frequency=FREQUENCY).celestial
    ra, dec = wcs.pixel_to_world_values(positions[:, 0], positions[:, 1])
    peak_mjy = 1e3 * truth["i_ref"] * (887.5e6 / REFERENCE_HZ) ** truth["alpha"]
    table = Table({"Source_ID": source, "Gaussian_ID": [f"{s}_{k}" for k, s in enumerate(source)],
                   "RA": ra, "Dec": dec, "Peak_flux": peak_mjy, "Total_flux": peak_mjy,
                   "Maj": np.full(len(ra), 15.0), "Min": np.full(len(ra), 15.0), "PA": np.zeros(len(ra)),
                   "rm_true": truth["rm"], "fracpol_true": truth["fracpol"],
                   "angle_true": np.degrees(truth["polangle"])})
    if copies > 1:  # each component listed again under other ids (more components, same cubes)
        from astropy.table import vstack

        parts = []
        for copy in range(copies):
            part = table.copy()
            part["Gaussian_ID"] = [f"{name}_c{copy}" for name in table["Gaussian_ID"]]
            parts.append(part)
        table = vstack(parts)
    table.write(folder / "catalogue.fits", overwrite=True)
    return folder / "catalogue.fits", truth


def _config(folder: Path, catalogue: Path, **extra) -> PolarimetryConfig:
    return PolarimetryConfig(images=str(folder), catalogue=str(catalogue),
                             columns={"truth_rm": "rm_true", "truth_fracpol": "fracpol_true",
                                      "truth_polangle": "angle_true"}, **extra)


NAN_ISLAND = 14  # its pixels are NaN in every channel: it fails alone


@pytest.fixture(scope="module")
def field_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pol")
    catalogue, truth = _write_field(folder / "images", nan_island=NAN_ISLAND)
    store = RunStore(f"sqlite:///{folder / 'runs.db'}")
    result = start_run("polarimetry", _config(folder / "images", catalogue, rmsynth3d=True), folder / "out",
                       store=store, cluster_spec="local:2")
    return store, result.run_id, folder / "out", truth


def test_rm_polint_and_angles_recovered(field_run):
    from astropy.table import Table

    _, _, out, truth = field_run
    table = Table.read(out / "catalogue.fits")
    assert len(table) == 39 and f"SB1_island_{NAN_ISLAND}_{NAN_ISLAND}" not in table["cat_id"]
    index = np.array([int(cid.rsplit("_", 1)[1]) for cid in table["cat_id"]])
    rm, err = np.asarray(table["rm"]), np.asarray(table["rm_err"])
    snr = np.asarray(table["snr_polint"])
    bright = snr > 10
    assert bright.sum() >= 34
    delta = np.abs(rm - truth["rm"][index])[bright]
    assert np.mean(delta < 3 * err[bright]) >= 0.95
    assert np.median(delta) < 0.05 * float(table["rmsf_fwhm"][0])
    # polint against the true P at the reference frequency of each component's weighted λ²
    reffreq = np.asarray(table["reffreq_pol"])
    true_p = truth["fracpol"][index] * truth["i_ref"][index] * (reffreq / REFERENCE_HZ) ** truth["alpha"][index]
    polint, polint_err = np.asarray(table["polint"]), np.asarray(table["polint_err"])
    strong = snr > 60  # where 3σ is within 5%
    assert strong.sum() >= 15
    assert np.all(np.abs(polint / true_p - 1)[strong] < 0.05)
    assert np.mean(np.abs(polint - true_p)[bright] < 3 * polint_err[bright]) >= 0.95
    angle = np.asarray(table["derot_polangle"])[bright]
    offset = (angle - np.degrees(truth["polangle"][index])[bright] + 90) % 180 - 90
    assert np.mean(np.abs(offset) < 3 * np.asarray(table["derot_polangle_err"])[bright]) >= 0.95
    assert np.all(~np.asarray(table["snr_flag"])[snr >= 8])
    assert np.mean(np.asarray(table["complex_flag"]).astype(str)[bright] == "N") >= 0.9  # all Faraday-thin
    summary = json.loads((out / "summary.json").read_text())
    assert summary["truth"]["compared"] == int(bright.sum())
    assert summary["islands"] == 36 and summary["islands_failed"] == 1


def test_rmsynth3d_maps_find_the_sources_rm(field_run):
    from astropy.io import fits
    from astropy.table import Table
    from astropy.wcs import WCS

    store, run_id, out, truth = field_run
    table = Table.read(out / "catalogue.fits")
    peak_pi, header = fits.getdata(out / "peak_pi.fits", header=True)
    peak_rm = fits.getdata(out / "peak_rm.fits")
    # blank: the NaN island's 7 × 7 pixels, and noise pixels whose peak lies beyond the Faraday axis
    assert peak_pi.shape == SHAPE and 49 <= header["NBLANK"] < 0.01 * peak_pi.size
    x, y = WCS(header).world_to_pixel_values(np.asarray(table["ra"]), np.asarray(table["dec"]))
    x, y = np.round(x).astype(int), np.round(y).astype(int)
    index = np.array([int(cid.rsplit("_", 1)[1]) for cid in table["cat_id"]])
    bright = np.asarray(table["snr_polint"]) > 10
    delta = np.abs(peak_rm[y, x] - truth["rm"][index])[bright]
    assert np.mean(delta < 3 * np.asarray(table["rm_err"])[bright]) >= 0.9
    ratio = peak_pi[y, x][bright] / np.asarray(table["polint"])[bright]
    assert np.median(np.abs(ratio - 1)) < 0.05
    assert np.median(peak_pi) < 5 * NOISE / np.sqrt(len(FREQUENCY))  # off-source: noise only
    assert store.item_counts(run_id)["rmsynth3d"] == {"completed": 6}


def test_nan_island_fails_alone_with_its_reason(field_run):
    store, run_id, out, _ = field_run
    failed = store.item_records(run_id, "spectra", status="failed")
    assert list(failed) == [f"SB1_island_{NAN_ISLAND}"]
    assert "no finite pixel" in failed[f"SB1_island_{NAN_ISLAND}"]["error"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["islands_failed_first"] == [f"SB1_island_{NAN_ISLAND}"]
    assert summary["components_measured"] == 39
    assert len(store.result_rows(run_id, "pol_rmclean")) == 39


def test_catalogue_has_rmtable_columns_and_units_in_fits_and_votable(field_run):
    from astropy import units as u
    from astropy.table import Table

    store, run_id, out, _ = field_run
    for name in ("catalogue.fits", "catalogue.vot"):
        table = Table.read(out / name)
        for column in ("ra", "dec", "l", "b", "rm", "rm_err", "rm_width", "rmsf_fwhm", "polint", "polint_err",
                       "stokesI", "stokesQ", "stokesU", "fracpol", "polangle", "derot_polangle", "reffreq_pol",
                       "noise_chan", "snr_polint", "Nchan", "minfreq", "maxfreq", "channelwidth", "beam_maj",
                       "beam_min", "beam_pa", "cat_id", "source_id", "snr_flag", "channel_flag", "complex_flag"):
            assert column in table.colnames, (name, column)
        assert table["rm"].unit == u.rad / u.m**2
        assert table["polint"].unit == u.Jy and table["reffreq_pol"].unit == u.Hz
        assert table["beam_maj"].unit == u.deg
        assert abs(float(table["beam_maj"][0]) * 3600 - 15 * REFERENCE_HZ / float(table["reffreq_pol"][0])) < 1.5
        assert np.all(np.asarray(table["Nchan"]) > 90)
    rows = store.result_rows(run_id, "pol_rmclean")
    assert len(rows) == 39 and all(row["rm"] is not None for row in rows)
    assert len(store.result_rows(run_id, "pol_islands")) == 36
    page = (out / "report.html").read_text()
    figures = sorted((out / "report-figures").glob("*.png"))
    assert len(figures) >= 5 and all(f'href="report-figures/{figure.name}"' in page for figure in figures)
    assert 'href="catalogue.fits"' in page
    assert (out / "cutouts" / "SB1_island_3.fits").exists()


def test_cutout_is_a_valid_cubelet(field_run):
    from astropy.io import fits
    from astropy.wcs import WCS

    store, run_id, out, _ = field_run
    catalogue = {row["component_id"]: row for row in store.result_rows(run_id, "pol_components")}
    with fits.open(out / "cutouts" / "SB1_island_7.fits") as hdus:
        wcs = WCS(hdus[0].header)
        data = hdus[0].data
        assert hdus["BEAMS"].header["NCHAN"] == len(FREQUENCY)
    assert data.shape[:2] == (3, len(FREQUENCY))
    component = catalogue["SB1_island_7_7"]
    x, y, _, _ = wcs.all_world2pix([[component["ra"], component["dec"], FREQUENCY[0], 1]], 0)[0]
    # the source's pixel in the cutout holds the brightest mean Stokes I
    peak = np.unravel_index(np.argmax(data[0].mean(axis=0)), data.shape[2:])
    assert (round(y), round(x)) == peak
    # padding 3 × the largest BMAJ (17.6″ at 800 MHz, 4″ pixels) on each side of a 15″ component
    assert data.shape[3] == pytest.approx(2 * (3 * 17.6 + 7.5) / 4 + 1, abs=2)


# A wide, finely sampled Faraday axis (170,000 samples) makes each component's RM synthesis take
# milliseconds, so that rmsynth lasts long enough to be killed in the middle.
KILL_SCRIPT = (
    "import sys; from sdpflow.pipelines import start_run; from sdpflow.store import RunStore;"
    "from sdpflow.config.polarimetry import PolarimetryConfig;"
    "start_run('polarimetry', PolarimetryConfig(images=sys.argv[1], catalogue=sys.argv[2], n_samples=100,"
    " phi_max=50000), sys.argv[3], store=RunStore(sys.argv[4]), cluster_spec='local:1', until_stage='rmsynth')"
)
KILL_COPIES = 3


def test_killed_during_rmsynth_resumes_without_redoing_components(tmp_path):
    images = tmp_path / "images"
    catalogue, _ = _write_field(images, copies=KILL_COPIES)
    total = 40 * KILL_COPIES
    db_url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = RunStore(db_url)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(images), str(catalogue), str(tmp_path / "out"),
                                db_url], cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    run_id, deadline = None, time.monotonic() + 150
    while time.monotonic() < deadline and process.poll() is None:
        runs = store.list_runs(limit=1) if (tmp_path / "runs.db").exists() else []
        if runs:
            run_id = runs[0]["id"]
            if store.item_counts(run_id).get("rmsynth", {}).get("completed", 0) > 0:
                break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert run_id is not None, process.stderr.read().decode()[-2000:]
    before = store.item_records(run_id, "rmsynth", status="completed")
    assert 0 < len(before) < total, "the run was not killed during rmsynth"
    resumed = resume_run(run_id, store=store, cluster_spec="local:1", until_stage="rmsynth")
    after = store.item_records(run_id, "rmsynth")
    assert resumed.results["rmsynth"].ran == total - len(before)
    assert "spectra" in resumed.skipped
    assert all(after[key]["finished"] == record["finished"] for key, record in before.items())
    assert len(store.result_rows(run_id, "pol_rmsynth")) == total


def test_missing_cubes_and_columns_are_refused_before_a_run(tmp_path):
    catalogue, _ = _write_field(tmp_path / "images")
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    with pytest.raises(InputError, match="restored-I.fits"):
        start_run("polarimetry", PolarimetryConfig(images=str(tmp_path), catalogue=str(catalogue)),
                  tmp_path / "a", store=store, cluster_spec="local:1")
    with pytest.raises(InputError, match="no column Flux"):
        start_run("polarimetry", PolarimetryConfig(images=str(tmp_path / "images"), catalogue=str(catalogue),
                                                   columns={"peak_flux": "Flux"}),
                  tmp_path / "b", store=store, cluster_spec="local:1")
    assert store.list_runs() == []
