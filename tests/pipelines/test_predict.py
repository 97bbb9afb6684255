"""--predict MODEL.fits: MODEL_DATA against the direct Fourier sum of the model's point components."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from distributed import Client, LocalCluster

from sdpflow.config.imaging import ContinuumConfig
from sdpflow.errors import DataError, InputError
from sdpflow.pipelines import start_run
from sdpflow.radio.datamodels import SkyModel
from sdpflow.radio.fits import write_fits_image
from sdpflow.radio.imaging import pixel_direction_cosines
from sdpflow.radio.layouts import low_like_configuration
from sdpflow.radio.ms import read_ms_metadata, read_visibility, write_ms, written_by_sdpflow
from sdpflow.radio.simulate import make_visibility
from sdpflow.radio.sky import directions_from_cosines, predict_components
from sdpflow.store import RunStore

MS_CENTRE = (np.radians(60.0), np.radians(-40.0))
MODEL_CENTRE = (np.radians(60.4), np.radians(-39.7))  # the model is about 0.4 deg from the MS's centre
CELL = np.radians(1 / 60)
FREQUENCY = 1.0e8 + 2e6 * np.arange(6)
PIXELS = [((32, 32), 1.5), ((40, 21), 0.7), ((12, 50), 2.0)]  # (y, x), Jy; channels 0-2 and 3-5 differ


def model_cube() -> np.ndarray:
    cube = np.zeros((2, 64, 64))
    for (y, x), flux in PIXELS:
        cube[0, y, x] = flux
        cube[1, y, x] = flux * 0.5
    return cube


def make_ms(path) -> str:
    vis = make_visibility(low_like_configuration(12), phase_centre=MS_CENTRE, times=5.0e9 + 30.0 * np.arange(6),
                          interval=30.0, frequency=FREQUENCY, channel_width=np.full(6, 2e6))
    return str(write_ms(path, vis.with_vis(np.ones_like(vis.vis))))


def direct_sum(ms: str, channels: slice, centre: tuple[float, float] = MODEL_CENTRE,
               plane_fluxes: tuple[float, float] = (1.0, 0.5)) -> np.ndarray:
    """MODEL_DATA's Stokes I by the exact DFT of the model's pixels as point components about ``centre``."""
    vis = read_visibility(ms, data_column="DATA")
    l_axis, m_axis = pixel_direction_cosines(64, 64, CELL)
    truth = np.zeros((vis.n_rows, vis.n_channels), complex)
    for plane, group in ((0, slice(0, 3)), (1, slice(3, 6))):
        ra, dec = directions_from_cosines(np.array([l_axis[x] for (y, x), _ in PIXELS]),
                                          np.array([m_axis[y] for (y, x), _ in PIXELS]), centre)
        flux = np.array([f for _, f in PIXELS]) * plane_fluxes[plane]
        sky = SkyModel(ra=ra, dec=dec, flux=flux, ref_frequency=np.full(3, 1e8), spectral_index=np.zeros(3))
        truth[:, group] = predict_components(vis, sky)[:, group]
    return truth[:, channels]


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address="127.0.0.1:0") as local:
        with Client(local):
            yield local.scheduler_address


def test_predict_writes_the_direct_fourier_sum_into_model_data(tmp_path, cluster):
    ms = make_ms(tmp_path / "obs.ms")
    model = tmp_path / "model.fits"
    write_fits_image(model, model_cube(), phase_centre=MODEL_CENTRE, cell_rad=CELL, frequency=[1.02e8, 1.08e8],
                     unit="JY/PIXEL")
    config = ContinuumConfig(ms=ms, imaging={"predict": str(model)}, partition={"time_chunks": 2})
    start_run("continuum", config, tmp_path / "run", store=RunStore(f"sqlite:///{tmp_path / 'r.db'}"),
              cluster_spec=cluster)
    predicted = read_visibility(ms, data_column="MODEL_DATA")
    truth = direct_sum(ms, slice(None))
    assert np.abs(truth).max() > 2.0
    error = np.abs(predicted.vis[:, :, 0] - truth).max() / np.abs(truth).max()
    print(f"predict: largest error {error:.2e} of the largest visibility")
    assert error < 1e-4  # epsilon 1e-4, and MODEL_DATA is complex64
    correlations = read_visibility(ms, data_column="MODEL_DATA", correlations=True)
    assert np.array_equal(correlations.vis[:, :, 0], correlations.vis[:, :, 1])  # XX = YY = I
    assert written_by_sdpflow(ms, "MODEL_DATA") and (tmp_path / "run" / "predict.json").is_file()


def test_predict_refuses_another_tool_s_model_data_and_a_model_in_jy_per_beam(tmp_path):
    from casacore import tables

    from sdpflow.pipelines.imaging.flow import build_continuum

    ms = make_ms(tmp_path / "foreign.ms")
    with tables.table(ms, readonly=False, ack=False) as main:  # MODEL_DATA as another tool adds it: unmarked
        description = main.getcoldesc("DATA")
        description["name"] = "MODEL_DATA"
        description.pop("keywords", None)
        main.addcols(tables.makecoldesc("MODEL_DATA", description))
    assert "MODEL_DATA" in read_ms_metadata(ms).data_columns and not written_by_sdpflow(ms, "MODEL_DATA")
    model = tmp_path / "model.fits"
    write_fits_image(model, model_cube(), phase_centre=MODEL_CENTRE, cell_rad=CELL, frequency=[1.02e8, 1.08e8],
                     unit="JY/PIXEL")
    with pytest.raises(InputError, match="MODEL_DATA was not written by sdpflow: pass --overwrite-model-data"):
        build_continuum(ContinuumConfig(ms=ms, imaging={"predict": str(model)}))
    assert build_continuum(ContinuumConfig(ms=ms, imaging={"predict": str(model), "overwrite_model_data": True}))
    beam = tmp_path / "restored.fits"
    write_fits_image(beam, model_cube(), phase_centre=MODEL_CENTRE, cell_rad=CELL, frequency=[1.02e8, 1.08e8])
    with pytest.raises(DataError, match="not JY/PIXEL"):
        build_continuum(ContinuumConfig(ms=ms, imaging={"predict": str(beam)}))
    with pytest.raises(DataError, match="nope.fits: no such FITS image"):
        build_continuum(ContinuumConfig(ms=ms, imaging={"predict": str(tmp_path / "nope.fits")}))


@pytest.mark.wsclean
@pytest.mark.skipif(shutil.which("wsclean") is None and not os.environ.get("SDPFLOW_CI"),
                    reason="wsclean is not installed (CI installs it)")
def test_wsclean_s_predict_meets_the_same_direct_sum(tmp_path):
    """The truth sdpflow's MODEL_DATA meets to 2e-5 is WSClean 3.1's too, given -no-small-inversion (its default
    small inversion low-passes the model: 13% of the peak off for these single-pixel sources)."""
    ms = make_ms(tmp_path / "obs.ms")
    write_fits_image(tmp_path / "ws-model.fits", model_cube()[0], phase_centre=MS_CENTRE, cell_rad=CELL,
                     frequency=[1.05e8], unit="JY/PIXEL")
    done = subprocess.run(["wsclean", "-quiet", "-predict", "-size", "64", "64", "-scale", "1amin", "-use-wgridder",
                           "-no-small-inversion", "-name", str(tmp_path / "ws"), ms], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    theirs = read_visibility(ms, data_column="MODEL_DATA").vis[:, :, 0]
    truth = direct_sum(ms, slice(None), centre=MS_CENTRE, plane_fluxes=(1.0, 1.0))
    assert np.abs(theirs - truth).max() < 1e-4 * np.abs(truth).max()
