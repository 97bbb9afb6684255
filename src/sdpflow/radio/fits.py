"""FITS images as WSClean writes them: RA---SIN, DEC--SIN, FREQ, STOKES axes, beam keywords, history.

On disk the axes are (NAXIS1 = RA, NAXIS2 = Dec, NAXIS3 = FREQ, NAXIS4 = STOKES), so the
numpy array is [stokes, freq, y, x]; in memory images are [chan, pol, y, x] (see
:mod:`sdpflow.radio.datamodels`). CDELT1 = -cell (RA increases to the left), CRPIX = npix/2 + 1.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np

from sdpflow.errors import DataError
from sdpflow.provenance import atomic_path, replace_atomically
from sdpflow.radio.datamodels import Image

_STOKES_CODES = {"I": 1, "Q": 2, "U": 3, "V": 4}
_STOKES_NAMES = {code: name for name, code in _STOKES_CODES.items()}


def image_wcs(npix_x: int, npix_y: int, *, phase_centre: tuple[float, float], cell_rad: float,
              frequency: Sequence[float], channel_width: Sequence[float] | None = None,
              polarisation: Sequence[str] = ("I",)):
    """The 4-axis astropy WCS of an image (SIN projection about the phase centre, FK5 J2000)."""
    from astropy.wcs import WCS

    frequency = np.atleast_1d(np.asarray(frequency, dtype=float))
    if channel_width is None:
        step = float(np.diff(frequency).mean()) if len(frequency) > 1 else 1.0
    else:
        width = np.atleast_1d(np.asarray(channel_width, dtype=float))
        step = float(np.diff(frequency).mean()) if len(frequency) > 1 else float(width[0])
    wcs = WCS(naxis=4)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN", "FREQ", "STOKES"]
    wcs.wcs.cunit = ["deg", "deg", "Hz", ""]
    wcs.wcs.crpix = [npix_x // 2 + 1, npix_y // 2 + 1, 1, 1]
    wcs.wcs.crval = [np.degrees(phase_centre[0]) % 360.0, np.degrees(phase_centre[1]), frequency[0],
                     _STOKES_CODES[polarisation[0]]]
    wcs.wcs.cdelt = [-np.degrees(cell_rad), np.degrees(cell_rad), step, 1]
    wcs.wcs.radesys = "FK5"
    wcs.wcs.equinox = 2000.0
    wcs.wcs.specsys = "TOPOCENT"
    return wcs


def write_fits_image(path: str | Path, data: np.ndarray, *, phase_centre: tuple[float, float], cell_rad: float,
                     frequency: Sequence[float] | float, channel_width: Sequence[float] | float | None = None,
                     beam: tuple[float, float, float] | None = None, unit: str = "JY/BEAM",
                     polarisation: Sequence[str] = ("I",), history: Sequence[str] = (),
                     provenance: dict | None = None) -> Path:
    """Write an image atomically (temporary file renamed onto ``path``).

    data: [y, x], [chan, y, x] or [chan, pol, y, x]; phase_centre: (ra, dec) radians of
    pixel (npix_y//2, npix_x//2); cell_rad: pixel size (radians); frequency: Hz per channel;
    beam: (bmaj, bmin, bpa) radians, written as BMAJ/BMIN/BPA degrees; unit: BUNIT; history
    lines and the provenance record go into HISTORY cards (the record also as SDPPROV).
    Raises DataError (and writes nothing) when a pixel is NaN or infinite: such an image is
    never a product.
    """
    from astropy.io import fits

    data = np.asarray(data, dtype=np.float32)
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise DataError(f"{Path(path).name}: {bad} of {data.size} pixels are NaN or infinite; the image is not "
                        "written (look for corrupted or extreme visibilities in the input)")
    while data.ndim < 4:
        data = data[None] if data.ndim != 3 else data[:, None]
    n_chan, n_pol, npix_y, npix_x = data.shape
    frequency = np.atleast_1d(np.asarray(frequency, dtype=float))
    width = None if channel_width is None else np.atleast_1d(np.asarray(channel_width, dtype=float))
    if len(frequency) != n_chan:
        raise ValueError(f"{len(frequency)} frequencies for {n_chan} channels")
    wcs = image_wcs(npix_x, npix_y, phase_centre=phase_centre, cell_rad=cell_rad, frequency=frequency,
                    channel_width=width, polarisation=polarisation)
    header = wcs.to_header()
    header["BUNIT"] = unit
    header["BTYPE"] = "Intensity"
    header["EQUINOX"] = 2000.0
    if beam is not None:
        header["BMAJ"] = np.degrees(beam[0])
        header["BMIN"] = np.degrees(beam[1])
        header["BPA"] = np.degrees(beam[2])
    header["ORIGIN"] = "sdpflow"
    for line in history:
        header.add_history(line)
    if provenance is not None:
        text = json.dumps(provenance, sort_keys=True, default=str)
        for piece in textwrap.wrap("sdpflow provenance: " + text, 70):
            header.add_history(piece)
    hdu = fits.PrimaryHDU(data=np.transpose(data, (1, 0, 2, 3)), header=header)
    path = Path(path)
    tmp = atomic_path(path)
    hdu.writeto(tmp, overwrite=True)
    replace_atomically(tmp, path)
    return path


def read_fits_image(path: str | Path) -> Image:
    """Read a SIN-projected image (ours or WSClean's) as an Image with data [chan, pol, y, x]."""
    from astropy.io import fits

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such FITS image")
    try:
        with fits.open(path) as hdus:
            header = hdus[0].header
            data = np.asarray(hdus[0].data, dtype=np.float64)
    except OSError as error:
        raise DataError(f"{path}: not a readable FITS file: {error}") from None
    if header.get("CTYPE1", "") != "RA---SIN" or header.get("CTYPE2", "") != "DEC--SIN":
        raise DataError(f"{path}: axes 1 and 2 must be RA---SIN and DEC--SIN")
    while data.ndim < 4:
        data = data[None]
    data = np.transpose(data, (1, 0, 2, 3))  # [stokes, freq, y, x] -> [chan, pol, y, x]
    n_chan, n_pol = data.shape[:2]
    freq0 = float(header.get("CRVAL3", 0.0))
    step = float(header.get("CDELT3", 0.0))
    frequency = freq0 + step * (np.arange(n_chan) + 1 - float(header.get("CRPIX3", 1.0)))
    stokes0 = int(header.get("CRVAL4", 1))
    polarisation = tuple(_STOKES_NAMES.get(stokes0 + i, str(stokes0 + i)) for i in range(n_pol))
    beam = None
    if header.get("BMAJ"):
        beam = (np.radians(header["BMAJ"]), np.radians(header["BMIN"]), np.radians(header.get("BPA", 0.0)))
    npix_x, npix_y = data.shape[-1], data.shape[-2]
    if header["CRPIX1"] != npix_x // 2 + 1 or header["CRPIX2"] != npix_y // 2 + 1:
        raise DataError(f"{path}: the reference pixel is not the image centre (npix/2 + 1)")
    return Image(data=data, phase_centre=(np.radians(header["CRVAL1"]), np.radians(header["CRVAL2"])),
                 cell_rad=abs(np.radians(header["CDELT2"])), frequency=frequency,
                 channel_width=np.full(n_chan, abs(step)), polarisation=polarisation, beam=beam,
                 unit=str(header.get("BUNIT", "")))
