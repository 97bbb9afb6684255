"""``sdpflow.run("ical", ...)`` inside a running event loop (as in a notebook) gives the images ``sdpflow run
ical`` gives with the same options: the same FITS pixels, bit for bit."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import numpy as np
import pytest

import sdpflow

OPTIONS = {"size": (64, 64), "scale": "60asec", "niter": 200, "nmajor": 3, "mgain": 0.8, "weight": "briggs 0",
           "calibration_context": "T"}
CLI_OPTIONS = ["--size", "64", "64", "--scale", "60asec", "--niter", "200", "--nmajor", "3", "--mgain", "0.8",
               "--weight", "briggs", "0", "--calibration-context", "T"]
IMAGES = ("psf.fits", "dirty.fits", "model.fits", "residual.fits", "restored.fits")


@pytest.fixture(scope="module")
def small_ms(tmp_path_factory):
    from sdpflow.config.simulate import SimulateConfig
    from sdpflow.pipelines.simulate import simulate_observation

    return simulate_observation(SimulateConfig(preset="small"), tmp_path_factory.mktemp("small") / "obs.ms").ms


def test_api_in_an_event_loop_gives_the_clis_images(tmp_path, small_ms):
    from astropy.io import fits

    db = f"sqlite:///{tmp_path / 'runs.db'}"
    cli = subprocess.run([sys.executable, "-m", "sdpflow", "--db", db, "--cluster", "local:1", "run", "ical",
                          "--ms", str(small_ms), "--out", str(tmp_path / "cli"), *CLI_OPTIONS],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert cli.returncode == 0, cli.stderr

    async def in_a_notebook():  # a running loop, as in a Jupyter kernel: the flow runs in a thread
        return sdpflow.run("ical", out=tmp_path / "api", db=db, cluster="local:1", ms=str(small_ms),
                           progress=False, **OPTIONS)

    run = asyncio.run(in_a_notebook())
    assert run.status == "completed" and run.report == tmp_path / "api" / "report.html"
    for name in IMAGES:
        with fits.open(tmp_path / "cli" / name) as by_cli, fits.open(tmp_path / "api" / name) as by_api:
            assert by_api[0].data.shape == by_cli[0].data.shape
            assert np.array_equal(by_api[0].data, by_cli[0].data), name
    summary = run.summary
    assert summary.pipeline == "ical" and summary.image.size == [64, 64] and summary.major_cycles_run >= 1
    assert summary.peak_jy_per_beam > 0 and np.isfinite(summary.noise_jy_per_beam)
    assert run.products["restored.fits"].path == tmp_path / "api" / "restored.fits"
    [cli_run] = [record for record in sdpflow.runs(db=db).to_dict("records") if record["id"] != run.id]
    assert cli_run["status"] == "completed"
    assert sdpflow.Run(cli_run["id"], db=db).record["config"] == run.record["config"]  # the same defaults
