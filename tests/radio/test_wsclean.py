"""WSClean images an MS written by ``sdpflow simulate`` and shows the truth sources where they are.

Runs the ``wsclean`` executable. Skipped only on a machine without it outside CI; in CI
(SDPFLOW_CI set) a missing wsclean is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from sdpflow.config.simulate import SimulateConfig
from sdpflow.pipelines.simulate import simulate_observation
from sdpflow.radio.imaging import dirty_image
from sdpflow.radio.ms import read_visibility
from sdpflow.radio.sky import read_sky_csv

pytestmark = [
    pytest.mark.wsclean,
    pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning"),  # WSClean's DATE-OBS, fixed by astropy
    pytest.mark.skipif(shutil.which("wsclean") is None and not os.environ.get("SDPFLOW_CI"),
                       reason="wsclean is not installed (CI installs it)"),
]

NPIX, CELL_ARCSEC = 256, 60.0


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wsclean")
    config = SimulateConfig(preset="small", stations=24, times=12, channels=4, phase_error_rad=0.0,
                            amplitude_error=0.0, noise_jy=0.05, n_bright=3, n_faint=10, seed=3)
    return simulate_observation(config, folder / "obs.ms")


def run_wsclean(ms, name, *options):
    wsclean = shutil.which("wsclean")
    assert wsclean is not None, "wsclean is not on PATH (CI must install it)"
    command = [wsclean, "-quiet", "-j", "2", "-size", str(NPIX), str(NPIX), "-scale", f"{CELL_ARCSEC}asec",
               *options, "-name", str(ms.parent / name), str(ms)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return ms.parent / name


def test_wsclean_shows_the_truth_sources_at_their_positions(simulated):
    prefix = run_wsclean(simulated.ms, "clean", "-niter", "3000", "-auto-threshold", "3", "-mgain", "0.9",
                         "-weight", "briggs", "0")
    with fits.open(f"{prefix}-image.fits") as hdus:
        wcs = WCS(hdus[0].header).celestial
        image = hdus[0].data[0, 0].astype(float)
        assert hdus[0].header["BMAJ"] > 0
    sky = read_sky_csv(simulated.truth_sky)
    bright = sky.flux > 0.5
    assert bright.sum() >= 2
    for ra, dec, flux in zip(sky.ra[bright], sky.dec[bright], sky.flux[bright]):
        x, y = wcs.world_to_pixel(SkyCoord(ra * u.rad, dec * u.rad, frame="fk5"))
        ix, iy = int(np.round(x)), int(np.round(y))
        box = image[iy - 3:iy + 4, ix - 3:ix + 4]
        peak_y, peak_x = np.unravel_index(np.argmax(box), box.shape)
        assert (peak_y - 3, peak_x - 3) in {(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
        assert abs(iy - 3 + peak_y - y) <= 1.0 and abs(ix - 3 + peak_x - x) <= 1.0
        assert box.max() == pytest.approx(flux, rel=0.1)


def test_wsclean_dirty_image_matches_ours(simulated):
    prefix = run_wsclean(simulated.ms, "dirty", "-niter", "0", "-weight", "natural")
    with fits.open(f"{prefix}-image.fits") as hdus:
        theirs = hdus[0].data[0, 0].astype(float)
    vis = read_visibility(simulated.ms)
    ours, _ = dirty_image(vis, npix_x=NPIX, npix_y=NPIX, cell_rad=np.radians(CELL_ARCSEC / 3600), epsilon=1e-6)
    ours = ours[0]
    assert np.unravel_index(np.argmax(ours), ours.shape) == np.unravel_index(np.argmax(theirs), theirs.shape)
    correlation = np.corrcoef(ours.ravel(), theirs.ravel())[0, 1]
    assert correlation > 0.995
    assert np.max(np.abs(ours - theirs)) < 0.05 * np.max(np.abs(theirs))
