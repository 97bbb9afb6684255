"""ICAL and continuum on simulated data with 1 rad antenna phase errors, judged against the truth."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from distributed import Client, LocalCluster

from sdpflow.config.imaging import CalibrationConfig, DeconvolutionConfig, IcalConfig, ImagingConfig, PartitionConfig
from sdpflow.config.simulate import SimulateConfig
from sdpflow.pipelines import resume_run, start_run
from sdpflow.pipelines.demo import assess
from sdpflow.pipelines.simulate import simulate_observation
from sdpflow.radio import fits
from sdpflow.store import RunStore

IMAGE = dict(size=(256, 256), scale="60asec", weight="briggs 0", epsilon=1e-7)
CLEAN = dict(niter=3000, gain=0.1, mgain=0.8, auto_threshold=3.0, nmajor=6)


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as local:
        with Client(local) as client:
            yield client, local.scheduler_address


@pytest.fixture(scope="module")
def observations(tmp_path_factory):
    folder = tmp_path_factory.mktemp("obs")
    corrupted = simulate_observation(SimulateConfig(preset="demo"), folder / "corrupted" / "obs.ms")
    clean = simulate_observation(SimulateConfig(preset="demo", phase_error_rad=0.0, amplitude_error=0.0),
                                 folder / "clean" / "obs.ms")
    return corrupted, clean


def run(pipeline, ms, out, address, store, **partition):
    sections = dict(ms=str(ms), imaging=ImagingConfig(**IMAGE), deconvolution=DeconvolutionConfig(**CLEAN),
                    partition=PartitionConfig(**partition) if partition else PartitionConfig())
    config = IcalConfig(**sections, calibration=CalibrationConfig()) if pipeline == "ical" else \
        IcalConfig.__base__(**sections)
    return start_run(pipeline, config, out, store=store, cluster_spec=address)


def restored(run_dir: Path) -> np.ndarray:
    return fits.read_fits_image(run_dir / "restored.fits").data[0, 0]


@pytest.fixture(scope="module")
def runs(cluster, observations, tmp_path_factory):
    _, address = cluster
    corrupted, clean = observations
    out = tmp_path_factory.mktemp("runs")
    store = RunStore(f"sqlite:///{out / 'runs.db'}")
    results = {}
    for name, products in (("corrupted", corrupted), ("clean", clean)):
        for pipeline in ("ical", "continuum"):
            result = run(pipeline, products.ms, out / f"{pipeline}-{name}", address, store)
            results[pipeline, name] = (result, assess(result.out_dir, products.truth_sky, products.true_gains))
    return results, store


def test_ical_recovers_gains_fluxes_and_positions(runs):
    results, store = runs
    result, quality = results["ical", "corrupted"]
    assert store.get_run(result.run_id)["status"] == "completed"
    assert quality.phase_error_before_deg > 50
    assert quality.phase_error_after_deg < 5.0
    assert quality.sources_above_10_sigma >= 15
    assert abs(quality.median_flux_ratio - 1) < 0.02
    assert quality.worst_flux_error_above_100_sigma < 0.05
    # every source above 10σ within 5% of its flux, up to 2σ of noise (a 10σ source has a 10% error from noise alone)
    assert quality.worst_flux_excess_sigma < 2.0
    assert quality.worst_offset_pixels < 1.0
    summary = json.loads((result.out_dir / "summary.json").read_text())
    assert [c["calibrated_terms"] for c in summary["cycles"]] == [[], ["T"], ["T"], ["T", "G"], ["T", "G"], ["T", "G"]]
    assert summary["cycles"][-1]["peak_residual_jy"] < summary["cycles"][0]["peak_residual_jy"] / 20
    for name in ("psf.fits", "dirty.fits", "model.fits", "residual.fits", "restored.fits", "gains.h5",
                 "summary.json", "report.html", "events.jsonl", "tasks.jsonl"):
        assert (result.out_dir / name).exists(), name
    report = (result.out_dir / "report.html").read_text()
    assert report.count("<img") >= 7 and "task timeline per worker" in report
    workers = {json.loads(line)["worker"] for line in (result.out_dir / "tasks.jsonl").read_text().splitlines()}
    assert len(workers) == 2  # both workers of the cluster did work


def test_continuum_does_clearly_worse_on_corrupted_data(runs):
    results, _ = runs
    ical, continuum = results["ical", "corrupted"][1], results["continuum", "corrupted"][1]
    assert ical.dynamic_range > 5 * continuum.dynamic_range
    assert continuum.noise_jy_per_beam > 5 * ical.noise_jy_per_beam


def test_ical_and_continuum_agree_on_uncorrupted_data(runs):
    results, _ = runs
    ical, continuum = results["ical", "clean"][1], results["continuum", "clean"][1]
    assert abs(ical.median_flux_ratio - continuum.median_flux_ratio) < 0.01
    assert abs(continuum.median_flux_ratio - 1) < 0.02
    assert abs(ical.median_flux_ratio - 1) < 0.02
    assert ical.phase_error_after_deg < 2.0


def test_same_image_for_any_worker_count_and_chunking(cluster, observations, tmp_path):
    _, address = cluster
    corrupted, _ = observations
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    two_workers = run("ical", corrupted.ms, tmp_path / "a", address, store, time_chunks=4)
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address="127.0.0.1:0") as single:
        one_worker = run("ical", corrupted.ms, tmp_path / "b", single.scheduler_address, store, time_chunks=3)
    reference, other = restored(two_workers.out_dir), restored(one_worker.out_dir)
    assert np.max(np.abs(reference - other)) / np.max(np.abs(reference)) < 1e-5


def test_killed_worker_run_completes_with_same_image(observations, tmp_path):
    corrupted, _ = observations
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as local:
        reference = run("ical", corrupted.ms, tmp_path / "reference", local.scheduler_address, store)
        events = tmp_path / "killed" / "events.jsonl"
        killed: list[int] = []

        def kill_a_worker_after_psf():
            deadline = time.time() + 120
            while time.time() < deadline:
                if events.exists() and '"stage-completed","stage":"psf"' in events.read_text().replace(" ", ""):
                    with Client(local.scheduler_address) as client:
                        pids = client.run(os.getpid)
                    victim = sorted(pids.values())[0]
                    os.kill(victim, signal.SIGKILL)
                    killed.append(victim)
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_a_worker_after_psf)
        killer.start()
        result = run("ical", corrupted.ms, tmp_path / "killed", local.scheduler_address, store)
        killer.join()
    assert killed, "no worker was killed"
    assert store.get_run(result.run_id)["status"] == "completed"
    before, after = restored(reference.out_dir), restored(result.out_dir)
    assert np.max(np.abs(before - after)) / np.max(np.abs(before)) < 1e-5


def test_resume_continues_from_the_last_major_cycle(cluster, observations, tmp_path):
    _, address = cluster
    corrupted, _ = observations
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    sections = dict(ms=str(corrupted.ms), imaging=ImagingConfig(**IMAGE), deconvolution=DeconvolutionConfig(**CLEAN))
    first = start_run("ical", IcalConfig(**sections), tmp_path / "run", store=store, cluster_spec=address,
                      until_stage="cycle-03")
    assert first.ran == ["psf", "cycle-01", "cycle-02", "cycle-03"]
    rest = resume_run(first.run_id, store=store, cluster_spec=address)
    assert rest.skipped == ["psf", "cycle-01", "cycle-02", "cycle-03"]
    assert rest.ran == ["cycle-04", "cycle-05", "cycle-06", "restore", "report"]
    whole = start_run("ical", IcalConfig(**sections), tmp_path / "whole", store=store, cluster_spec=address)
    assert np.max(np.abs(restored(tmp_path / "run") - restored(whole.out_dir))) < 1e-5 * np.max(restored(whole.out_dir))


def test_corrected_data_written_back_without_invalidating_the_run(cluster, observations, tmp_path):
    _, address = cluster
    corrupted, _ = observations
    ms = tmp_path / "copy.ms"
    import shutil

    shutil.copytree(corrupted.ms, ms)
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    config = IcalConfig(ms=str(ms), imaging=ImagingConfig(**IMAGE), deconvolution=DeconvolutionConfig(**CLEAN),
                        calibration=CalibrationConfig(write_corrected=True))
    result = start_run("ical", config, tmp_path / "run", store=store, cluster_spec=address)
    from sdpflow.radio import hdf5
    from sdpflow.radio.calibration import apply_gains
    from sdpflow.radio.ms import read_visibility

    data = read_visibility(ms)
    corrected = read_visibility(ms, data_column="CORRECTED_DATA")
    expected = apply_gains(data.vis[:, :, 0].astype(np.complex128), hdf5.read_gaintable_hdf5(result.out_dir / "gains.h5"),
                           data.antenna1, data.antenna2, data.time, inverse=True)
    assert np.max(np.abs(corrected.vis[:, :, 0] - expected)) < 1e-5 * np.max(np.abs(expected))
    again = resume_run(result.run_id, store=store, cluster_spec=address)
    assert again.ran == [] and "psf" in again.skipped


def test_killed_driver_resumes_from_last_completed_major_cycle(observations, tmp_path):
    import subprocess
    import sys

    corrupted, _ = observations
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    out = tmp_path / "run"
    command = [sys.executable, "-m", "sdpflow", "--db", db, "--cluster", "local:2", "run", "ical", "--ms",
               str(corrupted.ms), "--out", str(out), "--size", "256", "256", "--scale", "60asec", "--nmajor", "4"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    events = out / "events.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and driver.poll() is None:
        if events.exists() and '"stage-completed","stage":"cycle-02"' in events.read_text():
            break
        time.sleep(0.05)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    store = RunStore(db)
    run_record = store.list_runs()[0]
    completed = [name for name, stage in store.get_stages(run_record["id"]).items() if stage["status"] == "completed"]
    assert completed[:3] == ["psf", "cycle-01", "cycle-02"] and "restore" not in completed
    resumed = subprocess.run([sys.executable, "-m", "sdpflow", "--db", db, "runs", "resume", run_record["id"]],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "skipped psf, cycle-01, cycle-02" in " ".join(resumed.stdout.split())
    assert store.get_run(run_record["id"])["status"] == "completed"
    assert (out / "restored.fits").exists()


def test_every_chunk_grids_on_the_observations_small_grid(observations):
    """image_grid passes the observation's bandwidth (so chunks share one small grid), and the
    runs above do use small inversion; --no-small-inversion leaves it out."""
    from sdpflow.config.imaging import ContinuumConfig
    from sdpflow.pipelines.imaging.flow import image_grid
    from sdpflow.radio.ms import read_ms_metadata
    from sdpflow.radio.small_inversion import small_grid

    corrupted, _ = observations
    metadata = read_ms_metadata(corrupted.ms)
    grid = image_grid(ContinuumConfig(ms=str(corrupted.ms), imaging=ImagingConfig(**IMAGE)), metadata)
    assert grid.gridder_options()["small_inversion"] and grid.bandwidth > 0
    small = small_grid(grid.npix_x, grid.npix_y, grid.cell_rad, grid.bandwidth)
    assert small is not None and small.small[0] < grid.npix_x
    plain = image_grid(ContinuumConfig(ms=str(corrupted.ms), imaging=ImagingConfig(**IMAGE, small_inversion=False)),
                       metadata)
    assert plain.gridder_options()["small_inversion"] is False and plain.bandwidth is None
