"""Clean masks and noise maps for the minor cycle, as WSClean's -fits-mask, -auto-mask and -local-rms.

Images are [y, x] in Jy/beam; masks are [y, x] bool (true: components allowed there). The
auto-mask is the set of pixels that hold a component; the local noise is a sliding-window RMS
whose square window is a number of restoring beams wide.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sdpflow.errors import DataError


def component_mask(model: np.ndarray) -> np.ndarray:
    """[y, x] bool: true where any plane of ``model`` ([y, x] or [plane, y, x], Jy/pixel) holds a component.

    WSClean's auto-mask: once cleaning reached the auto-mask level, later minor cycles clean only
    where the components found so far are.
    """
    model = np.asarray(model)
    return np.any(model != 0, axis=0) if model.ndim == 3 else model != 0


def local_rms(image: np.ndarray, window_pixels: float) -> np.ndarray:
    """The RMS of ``image`` ([y, x], Jy/beam) in a square window of ``window_pixels`` centred on each pixel.

    The window is clipped to the image size (at least 3 pixels); the image is mirrored at its
    edges. Returns [y, x] Jy/beam, strictly positive where the image is not exactly zero over a
    whole window (such windows get the smallest positive RMS of the map, or 1 when all are zero).
    """
    from scipy.ndimage import uniform_filter  # worker-side only: keeps imports light

    image = np.asarray(image, dtype=np.float64)
    size = [int(max(3, min(round(window_pixels), side))) for side in image.shape]
    mean_square = uniform_filter(image * image, size=size, mode="reflect")
    rms = np.sqrt(np.clip(mean_square, 0.0, None))
    positive = rms > 0
    floor = float(rms[positive].min()) if positive.any() else 1.0
    return np.where(positive, rms, floor)


def local_rms_weights(image: np.ndarray, window_pixels: float) -> tuple[np.ndarray, float]:
    """WSClean's local-RMS factors: (σ_min / σ_local [y, x], σ_min Jy/beam) of :func:`local_rms`.

    A residual times the factors has the noise σ_min everywhere, so its peak compared with
    k σ_min is the residual compared with k times the local noise (the quietest place keeps
    its absolute threshold).
    """
    rms = local_rms(image, window_pixels)
    floor = float(rms.min())
    return floor / rms, floor


def beam_pixels(psf: np.ndarray) -> float:
    """The restoring beam's major axis FWHM in pixels, fitted to a PSF [y, x] (peak at its centre)."""
    from sdpflow.radio.restore import fit_restoring_beam

    return float(fit_restoring_beam(np.asarray(psf, dtype=np.float64), 1.0)[0])


def read_fits_mask(path: str | Path, *, npix_x: int, npix_y: int, cell_rad: float,
                   phase_centre: tuple[float, float]) -> np.ndarray:
    """A clean mask [y, x] bool (true where the FITS image is non-zero) for an image of this grid.

    The file must be a one-plane SIN image of the same size, pixel size and phase centre (radians)
    as the image cleaned, as WSClean's -fits-mask; NaN pixels count as outside. Raises
    DataError naming the file and what differs.
    """
    import warnings

    from sdpflow.radio.fits import read_fits_image

    try:
        with warnings.catch_warnings():  # a damaged file is one error line, not astropy's warnings first
            warnings.simplefilter("ignore")
            image = read_fits_image(path)
    except (KeyError, ValueError, TypeError) as error:  # a header without the keys of an image
        raise DataError(f"{path}: not a FITS image with a sky WCS ({error}): give a mask made for this image") from None
    planes = image.data.shape[0] * image.data.shape[1]
    if (image.npix_x, image.npix_y) != (npix_x, npix_y):
        raise DataError(f"{path}: mask is {image.npix_x}×{image.npix_y} pixels, the image {npix_x}×{npix_y}: "
                        "give a mask of the image's --size")
    if planes != 1:
        raise DataError(f"{path}: mask has {planes} planes: give a mask of one plane (it applies to every channel)")
    if not np.isclose(image.cell_rad, cell_rad, rtol=1e-4):
        raise DataError(f"{path}: mask pixel {np.degrees(image.cell_rad) * 3600:.4g} arcsec, the image's "
                        f"{np.degrees(cell_rad) * 3600:.4g} arcsec: give a mask of the image's --scale")
    offset = _angular_distance(image.phase_centre, phase_centre)
    if offset > 0.01 * cell_rad:
        raise DataError(f"{path}: mask centre is {np.degrees(offset) * 3600:.3g} arcsec from the image's phase "
                        "centre: give a mask made on the image's grid")
    mask = np.nan_to_num(image.data[0, 0], nan=0.0) != 0
    if not mask.any():
        raise DataError(f"{path}: mask selects no pixel (all zero): non-zero pixels mark where to clean")
    return mask


def _angular_distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (radians) between two (ra, dec) positions in radians."""
    (ra1, dec1), (ra2, dec2) = a, b
    # haversine: exact for the sub-pixel offsets compared here, where arccos of a cosine is not
    term = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return float(2 * np.arcsin(np.sqrt(np.clip(term, 0.0, 1.0))))
