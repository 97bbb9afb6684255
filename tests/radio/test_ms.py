"""MeasurementSet round trips, chunked reads and writes, feeds to Stokes I, and bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace

import numpy as np
import pytest
from radio_testdata import observation

from sdpflow.errors import DataError
from sdpflow.radio.ms import read_ms_metadata, read_visibility, write_column, write_ms


@pytest.fixture(scope="module")
def correlated():
    """Random XX/YY data with random flags and weights: 10 stations, 4 times, 5 channels."""
    vis = observation(n_stations=10, n_times=4, frequency=1e8 + 1e6 * np.arange(5), seed=11)
    rng = np.random.default_rng(0)
    shape = (vis.n_rows, 5, 2)
    data = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    return replace(vis, vis=data, weight=rng.uniform(0.5, 3, shape).astype(np.float32),
                   flag=rng.random(shape) < 0.1, polarisation=("XX", "YY"))


def test_round_trip_keeps_data_flags_and_weights(correlated, tmp_path):
    path = write_ms(tmp_path / "rt.ms", correlated)
    back = read_visibility(path, correlations=True)
    assert back.polarisation == ("XX", "YY")
    assert np.array_equal(back.vis, correlated.vis)
    assert np.array_equal(back.flag, correlated.flag)
    assert np.array_equal(back.weight, correlated.weight)
    assert np.array_equal(back.uvw, correlated.uvw) and np.array_equal(back.time, correlated.time)
    assert np.array_equal(back.antenna1, correlated.antenna1) and np.array_equal(back.antenna2, correlated.antenna2)
    assert np.array_equal(back.frequency, correlated.frequency)
    assert back.phase_centre == pytest.approx(correlated.phase_centre, abs=1e-15)


def test_metadata_and_chunked_read(correlated, tmp_path):
    path = write_ms(tmp_path / "chunk.ms", correlated)
    meta = read_ms_metadata(path)
    assert meta.n_rows == correlated.n_rows and meta.n_antennas == 10 and meta.feed_type == "linear"
    assert meta.data_columns == ("DATA",) and meta.has_weight_spectrum
    assert len(meta.times) == 4 and meta.time_rows[1] == (45, 90)
    start, stop = meta.time_rows[1][0], meta.time_rows[2][1]
    chunk = read_visibility(path, rows=(start, stop), channels=(1, 4))
    assert chunk.polarisation == ("I",) and chunk.vis.shape == (stop - start, 3, 1)
    xx, yy = correlated.vis[start:stop, 1:4, 0], correlated.vis[start:stop, 1:4, 1]
    assert np.allclose(chunk.vis[:, :, 0], 0.5 * (xx + yy), atol=1e-6)
    wx, wy = correlated.weight[start:stop, 1:4, 0], correlated.weight[start:stop, 1:4, 1]
    flagged = correlated.flag[start:stop, 1:4].any(axis=2)
    assert np.array_equal(chunk.flag[:, :, 0], flagged)
    assert np.allclose(chunk.weight[:, :, 0], 2 * np.minimum(wx, wy), rtol=1e-6)  # WSClean: 4 min(w_XX, w_YY)


def test_circular_feeds_make_stokes_i(correlated, tmp_path):
    circular = replace(correlated, polarisation=("RR", "LL"))
    path = write_ms(tmp_path / "circ.ms", circular)
    assert read_ms_metadata(path).feed_type == "circular"
    vis = read_visibility(path)
    assert np.allclose(vis.vis[:, :, 0], 0.5 * (circular.vis[:, :, 0] + circular.vis[:, :, 1]), atol=1e-6)


def test_stokes_i_written_as_xx_yy_reads_back(tmp_path):
    vis = observation(n_stations=6, n_times=2, frequency=(1e8, 1.01e8), seed=12)
    vis.vis[:, :, 0] = np.arange(vis.n_rows * 2).reshape(-1, 2) * (1 + 1j)
    vis.weight[...] = 3.0
    back = read_visibility(write_ms(tmp_path / "i.ms", vis))
    assert np.array_equal(back.vis, vis.vis.astype(np.complex64))
    assert np.allclose(back.weight, 3.0)


def test_write_column_writes_a_chunk(correlated, tmp_path):
    path = write_ms(tmp_path / "col.ms", correlated)
    model = np.full((30, 2), 2 + 1j, np.complex64)
    write_column(path, "MODEL_DATA", model, rows=(10, 40), channels=(2, 4))
    assert "MODEL_DATA" in read_ms_metadata(path).data_columns
    back = read_visibility(path, data_column="MODEL_DATA", correlations=True, allow_all_flagged=True)
    assert np.all(back.vis[10:40, 2:4] == 2 + 1j)
    back.vis[10:40, 2:4] = 0
    assert np.all(back.vis == 0)
    write_column(path, "CORRECTED_DATA", correlated.vis[:5] * 2, rows=(0, 5))
    corrected = read_visibility(path, data_column="CORRECTED_DATA", rows=(0, 5), correlations=True,
                                allow_all_flagged=True)
    assert np.array_equal(corrected.vis, correlated.vis[:5] * 2)


def test_missing_path_is_a_data_error(tmp_path):
    missing = tmp_path / "nowhere.ms"
    with pytest.raises(DataError, match=f"{missing}.*does not exist"):
        read_visibility(missing)


def test_folder_that_is_not_an_ms_is_a_data_error(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "file.ms").write_text("not a table")
    for path in (tmp_path / "plain", tmp_path / "file.ms"):
        with pytest.raises(DataError, match=f"{path}: not a MeasurementSet"):
            read_ms_metadata(path)


def test_missing_column_is_a_data_error(correlated, tmp_path):
    path = write_ms(tmp_path / "nocol.ms", correlated)
    with pytest.raises(DataError, match=f"{path}: has no column CORRECTED_DATA"):
        read_visibility(path, data_column="CORRECTED_DATA")


def test_entirely_flagged_is_a_data_error(correlated, tmp_path):
    path = write_ms(tmp_path / "flagged.ms", replace(correlated, flag=np.ones(correlated.vis.shape, bool)))
    with pytest.raises(DataError, match=f"{path}: every visibility .* is flagged"):
        read_visibility(path)


@pytest.mark.skipif(shutil.which("taql") is None and not os.environ.get("SDPFLOW_CI"),
                    reason="casacore-tools (taql) is not installed (CI installs it)")
def test_casacore_tools_read_the_ms(correlated, tmp_path):
    path = write_ms(tmp_path / "tools.ms", correlated)
    taql = shutil.which("taql")
    assert taql is not None, "taql is not on PATH (CI must install casacore-tools)"
    done = subprocess.run([taql, f"select gcount(*) from {path} where ANTENNA1 < ANTENNA2"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert str(correlated.n_rows) in done.stdout.split()
    done = subprocess.run([taql, f"select NUM_CHAN, REF_FREQUENCY from {path}::SPECTRAL_WINDOW"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "5" in done.stdout.split()


def test_non_finite_samples_are_flagged_counted_and_zeroed(correlated, tmp_path):
    """NaN/Inf visibilities, weights and UVW (a corrupted file, a bad correlator dump) are flagged at read."""
    from sdpflow.radio.ms import max_uvw_m, read_visibility_counted

    bad = replace(correlated, vis=correlated.vis.copy(), weight=correlated.weight.copy(), uvw=correlated.uvw.copy(),
                  flag=np.zeros_like(correlated.flag))
    bad.vis[3, 2, 0] = np.nan
    bad.vis[4, :, 1] = np.inf
    bad.weight[5, 1, 1] = np.nan
    bad.uvw[7, 2] = np.nan  # every sample of row 7
    path = write_ms(tmp_path / "bad.ms", bad)
    vis, count = read_visibility_counted(path, correlations=True)
    assert count == 1 + 5 + 1 + 5 * 2
    expected = np.zeros_like(bad.flag)
    expected[3, 2, 0] = expected[4, :, 1] = expected[5, 1, 1] = expected[7] = True
    assert np.array_equal(vis.flag, expected)
    assert np.isfinite(vis.vis).all() and np.isfinite(vis.weight).all() and np.isfinite(vis.uvw).all()
    assert np.all(vis.vis[expected] == 0) and np.all(vis.weight[expected] == 0)
    stokes = read_visibility(path)  # Stokes I: a sample is flagged when either correlation is
    assert np.isfinite(stokes.vis).all() and stokes.flag[:, :, 0].sum() == 1 + 5 + 1 + 5
    finite_rows = np.delete(correlated.uvw, 7, axis=0)
    assert max_uvw_m(path)[0] == pytest.approx(np.sqrt((finite_rows[:, :2] ** 2).sum(axis=1)).max())


def test_entirely_non_finite_data_is_a_data_error(correlated, tmp_path):
    path = write_ms(tmp_path / "nan.ms", replace(correlated, vis=np.full_like(correlated.vis, np.nan)))
    with pytest.raises(DataError, match=r"is flagged \(\d+ samples NaN or infinite\); nothing to process"):
        read_visibility(path)


def test_fits_writer_refuses_non_finite_pixels(tmp_path):
    from sdpflow.radio.fits import write_fits_image

    image = np.zeros((8, 8))
    image[2, 3] = np.nan
    with pytest.raises(DataError, match="restored.fits: 1 of 64 pixels are NaN or infinite"):
        write_fits_image(tmp_path / "restored.fits", image, phase_centre=(0.0, -0.5), cell_rad=1e-4, frequency=1e8)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="2 of 64 pixels"):
        write_fits_image(tmp_path / "big.fits", np.where(np.eye(8) * (np.arange(8) < 2), 1e300, 0.0),
                         phase_centre=(0.0, -0.5), cell_rad=1e-4, frequency=1e8)  # infinite once float32
