"""The report of a 1024² continuum run, as a radio astronomer opens it: sky axes, beam, full-resolution
images behind the thumbnails, links to the FITS files, no calibration panels, and a page that draws."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import headless_chromium


@pytest.fixture(scope="module")
def continuum_1024(tmp_path_factory):
    from sdpflow.config.simulate import SimulateConfig
    from sdpflow.pipelines.simulate import simulate_observation

    tmp_path = tmp_path_factory.mktemp("continuum-1024")
    ms = simulate_observation(SimulateConfig(preset="small"), tmp_path / "sim" / "obs.ms").ms
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "sdpflow", "--db", f"sqlite:///{tmp_path / 'runs.db'}", "run",
                             "continuum", "--ms", str(ms), "--out", str(out), "--size", "1024", "1024",
                             "--niter", "300"], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    return out


def test_the_1024_image_opens_at_full_resolution_on_sky_axes(continuum_1024):
    from PIL import Image

    html = (continuum_1024 / "report.html").read_text()
    svg = (continuum_1024 / "report-figures" / "image-restored.fits.svg").read_text()
    assert "Right Ascension (J2000)" in svg and "Declination (J2000)" in svg
    assert 'id="beam"' in svg and 'id="phase-centre"' in svg
    # the thumbnail links to a PNG with at least one screen pixel per image pixel
    full = re.search(r'href="(report-figures/image-restored\.fits\.png)"', html).group(1)
    width, height = Image.open(continuum_1024 / full).size
    assert width >= 1024 and height >= 1024, (width, height)
    links = re.findall(r'href="([^"#]+)"', html)
    assert {"restored.fits", "residual.fits", "model.fits", "psf.fits"} <= {link for link in links
                                                                           if link.endswith(".fits")}
    assert all((continuum_1024 / link).is_file() for link in links)
    # continuum solves no gains: no gain panels, and the statistics of the run's own images
    assert "map-gain-panels" not in html and "Image statistics" in html


def test_the_1024_report_draws_in_headless_chromium(continuum_1024, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    headless_chromium(tmp_path / "profile", (continuum_1024 / "report.html").as_uri(), "--window-size=1200,2400",
                      "--virtual-time-budget=5000", f"--screenshot={shot}")
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert (pixels.min(axis=2) < 200).mean() > 0.05  # text, tables and figures: not a blank page
    coloured = (pixels.max(axis=2) - pixels.min(axis=2)) > 60
    assert coloured.sum() > 20_000, f"only {coloured.sum()} coloured pixels: the images did not draw"
