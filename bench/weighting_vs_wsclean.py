"""Weighting and restoring-beam parity with WSClean: PSF and dirty-image correlations and fitted beams.

Not a test (``tests/radio/test_weighting_wsclean.py`` asserts the same on a small MS in CI). Run
with the project's environment and WSClean on the PATH::

    python bench/weighting_vs_wsclean.py --ms OBS.MS --size 512 --scale 30asec
    python bench/weighting_vs_wsclean.py --flagged              # the tests' MS: flags, unequal XX/YY weights

For each weighting (natural, uniform, Briggs -1, 0, 1) WSClean (``-niter 0 -make-psf
-use-wgridder``) and sdpflow's kernels image the same MS; the table gives the Pearson
correlation of the two PSFs and of the two dirty images, the largest PSF difference (of the
peak), and both fitted beams (major × minor arcsec, position angle degrees). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits

from sdpflow.config.imaging import angle_to_rad
from sdpflow.radio.datamodels import SPEED_OF_LIGHT
from sdpflow.radio.imaging import invert, invert_psf
from sdpflow.radio.ms import read_visibility
from sdpflow.radio.restore import fit_restoring_beam
from sdpflow.radio.weighting import WeightingOptions, imaging_weights, weight_density

WEIGHTS = ("natural", "uniform", "briggs -1", "briggs 0", "briggs 1")


def flagged_ms(folder: Path) -> Path:
    """The MS of the parity tests: 24 stations × 12 integrations × 4 channels, partial flags, unequal XX/YY weights."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "radio"))
    from test_weighting_wsclean import write_flagged_ms

    return write_flagged_ms(folder)


def wsclean(ms: Path, prefix: Path, size: int, scale: str, weight: str) -> tuple[np.ndarray, np.ndarray, dict]:
    command = ["wsclean", "-quiet", "-j", "2", "-size", str(size), str(size), "-scale", scale, "-niter", "0",
               "-make-psf", "-use-wgridder", "-weight", *weight.split(), "-name", str(prefix), str(ms)]
    subprocess.run(command, check=True, capture_output=True)
    with fits.open(f"{prefix}-dirty.fits") as dirty, fits.open(f"{prefix}-psf.fits") as psf:
        return dirty[0].data[0, 0].astype(float), psf[0].data[0, 0].astype(float), dict(psf[0].header)


def sdpflow_images(vis, size: int, cell: float, weight: str) -> tuple[np.ndarray, np.ndarray, tuple]:
    mode, *robust = weight.split()
    options = WeightingOptions(mode, float(robust[0]) if robust else 0.0)
    grid = dict(npix_x=size, npix_y=size, cell_rad=cell)
    weights = imaging_weights(vis, density=weight_density(vis, **grid), options=options, **grid)
    dirty = invert(vis, weights=weights, epsilon=1e-6, **grid).normalised()[0]
    psf = invert_psf(vis, weights=weights, epsilon=1e-6, **grid).normalised()[0]
    length = np.linalg.norm(vis.uvw, axis=1)[:, None] * vis.frequency[None, :] / SPEED_OF_LIGHT
    return dirty, psf, fit_restoring_beam(psf, cell, beam_estimate_rad=1 / length[weights > 0].max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ms", type=Path, help="the MS to image")
    parser.add_argument("--flagged", action="store_true", help="simulate the parity tests' MS instead")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--scale", default="60asec")
    args = parser.parse_args()
    if shutil.which("wsclean") is None:
        parser.error("wsclean is not on the PATH")
    with tempfile.TemporaryDirectory() as folder:
        ms = flagged_ms(Path(folder)) if args.flagged else args.ms
        if ms is None:
            parser.error("give --ms or --flagged")
        cell = angle_to_rad(args.scale)
        vis = read_visibility(ms)
        print("| weighting | PSF correlation | dirty correlation | max PSF difference | sdpflow beam | WSClean beam |")
        print("|---|---|---|---|---|---|")
        for weight in WEIGHTS:
            theirs_dirty, theirs_psf, header = wsclean(ms, Path(folder) / weight.replace(" ", ""), args.size,
                                                       args.scale, weight)
            dirty, psf, beam = sdpflow_images(vis, args.size, cell, weight)
            bmaj, bmin, bpa = np.degrees(beam[0]) * 3600, np.degrees(beam[1]) * 3600, np.degrees(beam[2])
            print(f"| {weight} | {np.corrcoef(psf.ravel(), theirs_psf.ravel())[0, 1]:.5f} "
                  f"| {np.corrcoef(dirty.ravel(), theirs_dirty.ravel())[0, 1]:.5f} "
                  f"| {np.abs(psf - theirs_psf).max():.4f} | {bmaj:.1f}″ × {bmin:.1f}″, {bpa:.1f}° "
                  f"| {header['BMAJ'] * 3600:.1f}″ × {header['BMIN'] * 3600:.1f}″, {header['BPA']:.1f}° |")


if __name__ == "__main__":
    main()
