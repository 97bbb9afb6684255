"""Bad visibilities never make a product: NaN/Inf samples are flagged and counted, an image with a
NaN is never committed, summary.json is always JSON, and a run never writes into its MS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from casacore.tables import table
from distributed import Client, LocalCluster

from sdpflow.config.imaging import DeconvolutionConfig, ImagingConfig
from sdpflow.config.imaging import ContinuumConfig
from sdpflow.config.simulate import SimulateConfig
from sdpflow.pipelines import start_run
from sdpflow.pipelines.imaging.products import strict_json
from sdpflow.pipelines.simulate import simulate_observation
from sdpflow.radio import fits
from sdpflow.store import RunStore

SIZE = ["--size", "64", "64", "--niter", "50", "--nmajor", "2"]


@pytest.fixture(scope="module")
def small_ms(tmp_path_factory):
    return simulate_observation(SimulateConfig(preset="small"), tmp_path_factory.mktemp("small") / "obs.ms").ms


@pytest.fixture(scope="module")
def address():
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address="127.0.0.1:0") as local:
        with Client(local):
            yield local.scheduler_address


def sdpflow(db, *args):
    return subprocess.run([sys.executable, "-m", "sdpflow", "--db", db, *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "SDPFLOW_CLUSTER": "local:1"})


def spoiled(small_ms, tmp_path, name, change) -> str:
    """A copy of the small MS with ``change(main_table)`` applied."""
    ms = tmp_path / name
    shutil.copytree(small_ms, ms)
    with table(str(ms), readonly=False, ack=False) as main:
        change(main)
    return str(ms)


def set_rows(column, stop, value):
    def change(main):
        data = main.getcol(column)
        data[:stop] = value
        main.putcol(column, data)
    return change


def continuum(ms, out, address, store):
    config = ContinuumConfig(ms=ms, imaging=ImagingConfig(size=(64, 64), scale="120asec"),
                             deconvolution=DeconvolutionConfig(niter=50, nmajor=2, auto_threshold=3.0))
    return start_run("continuum", config, out, store=store, cluster_spec=address)


def test_nan_rows_are_flagged_counted_and_image_as_if_flagged(tmp_path, small_ms, address):
    """NaN in 1 of 7 rows: the same image as those rows flagged, near the clean peak, and the count in summary.json."""
    n_rows = table(str(small_ms), ack=False).nrows()
    bad_rows = n_rows // 7
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    nan_ms = spoiled(small_ms, tmp_path, "nan.ms", set_rows("DATA", bad_rows, np.nan))
    flagged_ms = spoiled(small_ms, tmp_path, "flagged.ms", set_rows("FLAG", bad_rows, True))
    runs = {name: continuum(ms, tmp_path / name, address, store)
            for name, ms in (("nan", nan_ms), ("flagged", flagged_ms), ("clean", str(small_ms)))}
    summaries = {name: json.loads((result.out_dir / "summary.json").read_text()) for name, result in runs.items()}
    assert summaries["nan"]["non_finite_flagged"] == bad_rows * 4 * 2  # rows × channels × correlations
    assert summaries["flagged"]["non_finite_flagged"] == summaries["clean"]["non_finite_flagged"] == 0
    images = {name: fits.read_fits_image(result.out_dir / "restored.fits").data for name, result in runs.items()}
    assert np.isfinite(images["nan"]).all()
    np.testing.assert_allclose(images["nan"], images["flagged"], atol=1e-6)
    assert summaries["nan"]["peak_jy_per_beam"] == pytest.approx(summaries["clean"]["peak_jy_per_beam"], rel=0.15)
    events = [e["event"] for e in store.get_events(runs["nan"].run_id)]
    assert "non-finite-flagged" in events


def test_all_nan_data_exits_2_and_nothing_is_completed(tmp_path, small_ms):
    ms = spoiled(small_ms, tmp_path, "allnan.ms", set_rows("DATA", None, np.nan))
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    done = sdpflow(db, "run", "continuum", "--ms", ms, "--out", str(tmp_path / "out"), *SIZE)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "every sample is flagged" in done.stderr and "NaN or infinite" in done.stderr
    [run] = RunStore(db).list_runs()
    assert run["status"] == "failed"
    assert not (tmp_path / "out" / "summary.json").exists() and not (tmp_path / "out" / "restored.fits").exists()


def test_nan_uvw_rows_are_flagged_without_a_traceback(tmp_path, small_ms):
    ms = spoiled(small_ms, tmp_path, "uvw.ms", set_rows("UVW", 35, np.nan))
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    out = tmp_path / "out"
    done = sdpflow(db, "run", "continuum", "--ms", ms, "--out", str(out), "--size", "64", "64", "--scale", "auto",
                   "--niter", "50", "--nmajor", "2")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["non_finite_flagged"] == 35 * 4 * 2
    assert np.isfinite(fits.read_fits_image(out / "restored.fits").data).all()


def test_corrupted_data_storage_fails_the_run(tmp_path, small_ms):
    """Random bytes in the DATA column's storage file: the run fails; no NaN image, no invalid JSON, no 'completed'."""
    ms = spoiled(small_ms, tmp_path, "bytes.ms", lambda main: None)
    with table(ms, ack=False) as main:
        [storage] = [info["SEQNR"] for info in main.getdminfo().values() if "DATA" in info["COLUMNS"]]
    path = f"{ms}/table.f{storage}_TSM0"
    size = os.path.getsize(path)
    with open(path, "r+b") as file:
        file.write(np.random.default_rng(7).bytes(size))
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    out = tmp_path / "out"
    done = sdpflow(db, "run", "continuum", "--ms", ms, "--out", str(out), *SIZE)
    assert done.returncode != 0
    assert "NaN or infinite" in done.stderr.splitlines()[-1]
    assert "Compute Failed" not in done.stderr and "Traceback" not in done.stderr  # Dask's worker logs: -v
    [run] = RunStore(db).list_runs()
    assert run["status"] == "failed"
    assert all(stage["status"] != "completed" or name == "psf"
               for name, stage in RunStore(db).get_stages(run["id"]).items())
    assert not (out / "summary.json").exists() and not (out / "restored.fits").exists()
    for image in out.rglob("*.fits"):  # whatever was committed is finite
        assert np.isfinite(fits.read_fits_image(image).data).all()


@pytest.mark.parametrize("inside", ["", "images", "sub/images"])
def test_out_equal_to_or_inside_the_ms_exits_2(tmp_path, small_ms, inside):
    ms = tmp_path / "copy.ms"
    shutil.copytree(small_ms, ms)
    before = sorted(str(p.relative_to(ms)) for p in ms.rglob("*"))
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    done = sdpflow(db, "run", "continuum", "--ms", str(ms), "--out", str(ms / inside), *SIZE)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is inside the input" in lines[0] and str(ms) in lines[0]
    assert sorted(str(p.relative_to(ms)) for p in ms.rglob("*")) == before
    assert RunStore(db).list_runs() == []


def test_strict_json_turns_non_finite_numbers_into_null():
    text = strict_json({"dynamic_range": float("inf"), "peak": float("nan"), "cycles": [{"x": -float("inf")}], "n": 3})
    assert json.loads(text) == {"dynamic_range": None, "peak": None, "cycles": [{"x": None}], "n": 3}
    assert "NaN" not in text and "Infinity" not in text
